"""Read a collection's stored documents as encoded bytes, without decoding them.

The frame builder decodes whole batches at once (:mod:`.cbor_columns`), so it
wants the raw CBOR values straight from the LMDB cursor: the same reads as the
query path's (:mod:`threadkit.db.reads`), in a snapshot of their own.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from threadkit.db import dockeys

if TYPE_CHECKING:
    from threadkit.db.collection import Collection

__all__ = ["raw_documents", "raw_documents_by_id"]


def raw_documents(coll: Collection) -> list[bytes]:
    """Every live document of the collection, encoded, in ``_id`` order (one snapshot)."""
    from threadkit.db.reads import scan_raw

    with coll.db._repo.transaction() as txn:
        return scan_raw(coll.db.engine, txn, coll.name)


def raw_documents_by_id(coll: Collection, instance_ids: Sequence[str]) -> list[bytes | None]:
    """The encoded documents with these ids (None where absent), from one snapshot."""
    engine = coll.db.engine
    prefix = dockeys.coll_key(engine.prefix, coll.name)
    with coll.db._repo.transaction() as txn:
        return [txn.get(dockeys.doc_key(prefix, i), db=engine.tables.docs) for i in instance_ids]
