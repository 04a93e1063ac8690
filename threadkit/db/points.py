"""Points in a database's history, and the events each includes.

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

:func:`resolve` turns a point into a :class:`Selection`; :mod:`.replay` replays
the selected events. pandas is imported only to read pandas times and strings.

Examples
--------
>>> import threadkit as tk
>>> with tk.Peer(memory=True) as peer:
...     db = peer.new_db("notes")
...     _ = db.new_collection("Notes")
...     resolve(db, 0).label, resolve(db, {db.log_id: 1}).label == f"heads {{{db.log_id!r}: 1}}"
('time 0 s', True)
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeAlias

from threadkit.core.cid import CID_SIZE, cid_from_string
from threadkit.core.clock import MAX_LOGICAL, MAX_WALL, Timestamp
from threadkit.db.timeline import EventRow, RecordFinder, cid_text
from threadkit.errors import InvalidInput, LogNotFound, ThreadkitError

if TYPE_CHECKING:
    from threadkit.db.database import Database

__all__ = ["Point", "Selection", "resolve"]

Point: TypeAlias = "datetime | int | str | bytes | Mapping[str, int | str | bytes] | Any"
"""A point in a database's history: a time, a record CID or a set of heads (module doc)."""

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
