"""Yamux flow control enforced (threadkit.net.muxer), against hand-made senders over libp2p.

Two real nodes on 127.0.0.1. The victim serves ``/hold/1.0.0``, whose handler never reads,
so whatever reaches it stays in the victim's muxer. The attacker writes raw Yamux DATA
frames on its own connection, past the window it was granted (py-libp2p's own sender
respects it), or opens more streams than a connection may have.
"""

from __future__ import annotations

import contextlib
import struct
import time
from collections.abc import Iterator
from typing import Any

import pytest

from threadkit.net.muxer import (
    MAX_INBOUND_STREAMS_PER_CONN,
    MAX_WINDOW_GROWTH_PER_CONN,
    budget_of,
)
from threadkit.net.node import Node

HOLD = "/hold/1.0.0"
READ = "/read/1.0.0"
KiB = 1024
WINDOW = 256 * KiB  # Yamux's initial receive window


async def hold(stream: Any, remote: str) -> None:
    """Never read: what the peer sends stays in the muxer."""
    import trio

    await trio.sleep_forever()


async def read_then_hold(stream: Any, remote: str) -> None:
    """Read 32 MiB as fast as it comes (so windows grow), then stop reading."""
    got = 0
    while got < 32 * 1024 * KiB:
        got += len(await stream.read(64 * KiB))
    import trio

    await trio.sleep_forever()


@pytest.fixture
def pair() -> Iterator[tuple[Node, Node]]:
    victim = Node(b"\x51" * 32)
    victim.set_handler(HOLD, hold)
    victim.set_handler(READ, read_then_hold)
    attacker = Node(b"\x52" * 32)
    try:
        victim.start()
        attacker.start()
        attacker.call(attacker.connect, victim.addrs[0], timeout=10)
        yield victim, attacker
    finally:
        attacker.stop()
        victim.stop()


def _muxers(node: Node) -> list[Any]:
    return [conn.muxed_conn for conn in node.host.get_network().get_connections()]


def _buffered(node: Node) -> int:
    async def count() -> int:
        return sum(len(b) for m in _muxers(node) for b in m.stream_buffers.values())

    return node.call(count, timeout=5)


def _connected(node: Node) -> bool:
    async def check() -> bool:
        return any(not m.event_shutting_down.is_set() for m in _muxers(node))

    return node.call(check, timeout=5)


async def _flood(node: Node, victim: str, total: int) -> int:
    """Open a stream and send ``total`` bytes in raw DATA frames, ignoring the window."""
    import trio

    stream = await node.open_stream(victim, HOLD)
    muxed = stream.muxed_stream
    chunk = b"\x00" * (60 * KiB)
    sent = 0
    try:
        while sent < total:
            header = struct.pack("!BBHII", 0, 0, 0, muxed.stream_id, len(chunk))
            await muxed.conn._write_frame(header + chunk)
            sent += len(chunk)
    except Exception:  # the victim closed the connection
        pass
    await trio.sleep(0.5)  # let the victim take in what is on its way
    return sent


def test_a_sender_beyond_its_window_loses_its_connection(pair: tuple[Node, Node]) -> None:
    victim, attacker = pair
    attacker.call(_flood, attacker, victim.peer_id, 8 * 1024 * KiB, timeout=30)
    # py-libp2p logged the excess and kept all 8 MiB; the guard closes at the first excess
    assert _buffered(victim) <= WINDOW
    assert not _connected(victim)
    assert budget_of(victim.host).violations == 1
    # the attacker may connect again (and be closed again when it cheats again)
    deadline = time.monotonic() + 10
    while not _connected(victim) and time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            attacker.call(attacker.connect, victim.addrs[0], timeout=5)
        time.sleep(0.2)
    assert _connected(victim)


def _open_streams(node: Node, victim: str, count: int) -> int:
    """Open ``count`` streams and fill each one's initial window; how many were accepted."""
    import trio

    async def run() -> int:
        accepted = 0

        async def one() -> None:
            nonlocal accepted
            try:
                stream = await node.open_stream(victim, HOLD)
                await stream.write(b"\x00" * WINDOW)  # exactly the window: no update needed
                accepted += 1
            except Exception:  # reset by the victim
                pass

        async with trio.open_nursery() as nursery:
            for _ in range(count):
                nursery.start_soon(one)
        await trio.sleep(0.5)
        return accepted

    return node.call(run, timeout=60)


def test_inbound_streams_of_a_connection_are_bounded(pair: tuple[Node, Node]) -> None:
    victim, attacker = pair
    accepted = _open_streams(attacker, victim.peer_id, MAX_INBOUND_STREAMS_PER_CONN + 40)
    assert accepted <= MAX_INBOUND_STREAMS_PER_CONN
    assert _buffered(victim) <= MAX_INBOUND_STREAMS_PER_CONN * WINDOW
    assert budget_of(victim.host).refused_streams >= 40


def test_windows_grow_within_the_connection_budget(pair: tuple[Node, Node]) -> None:
    """A reader that keeps up lets windows grow, but not beyond the growth budget."""
    victim, attacker = pair

    async def send() -> None:
        import trio

        stream = await attacker.open_stream(victim.peer_id, READ)
        chunk = b"\x00" * (1024 * KiB)
        with trio.move_on_after(15):
            while True:  # py-libp2p's own sender: it waits for window updates (5 s at most)
                await stream.write(chunk)

    with contextlib.suppress(Exception):  # the write gave up waiting for a window update
        attacker.call(send, timeout=30)
    held = _buffered(victim)
    # py-libp2p grows one stream's window to 16 MiB
    assert WINDOW < held <= WINDOW + MAX_WINDOW_GROWTH_PER_CONN
    assert _connected(victim)


def test_a_reset_stream_drops_its_unread_bytes(pair: tuple[Node, Node]) -> None:
    victim, attacker = pair

    async def send() -> None:
        import trio

        stream = await attacker.open_stream(victim.peer_id, HOLD)
        await stream.write(b"\x00" * WINDOW)
        await trio.sleep(0.3)

    async def reset_all() -> None:  # the victim resets the stream it never read
        for muxer in _muxers(victim):
            for stream in list(muxer.streams.values()):
                await stream.reset()

    attacker.call(send, timeout=10)
    assert _buffered(victim) == WINDOW
    victim.call(reset_all, timeout=10)
    # py-libp2p kept a reset stream's bytes for another 60-90 s
    assert _buffered(victim) == 0


def test_budget_of_a_plain_host_is_refused() -> None:
    from libp2p import new_host

    from threadkit.errors import ProtocolError

    with pytest.raises(ProtocolError):
        budget_of(new_host())
