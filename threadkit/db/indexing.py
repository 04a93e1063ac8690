"""Index maintenance: the documents and index entries an applied event leaves, and reads of them.

An index entry is ``prefix ‖ coll ‖ 00 ‖ path ‖ 00 ‖ value ‖ id`` (:mod:`.dockeys`);
its value is the claim (:mod:`.claims`) in a unique index, empty in others.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import cbor2

from threadkit.db import dockeys
from threadkit.db.change import Transition
from threadkit.db.claims import Claims
from threadkit.db.config import CollectionConfig
from threadkit.db.dockeys import encode_id
from threadkit.db.docpath import MISSING, get_path, same_value
from threadkit.db.doctables import DocTables, delete_prefix, put_entry
from threadkit.db.indexkeys import decode_id, decode_value, encode_value
from threadkit.store.txntypes import StoreTxn, StoreWriteTxn

__all__ = ["Indexes", "duplicates", "index_entries"]


class Indexes:
    """The stored documents and index entries of one database.

    Parameters
    ----------
    tables : DocTables
        The document store's tables.
    claims : Claims
        The database's unique claims (to wake the losers of a value let go).
    """

    def __init__(self, tables: DocTables, claims: Claims) -> None:
        self.tables = tables
        self.claims = claims

    def write_state(
        self,
        txn: StoreWriteTxn,
        coll: bytes,
        change: Transition,
        config: CollectionConfig | None,
        claims: dict[str, bytes],
    ) -> list[tuple[str, str]]:
        """Store a document and update its index entries; returns instances to re-fold.

        ``config`` is the collection's current config; ``claims`` the claim to write for
        each unique path (a path in it is rewritten even when its value is unchanged).
        """
        instance_id, before, after = change.instance_id, change.before, change.after
        doc_key = dockeys.doc_key(coll, instance_id)
        if after is None:
            txn.delete(doc_key, db=self.tables.docs)
        else:
            txn.put(doc_key, cbor2.dumps(after), db=self.tables.docs)
        if config is None:
            return []
        woken: list[tuple[str, str]] = []
        id_bytes = encode_id(instance_id)
        unique = set(config.unique_paths)
        for path in config.index_paths:
            old = get_path(before, path)
            new = get_path(after, path)
            if path not in claims and same_value(old, new):
                continue
            base = dockeys.index_prefix(coll, path)
            if old is not MISSING:
                txn.delete(base + encode_value(old) + id_bytes, db=self.tables.index)
                if path in unique:
                    losers = self.claims.losers_of(txn, coll, path, old)
                    woken.extend((change.collection, i) for i in losers)
            if new is not MISSING:
                claim = claims.get(path, b"")
                put_entry(txn, base + encode_value(new) + id_bytes, claim, self.tables.index)
        return [item for item in woken if item[1] != instance_id]

    def ids(self, txn: StoreTxn, coll: bytes, path: str, lo: bytes, hi: bytes) -> Iterator[str]:
        """Ids of index entries whose ``value ‖ id`` bytes lie in ``[lo, hi)``."""
        base = dockeys.index_prefix(coll, path)
        cursor = txn.cursor(self.tables.index)
        if not cursor.set_range(base + lo):
            return
        end = base + hi
        for key in cursor.iternext(keys=True, values=False):
            if key >= end or not key.startswith(base):
                return
            rest = bytes(key[len(base) :])
            yield decode_id(rest, decode_value(rest)[1])[0]

    def drop(self, txn: StoreWriteTxn, coll: bytes, path: str) -> None:
        """Delete every entry of one index."""
        delete_prefix(txn, self.tables.index, dockeys.index_prefix(coll, path))

    def fill(
        self, txn: StoreWriteTxn, coll: bytes, paths: list[str], docs: Iterable[dict[str, Any]]
    ) -> None:
        """Add the entries of ``docs`` to the (non-unique) indexes at ``paths``."""
        for doc in docs:
            instance_id = doc["_id"]
            for path in paths:
                value = get_path(doc, path)
                if value is not MISSING:
                    key = dockeys.index_prefix(coll, path) + encode_value(value)
                    put_entry(txn, key + encode_id(instance_id), b"", self.tables.index)

    def clear_collection(self, txn: StoreWriteTxn, coll: bytes) -> None:
        """Delete a collection's documents, index entries, latest keys and losers."""
        tables = self.tables
        for table in (tables.docs, tables.index, tables.inst, tables.losers):
            delete_prefix(txn, table, coll)


def index_entries(
    indexes: list[tuple[str, bytes]],
    docs: list[dict[str, Any]],
    id_parts: list[bytes],
    claims: list[bytes] | None = None,
    unique: frozenset[str] = frozenset(),
) -> Iterator[tuple[bytes, bytes]]:
    """Entries ``prefix ‖ value ‖ id`` → claim of new documents.

    ``indexes`` holds each index's path and key prefix. An entry of a path in ``unique``
    holds the document's claim (its create's key, from ``claims``), others ``b""``.
    Document by document, path by path, as the one-event path writes them, so an
    unindexable value fails the same way.
    """
    if claims is None:
        return (
            (prefix + encode_value(value) + part, b"")
            for doc, part in zip(docs, id_parts, strict=True)
            for path, prefix in indexes
            if (value := get_path(doc, path)) is not MISSING
        )
    return (
        (prefix + encode_value(value) + part, claim if path in unique else b"")
        for doc, part, claim in zip(docs, id_parts, claims, strict=True)
        for path, prefix in indexes
        if (value := get_path(doc, path)) is not MISSING
    )


def duplicates(docs: Iterable[dict[str, Any]], path: str) -> list[Any]:
    """Up to five values that more than one of ``docs`` holds at ``path``."""
    seen: dict[bytes, Any] = {}
    dupes: list[Any] = []
    for doc in docs:
        value = get_path(doc, path)
        if value is MISSING or value is None or isinstance(value, dict | list):
            continue
        enc = encode_value(value)
        if enc in seen and len(dupes) < 5:
            dupes.append(value)
        seen[enc] = value
    return dupes
