"""``StreamPool``: long-lived request/response streams, between real in-process nodes.

A server node answers on two test protocols: ``MANY`` (request after request on one
stream, as ``/threadkit/1.1.0``) and ``ONE`` (one request per stream, as
``/threadkit/1.0.0``). Some payloads make the server misbehave on purpose: reset the
stream, close it after replying, or hold the reply until the test releases it.
Nothing here asserts on durations: waits poll a condition with a generous deadline.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.e2e.waits import poll_until
from threadkit.errors import ConnectionLost, InvalidInput, ProtocolError
from threadkit.net.connmgr import ConnLimits
from threadkit.net.framing import FrameReader, write_frame
from threadkit.net.node import Node
from threadkit.net.streams import IDLE_TIMEOUT, MIN_IDLE_TIMEOUT, StreamPool, idle_timeout_for

MANY = "/threadkit-test/rpc/2.0.0"
ONE = "/threadkit-test/rpc/1.0.0"
MAX = 1 << 20


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    """For node and connection state, which no event announces (tests/e2e/waits.py)."""
    if not poll_until(predicate, timeout, interval=0.01):
        pytest.fail(f"timed out after {timeout} s waiting for {what}")


@dataclass
class Server:
    """Counters kept by the server node's handlers (written on its loop, read anywhere)."""

    streams: int = 0
    active: int = 0
    max_active: int = 0
    requests: list[bytes] = field(default_factory=list)
    ended_by_caller: int = 0
    seen: set[bytes] = field(default_factory=set)
    holding: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    delay: float = 0.0

    async def answer(self, stream: Any, payload: bytes) -> bool:
        """Reply to one request; False when the stream is finished."""
        import trio

        self.requests.append(payload)
        if payload == b"reset" or (payload.startswith(b"reset-once") and payload not in self.seen):
            self.seen.add(payload)
            await stream.reset()
            return False
        if payload == b"hold":
            self.holding.set()
            while not self.release.is_set():
                await trio.sleep(0.01)
        if self.delay:
            await trio.sleep(self.delay)
        await write_frame(stream, payload)
        return payload != b"close-after"

    async def many(self, stream: Any, remote: str) -> None:
        self.streams += 1
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        try:
            reader = FrameReader(stream)
            while True:
                payload = await reader.read_frame(MAX)
                if payload is None:
                    self.ended_by_caller += 1
                    return
                if not await self.answer(stream, payload):
                    return
        finally:
            self.active -= 1

    async def one(self, stream: Any, remote: str) -> None:
        self.streams += 1
        payload = await FrameReader(stream).read_frame(MAX)
        if payload is not None:
            await self.answer(stream, payload)


@dataclass
class Pair:
    client: Node
    server_node: Node
    server: Server

    @property
    def peer(self) -> str:
        return self.server_node.peer_id

    def pool(self, **options: Any) -> StreamPool:
        options.setdefault("single_protocols", [ONE])
        options.setdefault("idle_timeout", 60.0)
        return StreamPool(self.client, [MANY, ONE], **options)

    def request(self, pool: StreamPool, payload: bytes) -> bytes:
        return self.client.call(pool.request, self.peer, payload, timeout=20)

    def connect(self) -> Callable[[], Any]:
        addr = self.server_node.addrs[0]

        async def connect() -> None:
            await self.client.connect(addr)

        return connect


def _pair(protocols: tuple[str, ...]) -> Iterator[Pair]:
    server = Server()
    server_node = Node(bytes([41]) * 32)
    if MANY in protocols:
        server_node.set_handler(MANY, server.many)
    if ONE in protocols:
        server_node.set_handler(ONE, server.one)
    client = Node(bytes([42]) * 32)
    with server_node, client:
        client.call(client.connect, server_node.addrs[0], timeout=10)
        yield Pair(client, server_node, server)


@pytest.fixture
def pair() -> Iterator[Pair]:
    yield from _pair((MANY, ONE))


@pytest.fixture
def old_pair() -> Iterator[Pair]:
    """A server that speaks only the one-request protocol (an older peer)."""
    yield from _pair((ONE,))


async def _stream_counts(node: Node) -> list[int]:
    return [len(c.get_streams()) for c in node.host.get_network().get_connections()]


