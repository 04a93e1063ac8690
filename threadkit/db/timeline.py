"""The read side of a database's history: its events in total order, records, logs, heads.

Every write is an event in the thread's logs (docs/design.md §7.6). This module
owns every read of the document store's event tables and of the thread's logs
for the views above it (``db.history()``, ``coll.at()``, the record DAG):

- :func:`event_rows` — every event, instance and collection events, in the total
  order (HLC stamp, then log id; docs/semantics.md), each with its author and record;
- :class:`RecordFinder` — the record holding an event, found by its order key;
- :func:`records` — every record of every log, opened and decoded;
- :func:`stored_events` — events by (collection, instance, order key);
- :func:`heads` and :func:`log_states` — each log's head, counter and applied counter.

Points in history and the replay to a point are in :mod:`.points` and
:mod:`.replay`; :class:`Timeline` gathers all of it for one database
(``db.timeline``).

Instance events come from ``db_events`` (each holds its action, document or
merge patch, base, author and record CID), collection events from the
collections' config histories (their record is found by a binary search of the
writer's log, whose stamps increase with the counter). Nothing is decrypted
except the few records that carry collection events.

Examples
--------
>>> import threadkit as tk
>>> with tk.Peer(memory=True) as peer:
...     db = peer.new_db("notes")
...     notes = db.new_collection("Notes")
...     _ = notes.create({"_id": "n1", "text": "hello"})
...     rows = event_rows(db)
>>> [(str(r.action), r.instance) for r in rows]
[('new_collection', ''), ('create', 'n1')]
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import cbor2

from threadkit.core.clock import Timestamp
from threadkit.core.identity import peer_id_bytes
from threadkit.core.records import open_record
from threadkit.db import dockeys
from threadkit.db.events import Action, Folded, RecordEvent, decode_body
from threadkit.db.indexkeys import decode_id
from threadkit.db.purge import MARKER, mask_events
from threadkit.errors import ThreadkitError
from threadkit.store.layout import log_id_from_bytes

if TYPE_CHECKING:
    from threadkit.core.identity import PublicKey
    from threadkit.core.records import Record
    from threadkit.db.database import Database
    from threadkit.store.models import StoredRecord

__all__ = [
    "EventEntry",
    "EventRow",
    "FoundRecord",
    "LogState",
    "RecordFinder",
    "RecordNode",
    "cid_text",
    "collection_event_rows",
    "event_rows",
    "heads",
    "key_stamp",
    "log_of_key",
    "log_states",
    "open_stored",
    "records",
    "stamp_text",
    "stored_events",
]

_STAMP_SIZE = 12


# ------------------------------------------------------------------- order keys


def key_stamp(key: bytes) -> Timestamp:
    """The HLC stamp at the front of an order key (stamp ‖ log id bytes).

    Examples
    --------
    >>> key_stamp(Timestamp(7, 2).to_bytes() + b"log")
    Timestamp(wall=7, logical=2)
    """
    return Timestamp.from_bytes(bytes(key[:_STAMP_SIZE]))


def log_of_key(key: bytes) -> str:
    """The log id (peer id string) at the end of an order key."""
    return log_id_from_bytes(bytes(key[_STAMP_SIZE:]))


@lru_cache(maxsize=65_536)
def cid_text(cid: bytes) -> str:
    """A binary CID as its base32 string (``bafy…``), as ``cid_to_string`` writes it.

    Multibase base32 is RFC 4648 base32, lower case, unpadded, after a ``b``;
    ``base64`` does it some thousand times faster than the general codec.

    Examples
    --------
    >>> from threadkit.core.cid import cid_of, cid_to_string
    >>> cid_text(cid_of(b"x")) == cid_to_string(cid_of(b"x"))
    True
    """
    return "b" + base64.b32encode(bytes(cid)).decode().lower().rstrip("=")


def stamp_text(stamp: Timestamp) -> str:
    """A stamp as ``"wall.logical"`` (wall in ns since the epoch).

    Examples
    --------
    >>> stamp_text(Timestamp(1700000000000000000, 3))
    '1700000000000000000.3'
    """
    return f"{stamp.wall}.{stamp.logical}"


# ----------------------------------------------------------------------- events


@dataclass(frozen=True, slots=True)
class EventRow:
    """One event of a database, instance or collection event.

    Attributes
    ----------
    key : bytes
        Order key: stamp (12 bytes) ‖ log id bytes.
    collection : str
        The collection.
    instance : str
        The instance ``_id``; "" for collection events.
    action : Action
        What the event does.
    data : dict | None
        Document (create), merge patch (save) or config (collection create/update).
    base : bytes | None
        Order key of the latest event of the instance its writer had seen.
    author : str | None
        The writer's public key string (None when its record could not be found).
    record : bytes | None
        CID of the record that carried the event (None when not found).
    seen : bytes | None
        Order key of the latest migration of the collection its writer had seen.
    purged : bytes | None
        Order key of the purge that erased its data (``data`` is then the marker
        ``{"_purged": True}``, :mod:`.purge`).
    folded : Folded | None
        On the create compaction left of an instance's earlier events: what it holds
        (:class:`~threadkit.db.events.Folded`, :mod:`.compaction`).
    """

    key: bytes
    collection: str
    instance: str
    action: Action
    data: dict[str, Any] | None
    base: bytes | None
    author: str | None
    record: bytes | None
    seen: bytes | None = None
    purged: bytes | None = None
    folded: Folded | None = None

    @property
    def stamp(self) -> Timestamp:
        """The event's HLC stamp."""
        return key_stamp(self.key)

    @property
    def log(self) -> str:
        """The log id of the event's writer."""
        return log_of_key(self.key)

    def to_event(self) -> RecordEvent:
        """The event as a record body carries it (for re-applying it)."""
        data = None if self.purged is not None else self.data
        return RecordEvent(
            self.stamp,
            self.action,
            self.collection,
            self.instance,
            data,
            self.base,
            self.seen,
            self.purged,
            self.folded,
        )


