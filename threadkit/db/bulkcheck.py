"""What a batch of creates must hold to take the bulk path, checked in batch.

The bulk path (:meth:`threadkit.db.applying.Applier.apply_creates`) writes new
instances without judging them one by one. It is exact when no instance of the
batch was ever seen by the store (:func:`new_instances`: ids the caller gave are
looked up, each once) and, for every unique index, each value the batch takes is
taken once and held by no stored instance (:func:`unique_values_free`). When a
batch does not hold, the creates go the one-event way, which raises the error
(``InstanceExists``, ``UniqueViolation``) naming the document, before anything is
written.

Examples
--------
>>> from threadkit.db.config import CollectionConfig, Index
>>> config = CollectionConfig.build("People", indexes=[Index("email", unique=True)])
>>> taken = batch_unique_values(config, [{"email": "a@x"}, {"email": "b@x"}, {}])
>>> {path: len(values) for path, values in taken.items()}
{'email': 2}
>>> batch_unique_values(config, [{"email": "a@x"}, {"email": "a@x"}]) is None
True
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from threadkit.db import dockeys
from threadkit.db.docpath import get_path, indexable
from threadkit.db.indexkeys import encode_value

if TYPE_CHECKING:
    from threadkit.db.config import CollectionConfig
    from threadkit.db.doctables import DocTables
    from threadkit.store.txntypes import StoreTxn

__all__ = ["batch_unique_values", "new_instances", "unique_values_free"]


def new_instances(
    txn: StoreTxn, tables: DocTables, coll: bytes, ids: Sequence[str], given: Iterable[str]
) -> bool:
    """True when ``ids`` are distinct and none of ``given`` (the ids the caller chose) was
    ever seen in the collection (no latest-event entry: not live, not deleted).

    Parameters
    ----------
    txn : StoreTxn
        The write transaction the batch would be applied in.
    tables : DocTables
        The document store's tables.
    coll : bytes
        The collection's key prefix (``Engine.coll_key``).
    ids : Sequence[str]
        Every id of the batch.
    given : Iterable[str]
        The ids among them that were not generated for the batch.
    """
    if len(set(ids)) != len(ids):
        return False
    inst = tables.inst
    return all(txn.get(dockeys.doc_key(coll, i), db=inst) is None for i in given)


def batch_unique_values(
    config: CollectionConfig, docs: Sequence[dict[str, Any]]
) -> dict[str, list[bytes]] | None:
    """The encoded values each unique index of ``config`` takes from ``docs``, or None
    when one value is taken twice in the batch.

    Only values a unique index holds count (:func:`threadkit.db.docpath.indexable`:
    strings, numbers, booleans); a missing field or a null takes nothing.
    """
    out: dict[str, list[bytes]] = {}
    for path in config.unique_paths:
        values = [encode_value(value) for doc in docs if indexable(value := get_path(doc, path))]
        if len(set(values)) != len(values):
            return None
        out[path] = values
    return out


def unique_values_free(
    txn: StoreTxn, tables: DocTables, coll: bytes, config: CollectionConfig, docs: Sequence[Any]
) -> bool:
    """True when every unique value ``docs`` take is taken once and held by no stored
    instance (no entry of the unique index starts with it)."""
    if not config.unique_paths:
        return True
    taken = batch_unique_values(config, docs)
    if taken is None:
        return False
    cursor = txn.cursor(tables.index)
    for path, values in taken.items():
        base = dockeys.index_prefix(coll, path)
        for value in values:
            prefix = base + value
            if cursor.set_range(prefix) and bytes(cursor.key()).startswith(prefix):
                return False
    return True