# ----------------------------------------------------------------------- reuse


def test_sequential_requests_reuse_one_stream(pair: Pair) -> None:
    pool = pair.pool()
    replies = [pair.request(pool, f"r{i}".encode()) for i in range(30)]
    assert replies == [f"r{i}".encode() for i in range(30)]
    assert (pool.stats.opened, pool.stats.reused, pool.stats.retried) == (1, 29, 0)
    assert pair.server.streams == 1
    assert pool.open_streams(pair.peer) == pool.idle_streams(pair.peer) == 1


def test_concurrent_requests_share_at_most_max_per_peer_streams(pair: Pair) -> None:
    import trio

    pair.server.delay = 0.02  # keeps each stream busy so that requests overlap
    pool = pair.pool(max_per_peer=3)
    payloads = [f"c{i}".encode() for i in range(24)]

    async def many() -> dict[bytes, bytes]:
        replies: dict[bytes, bytes] = {}

        async def one(payload: bytes) -> None:
            replies[payload] = await pool.request(pair.peer, payload)

        async with trio.open_nursery() as nursery:
            for payload in payloads:
                nursery.start_soon(one, payload)
        return replies

    replies = pair.client.call(many, timeout=60)
    assert replies == {payload: payload for payload in payloads}  # each got its own reply
    assert pool.stats.opened == 3
    assert pair.server.max_active == 3
    assert pool.stats.reused == len(payloads) - 3
    assert pool.open_streams(pair.peer) == 3


def test_node_open_stream_takes_protocols_in_order_of_preference(
    pair: Pair, old_pair: Pair
) -> None:
    async def chosen(node: Node, peer: str) -> str:
        stream = await node.open_stream(peer, [MANY, ONE])
        protocol = str(stream.get_protocol())
        await stream.reset()
        return protocol

    assert pair.client.call(chosen, pair.client, pair.peer, timeout=10) == MANY
    assert old_pair.client.call(chosen, old_pair.client, old_pair.peer, timeout=10) == ONE
    with pytest.raises(ProtocolError) as caught:
        old_pair.client.call(old_pair.client.open_stream, old_pair.peer, [MANY], timeout=10)
    assert caught.value.code == "unsupported_protocol"


# --------------------------------------------------------------------- failures


def test_reopens_a_stream_the_remote_closed(pair: Pair) -> None:
    pool = pair.pool()
    assert pair.request(pool, b"close-after") == b"close-after"  # then the server closes
    assert pair.request(pool, b"next") == b"next"
    assert pair.request(pool, b"and-next") == b"and-next"
    assert pool.stats.opened == 2
    assert pair.server.streams == 2
    # the closed stream was either seen closed before use, or failed once and was retried
    assert pool.stats.dropped + pool.stats.retried >= 1
    assert pair.server.requests.count(b"next") in (1, 2)


def test_a_broken_stream_is_retried_once_on_a_new_stream(pair: Pair) -> None:
    pool = pair.pool()
    assert pair.request(pool, b"warm") == b"warm"
    assert pair.request(pool, b"reset-once-1") == b"reset-once-1"
    assert pool.stats.retried == 1
    assert pair.server.requests.count(b"reset-once-1") == 2
    assert pair.request(pool, b"after") == b"after"

    # fails on every stream: one retry, then the error (py-libp2p reports a reset read
    # either as a reset or as the end of the stream)
    with pytest.raises((ConnectionLost, ProtocolError)) as caught:
        pair.request(pool, b"reset")
    assert isinstance(caught.value, ConnectionLost) or caught.value.code == "eof"
    assert pool.stats.retried == 2
    assert pair.server.requests.count(b"reset") == 2
    assert pair.request(pool, b"still-works") == b"still-works"


