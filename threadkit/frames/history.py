"""A database's events as DataFrames: the history, and the writes that lost.

Every write is an event in the thread's logs (docs/design.md §7.6). :func:`history`
lists them all in the total order (HLC stamp, then log id; docs/semantics.md),
with who wrote them, in which log and record, and what they did.
:func:`conflicts` lists the writes that lost — overwritten by a concurrent
write, or rejected where they stood — beside the writes they lost to.

Both read the document store's tables read-only, in one snapshot: instance
events come from ``db_events`` (each holds its action, document or merge patch,
base, author and record CID), collection events from the collections' config
histories (their record is found by a binary search of the writer's log, whose
stamps increase with the counter). Nothing is decrypted except the few records
that carry collection events.

Examples
--------
>>> import threadkit as tk
>>> with tk.Peer(memory=True) as peer:
...     db = peer.new_db("notes")
...     notes = db.new_collection("Notes")
...     ids = notes.create({"_id": "n1", "text": "hello"})
...     notes.save({"_id": "n1", "text": "hello, world"})
...     df = history(db)
>>> list(df["action"])
['new_collection', 'create', 'save']
>>> df["patch"].iloc[2]["text"]
'hello, world'
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import cbor2

from threadkit.core.clock import Timestamp
from threadkit.db import dockeys
from threadkit.db.events import Action, RecordEvent, decode_body
from threadkit.db.indexkeys import decode_id
from threadkit.errors import ThreadkitError
from threadkit.store.layout import log_id_from_bytes

if TYPE_CHECKING:
    import pandas as pd

    from threadkit.db.database import Database

__all__ = [
    "EventRow",
    "RecordFinder",
    "cid_text",
    "conflicts",
    "event_rows",
    "history",
    "key_stamp",
    "log_of_key",
    "stamp_text",
    "value_at",
]

_STAMP_SIZE = 12
_SAVE_LOST_TO_DELETE = "saved an instance that a concurrent write deleted"

HISTORY_COLUMNS = (
    "hlc",
    "time",
    "author",
    "log",
    "record",
    "collection",
    "instance",
    "action",
    "patch",
    "rejected",
    "reason",
)
"""Columns of :func:`history`, in order."""

_SIDE_COLUMNS = ("hlc", "time", "author", "log", "record", "value")
CONFLICT_COLUMNS = (
    "collection",
    "instance",
    "kind",
    "path",
    "reason",
    *(f"loser_{c}" for c in _SIDE_COLUMNS),
    *(f"winner_{c}" for c in _SIDE_COLUMNS),
)
"""Columns of :func:`conflicts`, in order."""


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


def value_at(data: Any, path: str) -> Any:
    """The value a document or merge patch holds at a dot path, None when it holds none.

    Walking stops at a non-object on the way: a patch that replaced ``a`` with
    a scalar holds that scalar for ``a.b``. The empty path is ``data`` itself.

    Examples
    --------
    >>> value_at({"a": {"b": 1}}, "a.b"), value_at({"a": 5}, "a.b"), value_at({}, "x")
    (1, 5, None)
    """
    if path == "":
        return data
    node = data
    for part in path.split("."):
        if not isinstance(node, dict):
            return node
        if part not in node:
            return None
        node = node[part]
    return node


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
    """

    key: bytes
    collection: str
    instance: str
    action: Action
    data: dict[str, Any] | None
    base: bytes | None
    author: str | None
    record: bytes | None

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
        return RecordEvent(
            self.stamp, self.action, self.collection, self.instance, self.data, self.base
        )


