"""The events table of a database read raw, in key order, for columnar readers.

:func:`threadkit.db.timeline.event_rows` builds one object per event; a reader
that decodes columns at once (``db.history()``, :mod:`threadkit.frames.history_columns`)
wants the stored keys and values as they are. Both are read by cursors iterating
in C, in chunks of :data:`~threadkit.db.eventvalues.CHUNK` (keys until a chunk
reaches the end of the prefix, found by bisection; then as many values), from one
snapshot. The values stay in their chunks, which a reader can free one by one
(:func:`threadkit.db.eventvalues.decode_chunks`).

An events key is ``db prefix ‖ collection ‖ 00 ‖ encoded _id ‖ order key`` (the
order key: HLC stamp, 12 bytes, ‖ the writer's log id bytes); the value is the
CBOR array ``[action code, data, base, author, record CID, seen?, purged?]``.

Examples
--------
>>> import threadkit as tk
>>> with tk.Peer(memory=True) as peer:
...     db = peer.new_db("notes")
...     _ = db.new_collection("Notes").create([{"_id": "a"}, {"_id": "b"}])
...     raw = scan_events(db)
>>> len(raw.keys), [len(chunk) for chunk in raw.values], raw.start == len(db.engine.prefix)
(2, [2], True)
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import islice
from typing import TYPE_CHECKING, Any

import cbor2

from threadkit.core.clock import Timestamp
from threadkit.core.identity import peer_id_bytes
from threadkit.db import dockeys
from threadkit.db.eventvalues import CHUNK
from threadkit.db.timeline import FoundRecord, RecordFinder, log_of_key, open_stored
from threadkit.errors import ThreadkitError

if TYPE_CHECKING:
    from threadkit.db.database import Database

__all__ = ["KeyFinder", "RawEvents", "scan_events"]


@dataclass(frozen=True, slots=True)
class RawEvents:
    """Stored instance events, in key order (collection, ``_id``, order key).

    Attributes
    ----------
    keys : list[bytes]
        The events keys.
    values : list[list[bytes]]
        Their CBOR values, in the same order, in chunks of at most
        :data:`~threadkit.db.eventvalues.CHUNK`.
    start : int
        Where the collection name begins in each key (the database prefix's length).
    """

    keys: list[bytes]
    values: list[list[bytes]]
    start: int


def _successor(prefix: bytes) -> bytes | None:
    """The least key above every key that starts with ``prefix`` (None: there is none)."""
    stripped = prefix.rstrip(b"\xff")
    if not stripped:
        return None
    return stripped[:-1] + bytes([stripped[-1] + 1])


def scan_events(db: Database, collection: str | None = None) -> RawEvents:
    """The stored instance events of a database (or of one collection), raw.

    Parameters
    ----------
    db : Database
        The database.
    collection : str, optional
        Only this collection's instance events.

    Returns
    -------
    RawEvents
        Keys and values in key order, from one read snapshot.
    """
    engine = db.engine
    prefix = dockeys.coll_key(engine.prefix, collection) if collection else engine.prefix
    end = _successor(prefix)
    with db.read_txn() as txn:
        cursor = txn.cursor(engine.tables.events)
        if not cursor.set_range(prefix):
            return RawEvents([], [], len(engine.prefix))
        keys: list[bytes] = []
        for part in _chunks(cursor.iternext(keys=True, values=False)):
            if end is not None and part[-1] >= end:
                keys += part[: bisect_left(part, end)]
                break
            keys += part
        cursor.set_range(prefix)
        found = islice(cursor.iternext(keys=False, values=True), len(keys))
        values = list(_chunks(found))
    return RawEvents(keys, values, len(engine.prefix))


def _chunks(items: Iterator[bytes]) -> Iterator[list[bytes]]:
    """``items`` in lists of :data:`~threadkit.db.eventvalues.CHUNK` (the last one shorter)."""
    while part := list(islice(items, CHUNK)):
        yield part


class KeyFinder(RecordFinder):
    """A :class:`~threadkit.db.timeline.RecordFinder` whose search reads only event stamps.

    The binary search over a log's records needs each probed record's order keys,
    not its events checked and parsed (most of the cost of a record of thousands of
    events); the record found is then decoded and checked in full, as the plain
    finder decodes it, and returned only when it holds the key.

    Parameters
    ----------
    db : Database
        The database (read-only).
    """

    def __init__(self, db: Database) -> None:
        super().__init__(db)
        self._full = RecordFinder(db)

    def _open(self, log_id: str, stored: Any) -> FoundRecord | None:
        db = self._db
        try:
            record = open_stored(db, db._repo.get_log(db.id, log_id).public, stored)
            events = cbor2.loads(db.gate.read_body(record))["events"]
            log_bytes = peer_id_bytes(log_id)
            keys = tuple(Timestamp.checked(*e["t"]).to_bytes() + log_bytes for e in events)
        except (ThreadkitError, cbor2.CBORDecodeError, LookupError, TypeError, ValueError):
            return None
        found = FoundRecord(stored.cid, str(record.author), stored.counter, keys, ())
        self._cache[(log_id, stored.counter)] = found
        return found

    def locate(self, key: bytes) -> FoundRecord | None:
        """The record that holds the event with order key ``key``, decoded in full, or None."""
        log_id = log_of_key(key)
        probed = self._gallop(log_id, key)
        if probed is None:
            probed = super().locate(key)  # the plain search (and its linear fallback)
        if probed is None:
            return None
        found = self._full.record_at(log_id, probed.counter)
        return found if found is not None and key in found.keys else None

    def _gallop(self, log_id: str, key: bytes) -> FoundRecord | None:
        """Counters 1, 2, 4, … until a record ends at or after ``key``, then a binary search.

        Collection events are mostly early in a log (a collection is created before
        its documents): they are found in a few probes of small records.
        """
        db = self._db
        try:
            head = db._repo.get_head(db.id, log_id).counter
        except ThreadkitError:
            return None
        lo, hi, counter = 1, head, 1
        while counter <= head:
            found = self.record_at(log_id, counter)
            if found is None or not found.keys:
                return None
            if key <= found.keys[-1]:
                hi = counter
                break
            lo, counter = counter + 1, counter * 2
        return self._bisect(log_id, key, lo, hi)[1]