def test_an_interrupted_request_never_gets_a_late_reply(pair: Pair) -> None:
    import trio

    pool = pair.pool()
    assert pair.request(pool, b"warm") == b"warm"

    async def interrupted() -> bool:
        with trio.CancelScope() as scope:

            async def cancel_when_held() -> None:
                while not pair.server.holding.is_set():
                    await trio.sleep(0.01)
                scope.cancel()

            async with trio.open_nursery() as nursery:
                nursery.start_soon(cancel_when_held)
                await pool.request(pair.peer, b"hold")
        return scope.cancelled_caught

    assert pair.client.call(interrupted, timeout=20)
    assert pool.open_streams(pair.peer) == 0  # the interrupted stream was dropped
    pair.server.release.set()  # the server now answers "hold" on the dropped stream
    assert pair.request(pool, b"next") == b"next"
    assert pair.request(pool, b"then") == b"then"
    assert pool.stats.dropped >= 1


def test_a_lost_connection_is_dialled_again(pair: Pair) -> None:
    pool = pair.pool()
    assert pair.request(pool, b"before") == b"before"
    pair.client.call(pair.client.disconnect, pair.peer, timeout=10)
    wait_for(lambda: pair.peer not in pair.client.connected_peers(), 10, "the disconnect")
    connect = pair.connect()

    async def request() -> bytes:
        return await pool.request(pair.peer, b"after", connect=connect)

    reply = pair.client.call(request, timeout=20)
    assert reply == b"after"
    assert pool.stats.opened == 2
    assert pair.peer in pair.client.connected_peers()


# ------------------------------------------------------------------- idle close


def test_idle_streams_are_closed_on_both_sides(pair: Pair) -> None:
    pool = pair.pool(idle_timeout=0.3)
    assert pair.request(pool, b"one") == b"one"
    assert pool.open_streams(pair.peer) == 1
    wait_for(lambda: pool.open_streams() == 0, 10, "the idle stream to close")
    assert pool.stats.idle_closed == 1
    wait_for(lambda: pair.server.active == 0, 10, "the server to see the stream end")
    assert pair.server.ended_by_caller == 1
    # no stream is left on the connection, at either end (so it may be trimmed)
    wait_for(
        lambda: pair.client.call(_stream_counts, pair.client, timeout=5) == [0],
        10,
        "no stream on the client's connection",
    )
    wait_for(
        lambda: pair.server_node.call(_stream_counts, pair.server_node, timeout=5) == [0],
        10,
        "no stream on the server's connection",
    )
    assert pair.request(pool, b"two") == b"two"  # a new stream, and the reaper again
    assert pool.stats.opened == 2
    wait_for(lambda: pool.open_streams() == 0, 10, "the second idle stream to close")
    assert pool.stats.idle_closed == 2


def test_idle_timeout_follows_the_grace_period() -> None:
    assert idle_timeout_for(ConnLimits()) == IDLE_TIMEOUT
    assert idle_timeout_for(ConnLimits(1, 2, 3.0)) == 1.5
    assert idle_timeout_for(ConnLimits(1, 2, 0.0)) == MIN_IDLE_TIMEOUT


# --------------------------------------------------------------- older peers


def test_a_peer_that_speaks_only_the_one_request_protocol(old_pair: Pair) -> None:
    pool = old_pair.pool()
    for i in range(5):
        assert old_pair.request(pool, f"o{i}".encode()) == f"o{i}".encode()
        assert pool.open_streams(old_pair.peer) == 0  # closed after its one request
    assert old_pair.server.streams == 5
    assert (pool.stats.opened, pool.stats.reused, pool.stats.retried) == (5, 0, 0)


def test_a_client_that_offers_only_the_one_request_protocol(pair: Pair) -> None:
    pool = StreamPool(pair.client, [ONE], single_protocols=[ONE], idle_timeout=60)
    assert [pair.request(pool, b"x"), pair.request(pool, b"y")] == [b"x", b"y"]
    assert pair.server.streams == 2
    assert pool.stats.reused == 0


# ------------------------------------------------------------------ arguments


@pytest.mark.parametrize(
    "options",
    [
        {"protocols": []},
        {"protocols": MANY},
        {"idle_timeout": 0},
        {"idle_timeout": float("nan")},
        {"max_per_peer": 0},
        {"max_per_peer": True},
    ],
)
def test_bad_arguments_are_refused(options: dict[str, Any]) -> None:
    node = Node(bytes([43]) * 32)
    protocols = options.pop("protocols", [MANY])
    with pytest.raises(InvalidInput):
        StreamPool(node, protocols, **options)