@dataclass(frozen=True, slots=True)
class FoundRecord:
    """A record of a log, decoded: CID, author, counter, events and their order keys."""

    cid: bytes
    author: str
    counter: int
    keys: tuple[bytes, ...]
    events: tuple[RecordEvent, ...]


class RecordFinder:
    """Finds the record holding an event, by its order key, in the event's log.

    The stamps of a log's events increase with its counter (a writer stamps
    with one monotonic clock), so a binary search over counters finds the
    record in O(log n) decryptions; a linear scan is the fallback for a log
    that breaks that rule. Decoded records are cached.

    Parameters
    ----------
    db : Database
        The database (its repo and thread key are used, read-only).
    """

    def __init__(self, db: Database) -> None:
        self._db = db
        self._cache: dict[tuple[str, int], FoundRecord | None] = {}
        self._heads: dict[str, int] = {}

    def record_at(self, log_id: str, counter: int) -> FoundRecord | None:
        """The record of a log at a counter, decoded; None when unreadable."""
        cached = (log_id, counter)
        if cached in self._cache:
            return self._cache[cached]
        found = None
        stored = self._db._repo.read_log(self._db.id, log_id, after=counter - 1, limit=1)
        if stored:
            found = self._open(log_id, stored[0])
        self._cache[cached] = found
        return found

    def open_stored(self, stored: Any) -> FoundRecord | None:
        """Decode a stored record of this database (None when its body is unreadable)."""
        return self._open(stored.log_id, stored)

    def _open(self, log_id: str, stored: Any) -> FoundRecord | None:
        try:
            record = open_stored(
                self._db, self._db._repo.get_log(self._db.id, log_id).public, stored
            )
            events = decode_body(self._db.gate.read_body(record))
        except ThreadkitError:  # unreadable body (no read key) or malformed
            return None
        log_bytes = peer_id_bytes(log_id)
        keys = tuple(e.key(log_bytes) for e in events)
        found = FoundRecord(stored.cid, str(record.author), stored.counter, keys, tuple(events))
        self._cache[(log_id, stored.counter)] = found
        return found

    def _bisect(self, log_id: str, key: bytes, lo: int, hi: int) -> tuple[bool, FoundRecord | None]:
        """Binary search of counters ``lo..hi`` of a log for the record holding ``key``.

        Returns ``(True, record)`` when a record's key range takes ``key`` (``record`` is
        None when it does not hold it after all), ``(False, None)`` when the search could
        not decide: a probed record is unreadable or empty, or no range takes ``key``.
        """
        while lo <= hi:
            mid = (lo + hi) // 2
            found = self.record_at(log_id, mid)
            if found is None or not found.keys:
                break
            if key < found.keys[0]:
                hi = mid - 1
            elif key > found.keys[-1]:
                lo = mid + 1
            else:
                return True, (found if key in found.keys else None)
        return False, None

    def locate(self, key: bytes) -> FoundRecord | None:
        """The record that holds the event with order key ``key``, or None."""
        log_id = log_of_key(key)
        head = self._heads.get(log_id)
        if head is None:
            try:
                head = self._db._repo.get_head(self._db.id, log_id).counter
            except ThreadkitError:
                head = 0
            self._heads[log_id] = head
        decided, found = self._bisect(log_id, key, 1, head)
        if decided:
            return found
        for counter in range(1, head + 1):  # a log whose stamps do not increase, or unreadable
            found = self.record_at(log_id, counter)
            if found is not None and key in found.keys:
                return found
        return None


