"""Time travel: a collection as it was at a time, a record or a set of heads; diffs.

The state of a collection is a pure function of its events (docs/semantics.md),
so its past is the same function of a subset of them. A **point** names the
subset:

- a **time** (``datetime``, ``pandas.Timestamp``, ``numpy.datetime64``, ISO
  string, or seconds since the epoch as an ``int`` or ``float``, as
  ``time.time()`` gives them): the events whose HLC wall time is ≤ that time —
  a prefix of the total order. Naive ``datetime.datetime`` values are local
  time (Python's convention); naive ``pandas.Timestamp`` values and strings are
  UTC (pandas' convention, and that of the ``time`` column of ``history()``).
  Nanoseconds (such as a document's ``_mod``) go in as
  ``pd.Timestamp(ns, unit="ns")``: a number of seconds past the year 9999 is
  refused with that hint rather than read as some other time.
- a **record** (its CID, ``bytes`` or string): the state after that record and
  everything ordered before it — the events whose order key is ≤ the key of the
  record's last event. This is a prefix of the total order too, so it may hold
  events of other logs the record's writer had not seen yet.
- a **set of heads** (``{log id: counter or record CID}``): exactly the records
  up to each head in each named log, and none of any log not named — the state
  a peer holding exactly those records has (``db.logs()`` lists the heads).

The subset is **replayed** through the database engine itself: its events are
applied, in the total order, to a fresh engine in a throwaway temporary repo.
Every rule — schema, write validator, unique-index claims and their re-folds,
collection epochs — is the live engine's, and convergence (any delivery order
gives the same state) makes the replay equal to what a peer holding those
events has. Only the collection's own events are replayed, so the cost is one
fast-path apply per event of that collection.

Examples
--------
>>> import threadkit as tk
>>> with tk.Peer(memory=True) as peer:
...     db = peer.new_db("notes")
...     notes = db.new_collection("Notes")
...     _ = notes.create({"_id": "n1", "text": "first"})
...     then = heads(db)  # or a time, or a record CID
...     notes.save({"_id": "n1", "text": "second"})
...     _ = notes.create({"_id": "n2", "text": "other"})
...     old = documents_at(notes, then)
...     changes = diff(notes, then)
>>> [(d["_id"], d["text"]) for d in old]
[('n1', 'first')]
>>> changes[["change", "fields"]].to_dict("index")
{'n1': {'change': 'changed', 'fields': ['text']}, 'n2': {'change': 'added', 'fields': ['text']}}
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeAlias

from threadkit.core.cid import CID_SIZE, cid_from_string
from threadkit.core.clock import MAX_LOGICAL, MAX_WALL, Timestamp
from threadkit.errors import InvalidInput, LogNotFound, ThreadkitError
from threadkit.frames.history import EventRow, RecordFinder, cid_text, event_rows

if TYPE_CHECKING:
    import pandas as pd

    from threadkit.db.collection import Collection
    from threadkit.db.database import Database

__all__ = [
    "Point",
    "Selection",
    "changed_fields",
    "collection_at",
    "diff",
    "documents_at",
    "documents_frame",
    "heads",
    "resolve",
]

Point: TypeAlias = "datetime | int | str | bytes | Mapping[str, int | str | bytes] | Any"
"""A point in a database's history: a time, a record CID or a set of heads (module doc)."""

_UNTRACKED = ("_mod",)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Selection:
    """Which events a point includes.

    Attributes
    ----------
    bound : bytes | None
        Include events whose order key is ≤ ``bound`` (time and record points).
    records : frozenset[bytes] | None
        Include events carried by these records (head sets).
    label : str
        A description of the point, for messages.
    """

    bound: bytes | None = None
    records: frozenset[bytes] | None = None
    label: str = ""

    def includes(self, row: EventRow) -> bool:
        """True when the point's state includes the event."""
        if self.bound is not None and row.key > self.bound:
            return False
        return self.records is None or (row.record is not None and row.record in self.records)


