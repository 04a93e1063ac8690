"""The events table of a database read raw, in key order, for columnar readers.

:func:`threadkit.db.timeline.event_rows` builds one object per event; a reader
that decodes columns at once (``db.history()``, :mod:`threadkit.frames.history_columns`)
wants the stored keys and values as they are. Both lists are read by cursors
iterating in C (keys while below the end of the prefix, then as many values),
from one snapshot.

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
>>> len(raw.keys), len(raw.values), raw.start == len(db.engine.prefix)
(2, 2, True)
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import islice, takewhile
from typing import TYPE_CHECKING

from threadkit.db import dockeys

if TYPE_CHECKING:
    from threadkit.db.database import Database

__all__ = ["RawEvents", "scan_events"]


@dataclass(frozen=True, slots=True)
class RawEvents:
    """Stored instance events, in key order (collection, ``_id``, order key).

    Attributes
    ----------
    keys : list[bytes]
        The events keys.
    values : list[bytes]
        Their CBOR values, in the same order.
    start : int
        Where the collection name begins in each key (the database prefix's length).
    """

    keys: list[bytes]
    values: list[bytes]
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
        found = cursor.iternext(keys=True, values=False)
        keys = list(takewhile(end.__gt__, found) if end is not None else found)
        cursor.set_range(prefix)
        values = list(islice(cursor.iternext(keys=False, values=True), len(keys)))
    return RawEvents(keys, values, len(engine.prefix))