def _instance_events(txn: Any, db: Database, collection: str | None) -> Iterator[EventRow]:
    """Instance events from ``db_events`` (grouped by instance, not in total order)."""
    engine = db.engine
    prefix = dockeys.coll_key(engine.prefix, collection) if collection else engine.prefix
    cursor = txn.cursor(engine.tables.events)
    if not cursor.set_range(prefix):
        return
    start = len(engine.prefix)
    for raw_key, value in cursor:
        if not raw_key.startswith(prefix):
            return
        key = bytes(raw_key)
        name_end = key.index(b"\x00", start)
        name = key[start:name_end].decode()
        instance_id, end = decode_id(key, name_end + 1)
        code, data, base, author, record, *more = cbor2.loads(value)
        seen, purged, folded = (*more, None, None, None)[:3]
        if folded is not None:
            folded = Folded.from_node(folded)
        if purged is not None:
            data = dict(MARKER)
        yield EventRow(
            key[end:],
            name,
            instance_id,
            Action.from_code(code),
            data,
            base,
            author,
            record,
            seen,
            purged,
            folded,
        )


def _collection_events(
    db: Database, names: Iterable[str], finder: RecordFinder
) -> Iterator[EventRow]:
    """Collection create/update/delete events from the config histories."""
    for name in names:
        history = db.engine.colls.get(name)
        if history is None:
            continue
        previous = None
        for key, config in zip(history.keys, history.configs, strict=True):
            transform = history.transforms.get(key)
            if config is None:
                action, data = Action.DELETE_COLLECTION, None
            elif transform is not None:
                action = Action.MIGRATE_COLLECTION
                data = {"config": config.to_node(), "transform": transform.to_node()}
            elif previous is None:
                action, data = Action.NEW_COLLECTION, config.to_node()
            else:
                action, data = Action.UPDATE_COLLECTION, config.to_node()
            found = finder.locate(key)
            if found is not None:  # the action as written, when the record says
                action = found.events[found.keys.index(key)].action
            previous = config
            yield EventRow(
                key,
                name,
                "",
                action,
                data,
                None,
                found.author if found else None,
                found.cid if found else None,
            )


def event_rows(
    db: Database,
    collection: str | None = None,
    *,
    collection_events: bool = True,
    finder: RecordFinder | None = None,
) -> list[EventRow]:
    """Every event of a database (or of one collection), in total order.

    Parameters
    ----------
    db : Database
        The database.
    collection : str, optional
        Only this collection's events (its own create/update/delete included).
    collection_events : bool
        Include collection create/update/delete events.
    finder : RecordFinder, optional
        A finder to reuse (it caches decoded records).

    Returns
    -------
    list[EventRow]
        Sorted by order key (HLC stamp, then log id).
    """
    with db.read_txn() as txn:
        rows = list(_instance_events(txn, db, collection))
    if collection_events:
        rows.extend(collection_event_rows(db, collection, finder))
    rows.sort(key=lambda r: r.key)
    return rows


def collection_event_rows(
    db: Database, collection: str | None = None, finder: RecordFinder | None = None
) -> list[EventRow]:
    """The collection create/update/delete/migrate events (of one collection), by name.

    Not in total order: :func:`event_rows` sorts them among the instance events.
    """
    names = [collection] if collection else sorted(db.engine.colls)
    return list(_collection_events(db, names, finder or RecordFinder(db)))


@dataclass(frozen=True, slots=True)
class RecordNode:
    """One record of a log, opened and (when readable) decoded.

    Attributes
    ----------
    cid : bytes
        The record's CID.
    log : str
        Its log id.
    counter : int
        Its position in the log (the first is 1).
    prev : bytes | None
        CID of the previous record of the log.
    author : str | None
        The writer's public key string (``pubKey``); None if the record node
        could not be opened.
    size : int
        Bytes in its four blocks.
    events : tuple[RecordEvent, ...] | None
        Its events; None when the body could not be read (no read key).
    """

    cid: bytes
    log: str
    counter: int
    prev: bytes | None
    author: str | None
    size: int
    events: tuple[RecordEvent, ...] | None

    @property
    def stamp(self) -> Timestamp | None:
        """The stamp of its first event (None when unreadable)."""
        return self.events[0].stamp if self.events else None


def open_stored(db: Database, log_public: PublicKey, stored: StoredRecord) -> Record:
    """A record of one of the database's logs, as stored, opened with its thread key.

    Its signature is not checked again: it was checked on the way in.
    """
    return open_record(
        stored.blocks, service_key=db.key, log_key=log_public, cid=stored.cid,
        verify_signature=False,
    )  # fmt: skip


