"""Waiting in tests without sleep loops: on the events threadkit exposes, or in one poll.

A test that needs replication *done* calls ``db.sync(timeout=...)``. A test that checks
replication happening *by itself* (a push, a gossip, a periodic pull, the relay of a
replicator) must not pull, so it waits for what arrives instead:

- :func:`wait_for_docs` wakes on each change of a database's listen feed
  (``db.listen()``, which also sees collections that have not arrived yet);
- :func:`wait_for_records` wakes on each record a peer stores, local or received
  (``peer.subscribe()``), for conditions on logs and heads that no document change
  announces (a losing write, a replicator without the read key);
- :func:`wait_for_heads` waits, with :func:`wait_for_records`, until a peer holds at
  least the given log counters.

:func:`poll_until` is the only poll in the suite. It is for conditions nothing announces
as an event: another process's state seen through its stdin/stdout protocol (each call
is one round trip, the interval just paces them), py-libp2p's connection table, counters
of the stream pool and the connection manager. Everything else uses the functions above.

Imported as ``waits`` by scripts in this directory (peer_child.py) and as
``tests.e2e.waits`` by tests anywhere in the suite.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

__all__ = ["poll_until", "wait_for_docs", "wait_for_heads", "wait_for_records"]


def wait_for_docs(
    db: Any, done: Callable[[], bool], timeout: float, collection: str | None = None
) -> bool:
    """Wait until ``done()`` holds, re-checking it on each change in ``db``; its last value.

    The feed is opened before the first check, so a change between the check and the
    wait is not missed. ``collection`` narrows the feed (it may not exist yet).
    """
    import threadkit as tk

    with db.listen(collection=collection) as feed:
        return _wait_on(feed, done, timeout, tk.errors.Timeout)


def wait_for_records(peer: Any, thread_id: Any, done: Callable[[], bool], timeout: float) -> bool:
    """Wait until ``done()`` holds, re-checking it on each record ``peer`` stores in the thread.

    Records written locally and received from others alike (``peer.subscribe``), also on
    a replicator, which has no database and so no listen feed.
    """
    import threadkit as tk

    feed = peer.subscribe([tk.ThreadID.from_string(str(thread_id))])
    try:
        return _wait_on(feed, done, timeout, tk.errors.Timeout)
    finally:
        feed.close()


def wait_for_heads(peer: Any, thread_id: Any, heads: dict[str, int], timeout: float) -> bool:
    """Wait until ``peer`` holds at least ``heads`` (``{log id: counter}``) of the thread."""
    import threadkit as tk

    tid = tk.ThreadID.from_string(str(thread_id))

    def reached() -> bool:
        have = {info.id: info.counter for info in peer.repo.list_logs(tid)}
        return all(have.get(log, 0) >= counter for log, counter in heads.items())

    return wait_for_records(peer, tid, reached, timeout)


def _wait_on(feed: Any, done: Callable[[], bool], timeout: float, timeout_error: type) -> bool:
    deadline = time.monotonic() + timeout
    drain = getattr(feed, "get_nowait", None)  # a burst of events costs one re-check
    while not done():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        try:
            feed.get(timeout=remaining)
        except timeout_error:
            return done()
        while drain is not None and drain() is not None:
            pass
    return True


def poll_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    """Check ``predicate`` every ``interval`` s until it holds or ``timeout`` s pass.

    Returns its last value. Only for conditions no event announces (module docstring).
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()