@dataclass(frozen=True, slots=True)
class _Found:
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
        self._cache: dict[tuple[str, int], _Found | None] = {}
        self._heads: dict[str, int] = {}

    def record_at(self, log_id: str, counter: int) -> _Found | None:
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

    def open_stored(self, stored: Any) -> _Found | None:
        """Decode a stored record of this database (None when its body is unreadable)."""
        return self._open(stored.log_id, stored)

    def _open(self, log_id: str, stored: Any) -> _Found | None:
        from threadkit.core.identity import peer_id_bytes
        from threadkit.core.records import open_record

        try:
            public = self._db._repo.get_log(self._db.id, log_id).public
            record = open_record(
                stored.blocks,
                service_key=self._db.key,
                log_key=public,
                cid=stored.cid,
                verify_signature=False,
            )
            events = decode_body(record.read_body(self._db.key))
        except ThreadkitError:  # unreadable body (no read key) or malformed
            return None
        log_bytes = peer_id_bytes(log_id)
        keys = tuple(e.key(log_bytes) for e in events)
        found = _Found(stored.cid, str(record.author), stored.counter, keys, tuple(events))
        self._cache[(log_id, stored.counter)] = found
        return found

    def locate(self, key: bytes) -> _Found | None:
        """The record that holds the event with order key ``key``, or None."""
        log_id = log_of_key(key)
        head = self._heads.get(log_id)
        if head is None:
            try:
                head = self._db._repo.get_head(self._db.id, log_id).counter
            except ThreadkitError:
                head = 0
            self._heads[log_id] = head
        lo, hi = 1, head
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
                return found if key in found.keys else None
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
        code, data, base, author, record = cbor2.loads(value)
        yield EventRow(
            key[end:], name, instance_id, Action.from_code(code), data, base, author, record
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
            if config is None:
                action, data = Action.DELETE_COLLECTION, None
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
    with db._repo.transaction() as txn:
        rows = list(_instance_events(txn, db, collection))
    if collection_events:
        names = [collection] if collection else sorted(db.engine.colls)
        rows.extend(_collection_events(db, names, finder or RecordFinder(db)))
    rows.sort(key=lambda r: r.key)
    return rows


# ---------------------------------------------------------------------- history


def _lost_index(db: Database, collection: str | None) -> dict[tuple[str, str, bytes], str]:
    """Rejected events: (collection, instance, key) → reason."""
    rejected: dict[tuple[str, str, bytes], str] = {}
    for lost in db.lost_writes(collection):
        ident = (lost["collection"], lost["instance_id"], lost["loser"])
        if lost["kind"] == "rejected":
            rejected[ident] = lost["reason"] or "rejected"
        elif lost["kind"] == "overwritten" and lost["path"] == "":
            # a save refused because a concurrent delete precedes it (see conflicts())
            rejected.setdefault(ident, _SAVE_LOST_TO_DELETE)
    return rejected


def _times(walls: list[int]) -> Any:
    import pandas as pd

    return pd.to_datetime(pd.Series(walls, dtype="int64"), unit="ns", utc=True)


def history(db: Database, collection: str | None = None) -> pd.DataFrame:
    """Every event of a database, in the total order, as a DataFrame.

    Parameters
    ----------
    db : Database
        The database.
    collection : str, optional
        Only this collection's events: its instance events and its own
        create/update/delete events. None: every collection, collection
        events included (``instance`` is "" for those).

    Returns
    -------
    pandas.DataFrame
        One row per event, in the total order (HLC stamp, then log id), with
        columns:

        ========== ==============================================================
        hlc        the HLC stamp as ``"wall.logical"`` (wall in ns)
        time       the stamp's wall time, ``datetime64[ns, UTC]``
        author     the writer's public key string (the record's ``pubKey``)
        log        the writer's log id (``12D3KooW…``)
        record     the CID of the record that carried the event (base32)
        collection the collection
        instance   the instance ``_id`` ("" for collection events)
        action     create, save, delete, new_collection, update_collection,
                   delete_collection
        patch      create: the document; save: the merge patch (RFC 7386, None
                   removes a field); new/update_collection: the config; else None
        rejected   True when the event was skipped where it stood (schema,
                   validator, unique index, a concurrent delete, no collection)
        reason     why it was rejected, else None
        ========== ==============================================================

        Overwritten writes are not ``rejected``: they were applied and later
        overwritten; :func:`conflicts` lists them.

    Examples
    --------
    >>> import threadkit as tk
    >>> with tk.Peer(memory=True) as peer:
    ...     db = peer.new_db("notes")
    ...     notes = db.new_collection("Notes", indexes=[tk.Index("slug", unique=True)])
    ...     _ = notes.create({"_id": "a", "slug": "x"})
    ...     notes.delete("a")
    ...     df = history(db, "Notes")
    >>> df[["instance", "action", "rejected"]].to_dict("records")  # doctest: +NORMALIZE_WHITESPACE
    [{'instance': '', 'action': 'new_collection', 'rejected': False},
     {'instance': 'a', 'action': 'create', 'rejected': False},
     {'instance': 'a', 'action': 'delete', 'rejected': False}]
    """
    import pandas as pd

    if collection is not None and collection not in db.engine.colls:
        _unknown_collection(db, collection)
    rows = event_rows(db, collection)
    rejected = _lost_index(db, collection)
    stamps = [r.stamp for r in rows]
    reasons = [rejected.get((r.collection, r.instance, r.key)) for r in rows]
    frame = pd.DataFrame(
        {
            "hlc": pd.Series([stamp_text(s) for s in stamps], dtype="string"),
            "time": _times([s.wall for s in stamps]),
            "author": pd.Series([r.author for r in rows], dtype="string"),
            "log": pd.Series([r.log for r in rows], dtype="string"),
            "record": pd.Series(
                [cid_text(r.record) if r.record else None for r in rows], dtype="string"
            ),
            "collection": pd.Series([r.collection for r in rows], dtype="string"),
            "instance": pd.Series([r.instance for r in rows], dtype="string"),
            "action": pd.Series([str(r.action) for r in rows], dtype="string"),
            "patch": pd.Series([r.data for r in rows], dtype=object),
            "rejected": pd.Series([reason is not None for reason in reasons], dtype=bool),
            "reason": pd.Series(reasons, dtype="string"),
        },
        columns=list(HISTORY_COLUMNS),
    )
    return frame


def _unknown_collection(db: Database, name: str) -> None:
    from threadkit.errors import CollectionNotFound

    raise CollectionNotFound(f"collection {name!r} has never existed in {db.name!r}")


# -------------------------------------------------------------------- conflicts


def conflicts(db: Database, collection: str | None = None) -> pd.DataFrame:
    """The writes that lost, beside the writes they lost to.

    Parameters
    ----------
    db : Database
        The database.
    collection : str, optional
        Only this collection's lost writes.

    Returns
    -------
    pandas.DataFrame
        One row per lost write (``db.lost_writes()``), ordered by the losing
        event's place in the total order, with columns:

        ================ =========================================================
        collection       the collection
        instance         the instance ``_id``
        kind             "overwritten": a concurrent write later in the order set
                         the same field, its writer not having seen the loser;
                         "rejected": skipped where it stood (schema, validator,
                         unique index, a concurrent delete)
        path             the overwritten field's dot path ("" when a save lost
                         the whole instance to a concurrent delete); None for
                         rejections
        reason           why a rejected write was refused, else None
        loser_hlc, …     the losing event: HLC stamp, time (UTC), author, log,
                         record CID, and ``loser_value``: its value at ``path``
                         (the whole document or patch for a rejection)
        winner_hlc, …    the same for the winning event (None when a rejection
                         lost to no event); ``winner_value`` is its value at
                         ``path``, None when it removed the field or deleted
                         the instance
        ================ =========================================================

        Every peer holding the same records gets the same rows.

    Examples
    --------
    >>> import threadkit as tk
    >>> from threadkit.db.handoff import handoff, replica
    >>> with tk.Peer(memory=True) as a, tk.Peer(memory=True) as b:
    ...     db_a = a.new_db("shared")
    ...     _ = db_a.new_collection("Notes").create({"_id": "n", "text": "draft"})
    ...     db_b = replica(b, db_a)
    ...     _ = handoff(db_a, db_b)
    ...     db_a["Notes"].save({"_id": "n", "text": "from A"})
    ...     db_b["Notes"].save({"_id": "n", "text": "from B"})  # concurrent: B had not seen A's
    ...     _ = handoff(db_a, db_b), handoff(db_b, db_a)
    ...     df = conflicts(db_a)
    >>> row = df.iloc[0]
    >>> row["kind"], row["path"], row["loser_value"], row["winner_value"]
    ('overwritten', 'text', 'from A', 'from B')
    """
    import pandas as pd

    lost = db.lost_writes(collection)
    lost.sort(key=lambda w: (w["loser"], w["collection"], w["instance_id"], w["path"] or ""))
    engine = db.engine
    columns: dict[str, list[Any]] = {name: [] for name in CONFLICT_COLUMNS}
    with db._repo.transaction() as txn:

        def load(name: str, instance: str, key: bytes | None) -> tuple[Any, ...] | None:
            if key is None:
                return None
            event_key = dockeys.event_prefix(dockeys.coll_key(engine.prefix, name), instance) + key
            value = txn.get(event_key, db=engine.tables.events)
            return None if value is None else tuple(cbor2.loads(value))

        for entry in lost:
            name, instance, path = entry["collection"], entry["instance_id"], entry["path"]
            kind, reason = entry["kind"], entry["reason"]
            if kind == "overwritten" and path == "":
                reason = reason or _SAVE_LOST_TO_DELETE
            loser, winner = entry["loser"], entry["winner"]
            columns["collection"].append(name)
            columns["instance"].append(instance)
            columns["kind"].append(kind)
            columns["path"].append(path)
            columns["reason"].append(reason)
            for side, key in (("loser", loser), ("winner", winner)):
                event = load(name, instance, key)
                _side(columns, side, key, event, path if kind == "overwritten" else "")
    series = {}
    for column in CONFLICT_COLUMNS:
        values = columns[column]
        if column.endswith("_time"):
            series[column] = pd.Series(values, dtype="datetime64[ns, UTC]")
        elif column.endswith("_value"):
            series[column] = pd.Series(values, dtype=object)
        else:
            series[column] = pd.Series(values, dtype="string")
    return pd.DataFrame(series, columns=list(CONFLICT_COLUMNS))


def _side(
    columns: dict[str, list[Any]],
    side: str,
    key: bytes | None,
    event: tuple[Any, ...] | None,
    path: str,
) -> None:
    stamp = key_stamp(key) if key else None
    columns[f"{side}_hlc"].append(stamp_text(stamp) if stamp else None)
    columns[f"{side}_time"].append(_timestamp(stamp.wall) if stamp else None)
    columns[f"{side}_log"].append(log_of_key(key) if key else None)
    if event is None:
        columns[f"{side}_author"].append(None)
        columns[f"{side}_record"].append(None)
        columns[f"{side}_value"].append(None)
        return
    code, data, _base, author, record = event
    columns[f"{side}_author"].append(author)
    columns[f"{side}_record"].append(cid_text(record) if record else None)
    deleted = Action.from_code(code) is Action.DELETE
    columns[f"{side}_value"].append(None if deleted else value_at(data, path))


def _timestamp(wall: int) -> Any:
    """A wall time in ns as a UTC ``pandas.Timestamp`` (ns precision)."""
    import pandas as pd

    return pd.Timestamp(wall, unit="ns", tz="UTC")
