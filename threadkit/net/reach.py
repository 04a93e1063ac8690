"""Which peers answer: dial failures, backoff, and one warning per unreachable peer.

A peer that left (its notebook closed, its laptop asleep) stays a peer of the databases it
shared, so replication keeps trying to reach it: every push, every periodic pull. Without
care that is a dial every few seconds, each failure logged. :class:`Reachability` keeps,
per peer, how often dialling it failed and when to try again:

- the first failure logs **one warning** (logger ``threadkit.net.reach``); later ones are
  logged at debug level only;
- after ``n`` failures in a row, no dial is made for ``min(BACKOFF_MAX, BACKOFF_BASE * 2**(n-1))``
  seconds (2, 4, 8, … up to 300 s): requests for the peer fail at once with
  :class:`~threadkit.errors.PeerUnreachable` instead;
- a peer that connects to this one, or tells new addresses, is tried again at once; the
  first successful dial logs that it is back (info) and clears its record.

``peer.status()`` lists the peers currently unreachable (:meth:`Reachability.unreachable`).

Examples
--------
>>> reach = Reachability()
>>> reach.failed("12D3KooWpeer", "connection refused", now=100.0)
>>> reach.wait_left("12D3KooWpeer", now=101.0)
1.0
>>> reach.unreachable()[0]["failures"]
1
>>> reach.succeeded("12D3KooWpeer")
>>> reach.unreachable()
[]
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

__all__ = ["BACKOFF_BASE", "BACKOFF_MAX", "Reachability"]

log = logging.getLogger(__name__)

BACKOFF_BASE = 2.0
"""Seconds without dials after the first failure; doubled after each further one."""

BACKOFF_MAX = 300.0
"""The longest wait between two dials of an unreachable peer (seconds)."""


@dataclass
class _Peer:
    failures: int
    since: float  # wall clock of the first failure in a row
    last_error: str
    retry_at: float  # monotonic


class Reachability:
    """Dial failures per peer, and when each may be dialled again (thread-safe)."""

    def __init__(self) -> None:
        self._peers: dict[str, _Peer] = {}
        self._lock = threading.Lock()

    def failed(self, peer_id: str, error: str, now: float | None = None) -> None:
        """A dial of ``peer_id`` failed: back off (warn on the first failure in a row)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            entry = self._peers.get(peer_id)
            if entry is None:
                entry = self._peers[peer_id] = _Peer(0, time.time(), error, now)
            entry.failures += 1
            entry.last_error = error
            wait = min(BACKOFF_MAX, BACKOFF_BASE * 2 ** (entry.failures - 1))
            entry.retry_at = now + wait
            first = entry.failures == 1
        if first:
            log.warning(
                "peer %s is unreachable (%s); trying again with backoff, up to every %g s",
                peer_id,
                error,
                BACKOFF_MAX,
            )
        else:
            log.debug("peer %s still unreachable (%d failures): %s", peer_id, entry.failures, error)

    def succeeded(self, peer_id: str) -> None:
        """``peer_id`` answered: forget its failures."""
        with self._lock:
            entry = self._peers.pop(peer_id, None)
        if entry is not None:
            log.info("peer %s is reachable again (after %d failures)", peer_id, entry.failures)

    def retry_now(self, peer_id: str) -> None:
        """Allow the next dial of ``peer_id`` at once (it connected, or has new addresses)."""
        with self._lock:
            entry = self._peers.get(peer_id)
            if entry is not None:
                entry.retry_at = 0.0

    def wait_left(self, peer_id: str, now: float | None = None) -> float:
        """Seconds before ``peer_id`` may be dialled again (0: now)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            entry = self._peers.get(peer_id)
            return 0.0 if entry is None else max(0.0, entry.retry_at - now)

    def last_error(self, peer_id: str) -> str:
        """The last dial error of ``peer_id`` ('' when it is not known unreachable)."""
        with self._lock:
            entry = self._peers.get(peer_id)
            return "" if entry is None else entry.last_error

    def unreachable(self) -> list[dict[str, Any]]:
        """The peers whose last dial failed: ``peer_id``, ``failures``, ``since`` (epoch
        seconds), ``last_error``, ``retry_in`` (seconds)."""
        now = time.monotonic()
        with self._lock:
            return [
                {
                    "peer_id": peer_id,
                    "failures": entry.failures,
                    "since": entry.since,
                    "last_error": entry.last_error,
                    "retry_in": max(0.0, entry.retry_at - now),
                }
                for peer_id, entry in sorted(self._peers.items())
            ]
