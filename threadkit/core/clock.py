"""Hybrid logical clock (HLC) for event stamps (docs/design.md §7.1).

A :class:`Timestamp` is ``(wall, logical)``: ``wall`` is nanoseconds since the
Unix epoch (never behind any stamp this clock has seen), ``logical`` counts
events within one ``wall`` value. Stamps from one :class:`HLC` strictly
increase; :meth:`HLC.update` merges a stamp received from another peer, so a
write made after seeing a remote event sorts after it — unless the stamp is more than
:data:`MAX_DRIFT` ahead of local physical time: such a stamp is not merged, so one record
stamped near the end of time cannot drag the clock there and stop every later write
(docs/semantics.md, "Stamps from the future").

Events are totally ordered by ``(timestamp, log id)``: :func:`order_key` gives
a bytes key that sorts that way, usable directly as an LMDB key.
"""

from __future__ import annotations

import struct
import threading
import time
from collections.abc import Callable
from typing import NamedTuple

from threadkit.errors import InvalidTimestamp

__all__ = ["HLC", "MAX_DRIFT", "MAX_LOGICAL", "MAX_WALL", "Timestamp", "order_key"]

MAX_WALL = 2**63 - 1
MAX_LOGICAL = 2**32 - 1
MAX_DRIFT = 3600 * 10**9
"""How far (ns: one hour) a stamp may be ahead of local physical time and still be merged.

Honest clocks kept by NTP agree within well under a second, and a device without it
drifts seconds a day; an hour leaves room for a badly set clock while bounding how far
ahead of real time any peer's clock (and so ``_mod``) can be pushed by others.
"""
_PACK = struct.Struct(">QI")


class Timestamp(NamedTuple):
    """A hybrid-logical-clock stamp; tuples compare in time order.

    Examples
    --------
    >>> Timestamp(5, 0) < Timestamp(5, 1) < Timestamp(6, 0)
    True
    >>> Timestamp.from_bytes(Timestamp(7, 2).to_bytes())
    Timestamp(wall=7, logical=2)
    """

    wall: int
    logical: int

    @classmethod
    def checked(cls, wall: int, logical: int) -> Timestamp:
        """Build a stamp, raising InvalidTimestamp when a part is out of range or not an int."""
        if type(wall) is not int or not 0 <= wall <= MAX_WALL:
            raise InvalidTimestamp(f"timestamp wall time {wall!r} is not an int in [0, 2^63)")
        if type(logical) is not int or not 0 <= logical <= MAX_LOGICAL:
            raise InvalidTimestamp(f"timestamp logical part {logical!r} is not an int in [0, 2^32)")
        return cls(wall, logical)

    def to_bytes(self) -> bytes:
        """12 bytes, big-endian, so byte order equals time order."""
        return _PACK.pack(self.wall, self.logical)

    @classmethod
    def from_bytes(cls, data: bytes) -> Timestamp:
        """Inverse of :meth:`to_bytes`."""
        if not isinstance(data, bytes | bytearray | memoryview) or len(data) != _PACK.size:
            raise InvalidTimestamp(f"timestamp must be {_PACK.size} bytes, got {data!r}")
        wall, logical = _PACK.unpack(data)
        return cls.checked(wall, logical)

    @property
    def seconds(self) -> float:
        """Wall time in seconds since the epoch."""
        return self.wall / 1e9


def order_key(stamp: Timestamp, log_id: bytes) -> bytes:
    """Bytes that sort in the total event order: by stamp, then by log id bytes."""
    return stamp.to_bytes() + log_id


class HLC:
    """A hybrid logical clock, safe to share between threads.

    Parameters
    ----------
    physical : callable, optional
        Source of physical time in nanoseconds (defaults to ``time.time_ns``).
    last : Timestamp, optional
        The last stamp issued before a restart, so stamps stay monotonic across it.
    max_drift : int, optional
        Nanoseconds a merged stamp may be ahead of physical time (:data:`MAX_DRIFT`).

    Examples
    --------
    >>> clock = HLC(physical=lambda: 100)
    >>> clock.now(), clock.now()
    (Timestamp(wall=100, logical=0), Timestamp(wall=100, logical=1))
    >>> clock.update(Timestamp(500, 3))
    Timestamp(wall=500, logical=4)
    >>> clock.now()
    Timestamp(wall=500, logical=5)
    """

    def __init__(
        self,
        physical: Callable[[], int] = time.time_ns,
        last: Timestamp | None = None,
        max_drift: int = MAX_DRIFT,
    ) -> None:
        if type(max_drift) is not int or max_drift < 0:
            raise InvalidTimestamp(f"max_drift must be a non-negative int, got {max_drift!r}")
        self._physical = physical
        self._last = last if last is not None else Timestamp(0, 0)
        self.max_drift = max_drift
        self._lock = threading.Lock()

    @property
    def last(self) -> Timestamp:
        """The latest stamp issued or merged."""
        return self._last

    def now(self) -> Timestamp:
        """A new stamp, greater than every stamp issued or merged before."""
        with self._lock:
            return self._next()

    def now_many(self, count: int) -> list[Timestamp]:
        """``count`` new stamps, as ``count`` calls of :meth:`now` in a row would give them.

        >>> HLC(physical=lambda: 100).now_many(2)
        [Timestamp(wall=100, logical=0), Timestamp(wall=100, logical=1)]
        """
        with self._lock:
            next_stamp = self._next
            return [next_stamp() for _ in range(count)]

    def _next(self) -> Timestamp:
        """The next stamp (the caller holds the lock)."""
        wall = self._physical()
        if wall > MAX_WALL:
            raise InvalidTimestamp(f"physical time {wall} is beyond the clock's range")
        last = self._last
        stamp = Timestamp(wall, 0) if wall > last.wall else _tick(last.wall, last.logical)
        self._last = stamp
        return stamp

    def update(self, remote: Timestamp) -> Timestamp:
        """Merge a stamp received from elsewhere; returns the clock's value after it.

        A stamp more than ``max_drift`` ahead of physical time is not merged: the clock
        is left as it is and its value (then below ``remote``) is returned. The stamp's
        event is not refused for it — every peer must reach the same verdict on an event,
        and local time differs between peers — it just cannot drag this clock along.

        >>> clock = HLC(physical=lambda: 100, max_drift=1000)
        >>> clock.update(Timestamp(2000, 0))
        Timestamp(wall=0, logical=0)
        >>> clock.update(Timestamp(1100, 0))
        Timestamp(wall=1100, logical=1)
        """
        remote = Timestamp.checked(*remote)
        with self._lock:
            wall = min(self._physical(), MAX_WALL)
            last = self._last
            if remote.wall - wall > self.max_drift:
                return last
            top = max(wall, last.wall, remote.wall)
            if top == last.wall == remote.wall:
                stamp = _tick(top, max(last.logical, remote.logical))
            elif top == last.wall:
                stamp = _tick(top, last.logical)
            elif top == remote.wall:
                stamp = _tick(top, remote.logical)
            else:
                stamp = Timestamp(top, 0)
            self._last = stamp
            return stamp


def _tick(wall: int, logical: int) -> Timestamp:
    if logical < MAX_LOGICAL:
        return Timestamp(wall, logical + 1)
    if wall >= MAX_WALL:
        raise InvalidTimestamp("hybrid logical clock overflowed")
    return Timestamp(wall + 1, 0)