def records(db: Database) -> Iterator[RecordNode]:
    """Every record of every log of a database, log by log, oldest-first.

    Records are opened with the thread key without re-checking signatures
    (they were checked on the way in); a body that cannot be read (a
    replicator without the read key, or a malformed body) gives ``events=None``.
    """
    repo = db._repo
    can_read = db.key.read_key is not None
    for info in repo.list_logs(db.id):
        for stored in repo.read_log(db.id, info.id):
            author: str | None = None
            events: tuple[RecordEvent, ...] | None = None
            try:
                record = open_stored(db, info.public, stored)
                author = str(record.author)
                if can_read:
                    body = db.gate.read_body(record)
                    events = _masked(db, info.id, decode_body(body))
            except ThreadkitError:
                pass
            yield RecordNode(
                stored.cid,
                info.id,
                stored.counter,
                stored.prev,
                author,
                stored.blocks.total_size(),
                events,
            )


def _masked(db: Database, log_id: str, events: list[RecordEvent]) -> tuple[RecordEvent, ...]:
    """A record's events, the data of purged ones replaced by a marker (:mod:`.purge`)."""
    log_bytes = peer_id_bytes(log_id)
    with db.read_txn() as txn:
        return mask_events(db.engine, txn, tuple(events), tuple(e.key(log_bytes) for e in events))


@dataclass(frozen=True, slots=True)
class EventEntry:
    """An instance event as ``db_events`` holds it.

    Attributes
    ----------
    action : Action
        What the event does.
    data : dict | None
        Document (create), merge patch (save) or None (delete).
    base : bytes | None
        Order key of the latest event of the instance its writer had seen.
    author : str | None
        The writer's public key string.
    record : bytes | None
        CID of the record that carried the event.
    """

    action: Action
    data: dict[str, Any] | None
    base: bytes | None
    author: str | None
    record: bytes | None


def stored_events(
    db: Database, wanted: Iterable[tuple[str, str, bytes | None]]
) -> list[EventEntry | None]:
    """The instance events at (collection, instance, order key), from one snapshot.

    None where the key is None or no such event is stored.
    """
    engine = db.engine
    out: list[EventEntry | None] = []
    with db.read_txn() as txn:
        for name, instance, key in wanted:
            if key is None:
                out.append(None)
                continue
            event_key = dockeys.event_prefix(dockeys.coll_key(engine.prefix, name), instance) + key
            value = txn.get(event_key, db=engine.tables.events)
            if value is None:
                out.append(None)
                continue
            code, data, base, author, record, *more = cbor2.loads(value)
            if len(more) > 1 and more[1] is not None:
                data = dict(MARKER)
            out.append(EventEntry(Action.from_code(code), data, base, author, record))
    return out


# ------------------------------------------------------------------------- logs


def heads(db: Database) -> dict[str, int]:
    """The current heads of a database's logs: ``{log id: counter}``.

    A head set taken now and passed to ``coll.at()`` later gives the state as
    it is now, whatever arrives in between.

    Examples
    --------
    >>> import threadkit as tk
    >>> with tk.Peer(memory=True) as peer:
    ...     db = peer.new_db("notes")
    ...     _ = db.new_collection("Notes")
    ...     heads(db) == {db.log_id: 1}
    True
    """
    return {info.id: info.counter for info in db._repo.list_logs(db.id)}


@dataclass(frozen=True, slots=True)
class LogState:
    """A log of a database as this peer holds it.

    Attributes
    ----------
    id : str
        The log id (``12D3KooW…``).
    own : bool
        True for this peer's own log of the database.
    counter : int
        Records held.
    head : bytes | None
        The head record's CID, None while empty.
    applied : int
        Records whose events this peer has applied.
    public : str
        The log's public key string.
    addrs : tuple[str, ...]
        Multiaddrs it can be fetched from.
    """

    id: str
    own: bool
    counter: int
    head: bytes | None
    applied: int
    public: str
    addrs: tuple[str, ...]


def log_states(db: Database) -> list[LogState]:
    """Every log of a database, this peer's own first, then by id (one snapshot)."""
    infos = sorted(db._repo.list_logs(db.id), key=lambda i: (i.id != db.log_id, i.id))
    out = []
    with db.read_txn() as txn:
        for info in infos:
            raw = txn.get(
                dockeys.applied_key(db.prefix, peer_id_bytes(info.id)), db=db.engine.tables.applied
            )
            out.append(
                LogState(
                    info.id,
                    info.id == db.log_id,
                    info.counter,
                    info.head,
                    int.from_bytes(raw, "big") if raw else 0,
                    str(info.public),
                    tuple(info.addrs),
                )
            )
    return out
