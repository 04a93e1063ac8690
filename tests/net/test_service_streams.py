"""The thread service on long-lived streams, between real in-process peers.

- requests to a peer reuse a few ``/threadkit/1.1.0`` streams;
- an older peer (one that serves and speaks only ``/threadkit/1.0.0``, one request per
  stream) replicates both ways with a current one;
- a lost connection is dialled again by the next push, and nothing is lost;
- idle streams close on both sides, so the connection manager can trim idle
  connections (py-libp2p never trims a connection with an open stream:
  tests/net/test_connmgr.py pins that down).

Peers run with ``pull_interval=0``: only pushes (and the pulls they trigger) move
records, so a record that arrives came the way the test says.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

import threadkit as tk
from tests.e2e.waits import poll_until, wait_for_docs
from threadkit.net import protocol as p
from threadkit.net.connmgr import ConnLimits
from threadkit.net.streams import MAX_PER_PEER, StreamPool


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    """For stream and connection state, which no event announces (tests/e2e/waits.py)."""
    if not poll_until(predicate, timeout, interval=0.02):
        pytest.fail(f"timed out after {timeout} s waiting for {what}")


def arrives(coll: Any, doc_id: str, timeout: float, what: str) -> None:
    """Wait for ``doc_id`` in ``coll``, woken by each change of its database (no pull)."""
    if not wait_for_docs(coll.db, lambda: bool(coll.has(doc_id)), timeout, coll.name):
        pytest.fail(f"timed out after {timeout} s waiting for {what}")


def streams(peer: tk.Peer) -> StreamPool:
    pool: StreamPool = peer._service.streams
    return pool


def make_older(peer: tk.Peer) -> None:
    """Make ``peer`` behave as a peer from before ``/threadkit/1.1.0``.

    It stops serving ``/threadkit/1.1.0`` (so only the one-request ``/threadkit/1.0.0``
    handler answers) and its own requests offer only ``/threadkit/1.0.0``: one stream
    per request, closed after the reply — what threadkit did before persistent streams.
    """
    node = peer._node

    async def drop_handler() -> None:
        from libp2p.custom_types import TProtocol

        node.host.remove_stream_handler(TProtocol(p.PROTOCOL_ID_PERSISTENT))

    node.call(drop_handler, timeout=5)
    streams(peer).protocols = (p.PROTOCOL_ID,)


@pytest.fixture
def make_peer() -> Iterator[Callable[..., tk.Peer]]:
    peers: list[tk.Peer] = []

    def make(**options: Any) -> tk.Peer:
        options.setdefault("pull_interval", 0)
        peer = tk.Peer(memory=True, network=True, **options)
        peers.append(peer)
        return peer

    yield make
    for peer in peers:
        peer.close()


def _shared(a: tk.Peer, b: tk.Peer) -> tuple[Any, Any]:
    db = a.new_db("streams")
    notes = db.new_collection("Notes")
    info = db.info()
    joined = b.new_db_from_addr(info.addrs[0], info.key, timeout=20)
    return notes, joined["Notes"]


def test_pushes_to_a_peer_reuse_its_streams(make_peer: Callable[..., tk.Peer]) -> None:
    a, b = make_peer(), make_peer()
    notes, theirs = _shared(a, b)
    # the join's own requests (announcements, edge exchanges) may still be under way and
    # may hold a stream each: count from when they are done
    wait_for(lambda: streams(a).requests_under_way(b.id) == 0, 10, "the join's requests")
    before = streams(a).stats.opened
    for i in range(20):
        notes.create({"_id": f"n{i}"})
        arrives(theirs, f"n{i}", 10, f"n{i} on b")
    pool = streams(a)
    assert pool.stats.opened - before <= 1  # the pushes found a stream already open
    assert pool.stats.opened <= MAX_PER_PEER
    assert pool.stats.reused >= 20
    assert pool.open_streams(b.id) >= 1
    assert a.sync_stats.errors == [] and b.sync_stats.errors == []


@pytest.mark.parametrize("older", ["writer", "joiner"])
def test_an_older_peer_replicates_both_ways(make_peer: Callable[..., tk.Peer], older: str) -> None:
    a, b = make_peer(), make_peer()
    make_older(a if older == "writer" else b)
    notes, theirs = _shared(a, b)
    notes.create({"_id": "from-a"})
    theirs.create({"_id": "from-b"})
    arrives(theirs, "from-a", 10, "a's write on b")
    arrives(notes, "from-b", 10, "b's write on a")
    for i in range(5):
        notes.create({"_id": f"a{i}"})
        theirs.create({"_id": f"b{i}"})
    for i in range(5):
        arrives(theirs, f"a{i}", 10, f"a{i} on b")
        arrives(notes, f"b{i}", 10, f"b{i} on a")
    # between an older and a current peer, every stream carried exactly one request
    for peer in (a, b):
        assert streams(peer).stats.reused == 0
        assert streams(peer).stats.opened >= 2
    assert a.sync_stats.errors == [] and b.sync_stats.errors == []
    assert notes.count() == theirs.count() == 12


def test_a_lost_connection_is_dialled_again_and_nothing_is_lost(
    make_peer: Callable[..., tk.Peer],
) -> None:
    a, b = make_peer(), make_peer()
    notes, theirs = _shared(a, b)
    notes.create({"_id": "before"})
    arrives(theirs, "before", 10, "the first write on b")
    # b applies the push before a has read b's reply: closing the connection while that
    # request is under way can leave b holding a connection a has closed (py-libp2p 0.8.1)
    wait_for(lambda: streams(a).requests_under_way(b.id) == 0, 10, "a's push to end")
    assert streams(a).open_streams(b.id) >= 1

    node = a._node
    node.call(node.disconnect, b.id, timeout=10)
    # b notices the close within moments, unless a dial (py-libp2p's own auto-connector, or
    # a pull) has already made a new connection: either way the old one and its streams are
    # gone, which is what the rest of the test needs, so this wait is bounded, not asserted
    poll_until(lambda: a.id not in b.peers(), 3, interval=0.02)
    for i in range(5):
        notes.create({"_id": f"after-{i}"})
    theirs.create({"_id": "from-b"})
    for i in range(5):
        arrives(theirs, f"after-{i}", 10, f"after-{i} on b")
    arrives(notes, "from-b", 10, "b's write on a")
    assert b.id in a.peers()
    assert streams(a).stats.opened >= 2  # the pushes opened a stream on the new connection
    assert a.sync_stats.errors == [] and b.sync_stats.errors == []


def test_idle_streams_close_so_that_idle_connections_are_trimmed(
    make_peer: Callable[..., tk.Peer],
) -> None:
    """A hub (low=high=1, grace 1 s) shares a database with two peers.

    The hub closes its own idle streams after 0.5 s and inbound ones after 1 s without a
    request. The two peers are made to keep their own streams open (idle timeout of an
    hour), so only the hub's inbound idle timeout frees those connections of streams.
    Once everyone is idle the hub trims down to one connection; a write afterwards still
    reaches both peers (the hub dials them again).
    """
    limits = ConnLimits(low_water=1, high_water=1, grace_period=1.0)
    hub = make_peer(conn_limits=limits)
    assert hub._service.stream_idle_timeout == 0.5
    others = [make_peer(), make_peer()]
    db = hub.new_db("trim")
    notes = db.new_collection("Notes")
    info = db.info()
    copies = []
    for n, other in enumerate(others):
        streams(other).idle_timeout = 3600.0  # they never close their streams to the hub
        copies.append(other.new_db_from_addr(info.addrs[0], info.key, timeout=20)["Notes"])
        copies[-1].create({"_id": f"from-{n}"})
    notes.create({"_id": "from-hub"})
    for n, copy in enumerate(copies):
        arrives(notes, f"from-{n}", 10, f"peer {n}'s write on the hub")
        arrives(copy, "from-hub", 10, f"the hub's write on peer {n}")

    # idle: the hub's streams close, both ways, and the connection manager trims
    wait_for(lambda: streams(hub).open_streams() == 0, 20, "the hub's own streams to close")
    wait_for(lambda: len(hub.peers()) <= limits.low_water, 30, "the hub to trim")
    assert streams(hub).stats.idle_closed >= 2

    notes.create({"_id": "after-trim"})
    for n, copy in enumerate(copies):
        arrives(copy, "after-trim", 15, f"the hub's later write on peer {n}")
    assert hub.sync_stats.errors == []


def test_a_peer_that_stops_answering_costs_a_timeout_not_the_push_queue(
    make_peer: Callable[..., tk.Peer],
) -> None:
    """A request with no reply ends in ``Timeout`` (a threadkit error): the push to that
    peer is given up, counted in ``sync_stats.errors``, and later pushes go out again
    once the peer answers (the sender of that peer and log is not left stuck)."""
    a, b = make_peer(timeout=1.0), make_peer()
    notes, theirs = _shared(a, b)
    notes.create({"_id": "first"})
    arrives(theirs, "first", 10, "the first write on b")

    async def silent(stream: Any, remote: str) -> None:
        import trio

        await trio.sleep_forever()  # reads nothing, answers nothing

    b._node.set_handler(p.PROTOCOL_ID_PERSISTENT, silent)
    b._node.call(b._node.disconnect, a.id, timeout=10)  # a's pooled streams go with it
    notes.create({"_id": "unanswered"})
    wait_for(lambda: any("did not answer" in e for e in a.sync_stats.errors), 15, "a timeout")
    assert not theirs.has("unanswered")

    b._node.set_handler(p.PROTOCOL_ID_PERSISTENT, b._service._server.handle_persistent)
    notes.create({"_id": "answered"})
    arrives(theirs, "answered", 10, "the later write on b")
    arrives(theirs, "unanswered", 10, "the missed write, pulled on the gap")
