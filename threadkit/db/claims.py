"""Unique claims and the bookkeeping of what lost: lost writes and losers of unique values.

A unique index entry holds its **claim**, the key of the event since which its
instance has held the value: the earliest claim in the total order keeps a value.
What loses is written down so every peer can show it (``Database.lost_writes``)
and re-judge it when the winner lets go:

- ``db_lost`` holds each lost write: an event rejected, or a field it wrote
  overwritten by a concurrent one;
- ``db_losers`` holds the instances that lost a unique value, under the value, so
  they are re-folded when its holder drops it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

import cbor2

from threadkit.db import dockeys
from threadkit.db.dockeys import encode_id
from threadkit.db.doctables import DocTables, ids_under, put_entry
from threadkit.db.indexkeys import decode_id, encode_value
from threadkit.db.reducer import Conflict, Rejection
from threadkit.errors import UniqueViolation
from threadkit.store.txntypes import StoreTxn, StoreWriteTxn

__all__ = ["Claims", "unique_violation"]

_ORDER_KEY_SIZE = 12 + 38  # stamp ‖ Ed25519 peer id bytes
_MAX_PATH_PART = 64  # longest field path written as itself in a lost-write key


def unique_violation(collection: str, path: str, value: Any, holder: str) -> str:
    """The reason an instance cannot take a unique value ``holder`` holds."""
    return f"unique index {path!r} of {collection!r} already holds {value!r} (instance {holder!r})"


class Claims:
    """Unique claims and loss records of one database.

    Parameters
    ----------
    tables : DocTables
        The document store's tables.
    prefix : bytes
        The database's key prefix.
    """

    def __init__(self, tables: DocTables, prefix: bytes) -> None:
        self.tables = tables
        self.prefix = prefix

    # ---------------------------------------------------------------- claims

    def holders(
        self, txn: StoreTxn, coll: bytes, path: str, value: Any
    ) -> Iterator[tuple[str, bytes]]:
        """``(instance id, claim)`` of every index entry holding ``value`` at ``path``."""
        prefix = dockeys.index_prefix(coll, path) + encode_value(value)
        cursor = txn.cursor(self.tables.index)
        if not cursor.set_range(prefix):
            return
        for key, claim in cursor:
            if not key.startswith(prefix):
                return
            yield decode_id(bytes(key), len(prefix))[0], bytes(claim)

    def claim(
        self,
        txn: StoreWriteTxn,
        collection: str,
        instance_id: str,
        path: str,
        value: Any,
        claim: bytes,
        steals: list[tuple[str, str]],
    ) -> None:
        """Take a unique value: the earliest claim (in the total order) keeps it.

        Raises UniqueViolation when another instance claimed it earlier; notes instances
        that claimed it later in ``steals``: they must be re-folded without their claim.
        """
        coll = dockeys.coll_key(self.prefix, collection)
        for holder, held_since in self.holders(txn, coll, path, value):
            if holder == instance_id:
                continue
            if held_since < claim:
                self.note_loser(txn, coll, path, value, instance_id)
                raise UniqueViolation(unique_violation(collection, path, value, holder))
            steals.append((collection, holder))

    def held_elsewhere(self, txn: StoreTxn, coll: bytes, path: str, value: Any, by: str) -> bool:
        """True when an instance other than ``by`` holds ``value`` at ``path``."""
        return any(holder != by for holder, _ in self.holders(txn, coll, path, value))

    # ----------------------------------------------------------------- losers

    def note_loser(
        self, txn: StoreWriteTxn, coll: bytes, path: str, value: Any, instance_id: str
    ) -> None:
        """Write down that ``instance_id`` lost ``value`` at ``path``."""
        self.note_loser_encoded(txn, coll, path, encode_value(value), instance_id)

    def note_loser_encoded(
        self, txn: StoreWriteTxn, coll: bytes, path: str, encoded: bytes, instance_id: str
    ) -> None:
        """:meth:`note_loser` of an already encoded value."""
        key = dockeys.index_prefix(coll, path) + encoded + encode_id(instance_id)
        put_entry(txn, key, b"", self.tables.losers)

    def losers_of(self, txn: StoreTxn, coll: bytes, path: str, value: Any) -> list[str]:
        """Instances that lost ``value`` at ``path``."""
        prefix = dockeys.index_prefix(coll, path) + encode_value(value)
        return ids_under(txn, self.tables.losers, prefix)

    def has_loser_entries(self, txn: StoreTxn, coll: bytes, instance_id: str) -> bool:
        """True when ``instance_id`` lost some unique value of its collection."""
        suffix = encode_id(instance_id)
        cursor = txn.cursor(self.tables.losers)
        if not cursor.set_range(coll):
            return False
        for key in cursor.iternext(keys=True, values=False):
            if not key.startswith(coll):
                return False
            if bytes(key).endswith(suffix):
                return True
        return False

    # ------------------------------------------------------------ lost writes

    def has_losses(self, txn: StoreTxn, coll: bytes, instance_id: str) -> bool:
        """True when some write to ``instance_id`` is recorded as lost."""
        prefix = dockeys.event_prefix(coll, instance_id)
        cursor = txn.cursor(self.tables.lost)
        return bool(cursor.set_range(prefix)) and bytes(cursor.key()).startswith(prefix)

    def record_conflict(
        self, txn: StoreWriteTxn, coll: bytes, instance_id: str, conflict: Conflict
    ) -> None:
        """Record a field an event wrote that a concurrent event overwrote."""
        key = dockeys.event_prefix(coll, instance_id) + conflict.loser + _path_part(conflict.path)
        value = {"kind": "overwritten", "path": conflict.path, "winner": conflict.winner}
        txn.put(key, cbor2.dumps(value), db=self.tables.lost)

    def record_rejection(
        self, txn: StoreWriteTxn, coll: bytes, instance_id: str, rejection: Rejection
    ) -> None:
        """Record an event that was refused."""
        key = dockeys.event_prefix(coll, instance_id) + rejection.key
        value = {"kind": "rejected", "reason": rejection.reason, "winner": rejection.lost_to}
        txn.put(key, cbor2.dumps(value), db=self.tables.lost)

    def clear_losses(self, txn: StoreWriteTxn, coll: bytes, instance_id: str) -> None:
        """Forget every loss of ``instance_id`` (before it is folded again)."""
        prefix = dockeys.event_prefix(coll, instance_id)
        cursor = txn.cursor(self.tables.lost)
        if cursor.set_range(prefix):
            while cursor.key().startswith(prefix):
                if not cursor.delete():
                    break
        self._clear_loser_entries(txn, coll, instance_id)

    def _clear_loser_entries(self, txn: StoreWriteTxn, coll: bytes, instance_id: str) -> None:
        history_id = encode_id(instance_id)
        cursor = txn.cursor(self.tables.losers)
        if not cursor.set_range(coll):
            return
        while True:
            key = cursor.key()
            if not key.startswith(coll):
                return
            if bytes(key).endswith(history_id):
                if not cursor.delete():
                    return
                continue
            if not cursor.next():
                return

    def lost_writes(self, txn: StoreTxn, prefix: bytes) -> list[dict[str, Any]]:
        """Every recorded lost write under ``prefix`` (the DB's, or a collection's), in order."""
        cursor = txn.cursor(self.tables.lost)
        out: list[dict[str, Any]] = []
        if not cursor.set_range(prefix):
            return out
        for key, value in cursor:
            if not key.startswith(prefix):
                break
            key = bytes(key)
            name_end = key.index(b"\x00", len(self.prefix))
            name = key[len(self.prefix) : name_end].decode()
            instance_id, end = decode_id(key, name_end + 1)
            entry = cbor2.loads(value)
            loser = key[end : end + _ORDER_KEY_SIZE]
            out.append(
                {
                    "collection": name,
                    "instance_id": instance_id,
                    "kind": entry["kind"],
                    "loser": loser,
                    "winner": entry.get("winner"),
                    "path": entry.get("path"),
                    "reason": entry.get("reason"),
                }
            )
        return out


def _path_part(path: str) -> bytes:
    """A field path in a lost-write key; a path that could overflow the key goes as its hash
    (the entry's value holds the path itself)."""
    raw = path.encode("utf-8", "surrogatepass")
    if len(raw) <= _MAX_PATH_PART:
        return raw
    return b"\xff" + hashlib.sha256(raw).digest()