# ------------------------------------------------------------------------ points


def heads(db: Database) -> dict[str, int]:
    """The current heads of a database's logs: ``{log id: counter}``.

    A head set taken now and passed to :func:`documents_at` later gives the
    state as it is now, whatever arrives in between.

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


def _time_bound(ns: int) -> bytes:
    """The largest order key with a wall time ≤ ``ns``."""
    if ns < 0:
        return b""
    return Timestamp(min(ns, MAX_WALL), MAX_LOGICAL).to_bytes() + b"\xff" * 64


def _ns_of_datetime(when: datetime) -> int:
    if when.tzinfo is None:
        when = when.astimezone()  # naive: local time, as datetime.timestamp() reads it
    delta = when - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000


def _record_bound(db: Database, cid: bytes, finder: RecordFinder) -> bytes:
    from threadkit.errors import BlockNotFound

    try:
        stored = db._repo.get_record(cid)
    except BlockNotFound:
        raise BlockNotFound(
            f"record {cid_text(cid)} is not held by this peer's replica of {db.name!r}"
        ) from None
    if stored.thread_id != db.id:
        raise InvalidInput(f"record {cid_text(cid)} belongs to another database")
    found = finder.open_stored(stored)
    if found is None or not found.keys:
        raise InvalidInput(f"record {cid_text(cid)} has no readable events")
    return max(found.keys)


def _as_cid(value: str | bytes | bytearray | memoryview) -> bytes | None:
    """A record CID from bytes or a string; None when it is not one."""
    if isinstance(value, bytes | bytearray | memoryview):
        raw = bytes(value)
        return raw if len(raw) == CID_SIZE else None
    try:
        raw = cid_from_string(value)
    except ThreadkitError:
        return None
    return raw if len(raw) == CID_SIZE else None


def _head_records(db: Database, points: Mapping[str, int | str | bytes]) -> frozenset[bytes]:
    records: set[bytes] = set()
    known = {info.id: info.counter for info in db._repo.list_logs(db.id)}
    for log_id, head in points.items():
        if log_id not in known:
            raise LogNotFound(f"log {log_id!r} is not a log of {db.name!r}")
        if isinstance(head, bool) or not isinstance(head, int | str | bytes):
            raise InvalidInput(f"head of log {log_id} must be a counter or a record CID")
        if isinstance(head, int):
            counter = head
        else:
            cid = _as_cid(head)
            if cid is None:
                raise InvalidInput(f"head of log {log_id}: {head!r} is not a record CID")
            stored = db._repo.get_record(cid)
            if stored.thread_id != db.id or stored.log_id != log_id:
                raise InvalidInput(f"record {cid_text(cid)} is not in log {log_id}")
            counter = stored.counter
        if not 0 <= counter <= known[log_id]:
            raise InvalidInput(
                f"log {log_id} has {known[log_id]} records; head {counter} is out of range"
            )
        if counter:
            records.update(s.cid for s in db._repo.read_log(db.id, log_id, limit=counter))
    return frozenset(records)


def resolve(db: Database, when: Point, finder: RecordFinder | None = None) -> Selection:
    """The events a point includes (see the module docstring for the kinds of point).

    Parameters
    ----------
    db : Database
        The database.
    when : datetime, pandas.Timestamp, int, float, str, bytes or dict
        A time (a number = seconds since the epoch), a record CID, or ``{log id: head}``.
    finder : RecordFinder, optional
        A record finder to reuse.

    Raises
    ------
    InvalidInput
        For a value that is no kind of point.
    BlockNotFound, LogNotFound
        For a record or log this replica does not hold.
    """
    finder = finder or RecordFinder(db)
    if isinstance(when, Mapping):
        return Selection(records=_head_records(db, when), label=f"heads {dict(when)!r}")
    if isinstance(when, bool) or type(when).__name__ == "bool_":
        raise InvalidInput("a point in history cannot be a bool")
    if isinstance(when, numbers.Real):
        return Selection(bound=_time_bound(_seconds_ns(when)), label=f"time {when} s")
    if isinstance(when, bytes | bytearray | memoryview | str):
        cid = _as_cid(when)
        if cid is not None:
            return Selection(bound=_record_bound(db, cid, finder), label=cid_text(cid))
        if isinstance(when, str):
            return Selection(bound=_time_bound(_pandas_ns(when)), label=f"time {when}")
        raise InvalidInput(f"{bytes(when)[:40]!r} is not a record CID")
    if _is_pandas_time(when):
        return Selection(bound=_time_bound(_pandas_ns(when)), label=f"time {when}")
    if isinstance(when, datetime):
        return Selection(bound=_time_bound(_ns_of_datetime(when)), label=f"time {when}")
    if type(when).__module__ == "numpy":
        return Selection(bound=_time_bound(_pandas_ns(when)), label=f"time {when}")
    raise InvalidInput(
        "a point in history is a time (datetime, pandas Timestamp, ISO string, or seconds "
        "since the epoch as an int or float), a record CID, or {log id: head}; "
        f"got {type(when).__name__}"
    )


_MAX_SECONDS = 253_402_300_799  # 9999-12-31T23:59:59Z


def _seconds_ns(value: numbers.Real) -> int:
    """Nanoseconds since the epoch of ``value`` seconds (an int exactly, a float to the ns)."""
    if isinstance(value, numbers.Integral):
        whole, fraction = int(value), 0
    else:
        number = float(value)
        if not math.isfinite(number):
            raise InvalidInput(f"{value!r} is not a time")
        whole = math.floor(number)
        fraction = round((number - whole) * 1_000_000_000)
    if abs(whole) > _MAX_SECONDS:
        raise InvalidInput(
            f"{value!r} seconds since the epoch is beyond the year 9999; a time in "
            "nanoseconds (such as _mod) goes in as pd.Timestamp(ns, unit='ns')"
        )
    return whole * 1_000_000_000 + fraction


def _is_pandas_time(value: object) -> bool:
    return type(value).__module__.startswith("pandas") and hasattr(value, "value")


def _pandas_ns(value: Any) -> int:
    import pandas as pd

    try:
        stamp = pd.Timestamp(value)
    except (ValueError, TypeError) as exc:
        raise InvalidInput(f"{value!r} is neither a record CID nor a time: {exc}") from None
    if stamp is pd.NaT:
        raise InvalidInput(f"{value!r} is not a time")
    if stamp.tzinfo is None:
        stamp = stamp.tz_localize("UTC")
    return int(stamp.as_unit("ns").value)


# ------------------------------------------------------------------------ replay


def _replay(
    db: Database, name: str, rows: list[EventRow], reader: str | None
) -> list[dict[str, Any]]:
    """Apply ``rows`` (one collection's events, in order) to a fresh engine; its documents."""
    from threadkit.db.engine import Engine, open_db_tables
    from threadkit.store.repo import Repo

    if not rows:
        return []
    with Repo.temporary(durable=False, map_size=_map_size(rows)) as repo:
        engine = Engine(open_db_tables(repo), b"\x00\x00\x00\x01")
        with engine.write(repo) as txn:
            for group in _by_record(rows):
                first = group[0]
                engine.apply_received(
                    txn,
                    [row.to_event() for row in group],
                    first.key[12:],
                    first.author or "",
                    first.record or b"",
                )
        history = engine.colls.get(name)
        config = history.current if history else None
        with repo.transaction() as txn:
            docs = list(engine.scan_docs(txn, name)) if config is not None else []
    if config is None or config.filter is None:
        return docs
    read_filter = config.filter
    visible = read_filter.filter_many(reader, docs) if docs else []
    return [doc for doc in visible if doc is not None]


def _map_size(rows: list[EventRow]) -> int:
    # room for the events, documents and indexes of the replay; address space only
    return max(64 * 1024**2, 16 * 1024 * len(rows)) * 8


def _by_record(rows: list[EventRow]) -> Iterator[list[EventRow]]:
    """Consecutive rows of one record (and log), as the record applied them."""
    group: list[EventRow] = []
    for row in rows:
        if group and (row.record != group[0].record or row.key[12:] != group[0].key[12:]):
            yield group
            group = []
        group.append(row)
    if group:
        yield group


def _reader(coll: Collection, identity: object | None) -> str:
    return str(identity) if identity is not None else str(coll.db.identity.public)


def documents_at(
    coll: Collection, when: Point, *, identity: object | None = None
) -> list[dict[str, Any]]:
    """A collection's documents as they were at a point in its history.

    Parameters
    ----------
    coll : Collection
        The collection (it may have been deleted since).
    when : datetime, pandas.Timestamp, int, str, bytes or dict
        A time (``int`` = ns since the epoch), a record CID, or ``{log id: head}``
        (see the module docstring).
    identity : PublicKey or str, optional
        The reader the read filter in effect at that point is applied for
        (default: the peer's identity).

    Returns
    -------
    list[dict]
        The documents, in ``_id`` order; empty when the collection did not
        exist at that point.

    Examples
    --------
    >>> import threadkit as tk
    >>> with tk.Peer(memory=True) as peer:
    ...     db = peer.new_db("notes")
    ...     notes = db.new_collection("Notes")
    ...     _ = notes.create({"_id": "a"})
    ...     first = heads(db)
    ...     _ = notes.create({"_id": "b"})
    ...     [d["_id"] for d in documents_at(notes, first)]
    ['a']
    """
    db = coll.db
    finder = RecordFinder(db)
    selection = resolve(db, when, finder)
    rows = [r for r in event_rows(db, coll.name, finder=finder) if selection.includes(r)]
    return _replay(db, coll.name, rows, _reader(coll, identity))


def collection_at(coll: Collection, when: Point, *, identity: object | None = None) -> pd.DataFrame:
    """A collection as it was at a point in its history, as a DataFrame.

    Parameters
    ----------
    coll : Collection
        The collection.
    when : datetime, pandas.Timestamp, int, str, bytes or dict
        A time (``int`` = ns since the epoch), a record CID, or ``{log id: head}``
        (see the module docstring for exactly which events each includes).
    identity : PublicKey or str, optional
        The reader for the read filter (default: the peer's identity).

    Returns
    -------
    pandas.DataFrame
        One row per document, indexed by ``_id``; one column per top-level
        field (nested objects and arrays are kept as Python objects).

    Examples
    --------
    >>> import threadkit as tk
    >>> with tk.Peer(memory=True) as peer:
    ...     db = peer.new_db("notes")
    ...     notes = db.new_collection("Notes")
    ...     _ = notes.create({"_id": "a", "n": 1})
    ...     first = heads(db)
    ...     notes.save({"_id": "a", "n": 2})
    ...     int(collection_at(notes, first).loc["a", "n"])
    1
    """
    return documents_frame(documents_at(coll, when, identity=identity))


def documents_frame(docs: list[dict[str, Any]]) -> pd.DataFrame:
    """Documents as a DataFrame indexed by ``_id`` (top-level fields as columns).

    Examples
    --------
    >>> documents_frame([{"_id": "a", "n": 1}, {"_id": "b", "m": "x"}]).to_dict("index")
    {'a': {'n': 1.0, 'm': nan}, 'b': {'n': nan, 'm': 'x'}}
    """
    import pandas as pd

    frame = pd.DataFrame.from_records(docs) if docs else pd.DataFrame({"_id": []}, dtype=object)
    frame = frame.set_index("_id")
    frame.index.name = "_id"
    return frame


# -------------------------------------------------------------------------- diff


def _leaves(doc: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for name, value in doc.items():
        path = f"{prefix}{name}"
        if isinstance(value, dict) and value:
            yield from _leaves(value, path + ".")
        else:
            yield path, value


def changed_fields(
    before: dict[str, Any] | None, after: dict[str, Any] | None, ignore: tuple[str, ...] = ()
) -> list[str]:
    """Dot paths of the leaves that differ between two documents (set, changed or removed).

    Examples
    --------
    >>> changed_fields({"a": 1, "b": {"c": 2}, "d": 0}, {"a": 1, "b": {"c": 3}, "e": 0})
    ['b.c', 'd', 'e']
    """
    old = dict(_leaves(before or {}))
    new = dict(_leaves(after or {}))
    paths = []
    for path in sorted(old.keys() | new.keys()):
        if path == "_id" or path in ignore:
            continue
        missing = path not in old or path not in new
        if missing or old[path] != new[path] or type(old[path]) is not type(new[path]):
            paths.append(path)
    return paths


def diff(
    coll: Collection,
    a: Point,
    b: Point | None = None,
    *,
    identity: object | None = None,
    ignore: tuple[str, ...] = _UNTRACKED,
) -> pd.DataFrame:
    """What changed in a collection between two points of its history.

    Parameters
    ----------
    coll : Collection
        The collection.
    a, b : point
        The two points (a time, a record CID or a head set; see the module
        docstring). ``b`` defaults to now (the live collection).
    identity : PublicKey or str, optional
        The reader for the read filter (default: the peer's identity).
    ignore : tuple of str
        Field paths not compared (default ``("_mod",)``: the write time, which
        changes on every save).

    Returns
    -------
    pandas.DataFrame
        One row per instance that differs, indexed by ``_id`` (sorted), with
        columns ``change`` ("added", "removed" or "changed"), ``fields`` (the
        sorted dot paths of the leaves set, changed or removed), ``before`` and
        ``after`` (the documents, None where absent).

    Examples
    --------
    >>> import threadkit as tk
    >>> with tk.Peer(memory=True) as peer:
    ...     db = peer.new_db("notes")
    ...     notes = db.new_collection("Notes")
    ...     _ = notes.create({"_id": "a", "n": 1}, {"_id": "b", "n": 1})
    ...     start = heads(db)
    ...     notes.save({"_id": "a", "n": 2})
    ...     notes.delete("b")
    ...     diff(notes, start)[["change", "fields"]].to_dict("index")
    {'a': {'change': 'changed', 'fields': ['n']}, 'b': {'change': 'removed', 'fields': ['n']}}
    """
    import pandas as pd

    before = {d["_id"]: d for d in documents_at(coll, a, identity=identity)}
    if b is None:
        after = {d["_id"]: d for d in coll.find(identity=_reader(coll, identity))}
    else:
        after = {d["_id"]: d for d in documents_at(coll, b, identity=identity)}
    rows: dict[str, list[Any]] = {"_id": [], "change": [], "fields": [], "before": [], "after": []}
    for instance_id in sorted(before.keys() | after.keys()):
        old, new = before.get(instance_id), after.get(instance_id)
        fields = changed_fields(old, new, ignore)
        if old is None:
            change = "added"
        elif new is None:
            change = "removed"
        elif fields:
            change = "changed"
        else:
            continue
        rows["_id"].append(instance_id)
        rows["change"].append(change)
        rows["fields"].append(fields)
        rows["before"].append(old)
        rows["after"].append(new)
    frame = pd.DataFrame(
        {
            "change": pd.Series(rows["change"], dtype="string"),
            "fields": pd.Series(rows["fields"], dtype=object),
            "before": pd.Series(rows["before"], dtype=object),
            "after": pd.Series(rows["after"], dtype=object),
        }
    )
    frame.index = pd.Index(rows["_id"], dtype="string", name="_id")
    return frame
