"""A memory budget for frames being received, per remote peer and for all peers together.

A frame's length prefix says how many bytes are coming before any of them has come, and
a reader keeps them until the frame is whole. Without a bound across streams, a few
streams announcing large frames and never finishing them hold hundreds of MiB, and no
authentication is needed to open a stream. So every frame a
:class:`~threadkit.net.framing.FrameReader` reads first **reserves** its announced size
in a :class:`FrameBudget` shared by all the node's streams, and gives it back when the
frame is whole or the stream fails:

- one remote peer may have at most :data:`MAX_BUFFERED_PER_PEER` bytes of frames under
  way, all peers together :data:`MAX_BUFFERED`;
- a frame that does not fit waits up to :data:`BUDGET_WAIT` seconds for room (its stream
  is not read meanwhile, so its sender is held back by the muxer's flow control), then
  is refused with ``ProtocolError(code="busy")`` and its stream is reset.

The reader also closes streams that **stall** (:data:`STALL_TIMEOUT`,
:data:`MIN_FRAME_RATE`), so a reservation is never held for long by a sender that stops.
The budget lives on the node's trio loop and is used only from there.

Examples
--------
>>> import trio
>>> async def demo() -> tuple[int, int]:
...     budget = FrameBudget(per_peer=100, total=150)
...     await budget.reserve("a", 60)
...     await budget.reserve("b", 60)
...     used = budget.used()
...     budget.release("a", 60)
...     return used, budget.used()
>>> trio.run(demo)
(120, 60)
"""

from __future__ import annotations

import math
from typing import Any

from threadkit.errors import FrameTooLarge, InvalidInput, ProtocolError

__all__ = [
    "BUDGET_WAIT",
    "MAX_BUFFERED",
    "MAX_BUFFERED_PER_PEER",
    "MIN_FRAME_RATE",
    "STALL_TIMEOUT",
    "FrameBudget",
]

MiB = 1024 * 1024

MAX_BUFFERED_PER_PEER = 64 * MiB
"""Bytes of frames under way from one remote peer at most: two frames of the largest size."""

MAX_BUFFERED = 128 * MiB
"""Bytes of frames under way from all peers together at most."""

BUDGET_WAIT = 10.0
"""Seconds a frame waits for room in the budget before it is refused (``code="busy"``)."""

STALL_TIMEOUT = 10.0
"""Seconds a frame that has begun may go without receiving a byte before its stream is closed."""

MIN_FRAME_RATE = 256 * 1024
"""Bytes per second a frame must arrive at, on average, after its first
:data:`STALL_TIMEOUT` seconds: a frame of ``n`` bytes must be whole within
``STALL_TIMEOUT + n / MIN_FRAME_RATE`` seconds of its first byte (2 min 18 s for 32 MiB)."""


class FrameBudget:
    """Bytes reserved by frames being received, per remote peer and in total.

    Parameters
    ----------
    per_peer : int
        Bytes one remote peer may have reserved at once.
    total : int
        Bytes all peers together may have reserved at once (at least ``per_peer``).
    wait : float
        Seconds :meth:`reserve` waits for room before refusing.

    Raises
    ------
    InvalidInput
        A non-positive limit, ``total`` below ``per_peer``, or a negative ``wait``.
    """

    def __init__(
        self,
        per_peer: int = MAX_BUFFERED_PER_PEER,
        total: int = MAX_BUFFERED,
        *,
        wait: float = BUDGET_WAIT,
    ) -> None:
        for name, value in (("per_peer", per_peer), ("total", total)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidInput(f"{name} must be a positive int, got {value!r}")
        if total < per_peer:
            raise InvalidInput(f"total ({total}) must be at least per_peer ({per_peer})")
        if not wait >= 0 or not math.isfinite(wait):
            raise InvalidInput(f"wait must be a non-negative number of seconds, got {wait!r}")
        self.per_peer = per_peer
        self.total = total
        self.wait = float(wait)
        self.refused = 0
        """Frames refused for want of room (for tests and stats)."""
        self._used: dict[str, int] = {}
        self._sum = 0
        self._freed: Any = None  # a trio.Event, set when bytes are released

    def used(self, peer: str | None = None) -> int:
        """Bytes reserved now, by one peer or by all."""
        return self._sum if peer is None else self._used.get(peer, 0)

    def _fits(self, peer: str, size: int) -> bool:
        return self._used.get(peer, 0) + size <= self.per_peer and self._sum + size <= self.total

    async def reserve(self, peer: str, size: int) -> None:
        """Reserve ``size`` bytes for a frame from ``peer``, waiting up to ``wait`` seconds.

        Raises
        ------
        FrameTooLarge
            ``size`` is more than one peer may ever reserve.
        ProtocolError
            No room came within ``wait`` seconds (``code="busy"``).
        """
        import trio

        if size > self.per_peer:
            raise FrameTooLarge(
                f"frame of {size} bytes exceeds the per-peer budget of {self.per_peer} bytes"
            )
        with trio.move_on_after(self.wait):
            while not self._fits(peer, size):
                if self._freed is None:
                    self._freed = trio.Event()
                await self._freed.wait()
        if not self._fits(peer, size):
            self.refused += 1
            raise ProtocolError(
                f"no room for a frame of {size} bytes: {self.used(peer)} bytes of this peer's "
                f"and {self._sum} of all peers' frames are under way",
                code="busy",
            )
        self._used[peer] = self._used.get(peer, 0) + size
        self._sum += size

    def release(self, peer: str, size: int) -> None:
        """Give back ``size`` bytes reserved for a frame from ``peer``."""
        left = self._used.get(peer, 0) - size
        if left > 0:
            self._used[peer] = left
        else:
            self._used.pop(peer, None)
        self._sum -= size
        if self._freed is not None:
            self._freed.set()
            self._freed = None
