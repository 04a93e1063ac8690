"""Yamux credit as go-yamux grants it (threadkit.net.muxer.GuardedStream): a reader tells
its peer of the bytes it read once they reach half its window, not after every read, and
a sender that keeps sending is never left waiting.

Two real nodes on 127.0.0.1; the server echoes framed requests.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from threadkit.net.framing import FrameReader, write_frame
from threadkit.net.muxer import GuardedStream
from threadkit.net.node import Node

ECHO = "/echo-credit/1.0.0"
KiB = 1024
WINDOW = 256 * KiB  # Yamux's initial receive window
REQUEST = 1 * KiB


async def echo(stream: Any, remote: str) -> None:
    reader = FrameReader(stream)
    while (payload := await reader.read_frame(1 << 20)) is not None:
        await write_frame(stream, payload)


@pytest.fixture
def pair() -> Iterator[tuple[Node, Node]]:
    server = Node(b"\x61" * 32)
    server.set_handler(ECHO, echo)
    client = Node(b"\x62" * 32)
    try:
        server.start()
        client.start()
        client.call(client.connect, server.addrs[0], timeout=10)
        yield server, client
    finally:
        client.stop()
        server.stop()


def test_credit_comes_back_at_half_the_window_not_per_read(pair: tuple[Node, Node]) -> None:
    server, client = pair

    async def run() -> list[tuple[int, int]]:
        stream = await client.open_stream(server.peer_id, ECHO)
        muxed = stream.muxed_stream
        assert isinstance(muxed, GuardedStream)
        reader = FrameReader(stream)
        payload = b"\x00" * REQUEST
        seen = []  # (bytes of requests sent, the client's send window after the reply)
        for i in range(1, 201):
            await write_frame(stream, payload)
            assert await reader.read_frame(1 << 20) == payload
            seen.append((i * REQUEST, muxed.send_window))
        await stream.close()
        return seen

    seen = client.call(run, timeout=60)
    # below half a window, nothing was credited back: the window shrank by all that was sent
    for sent, window in seen:
        if sent < WINDOW // 2 - 8 * KiB:
            assert window <= WINDOW - sent
    # past half a window the credit came back in one update, and the sender never waited
    assert seen[-1][0] > WINDOW // 2
    assert seen[-1][1] > WINDOW // 2


def test_a_fresh_stream_offers_its_whole_window(pair: tuple[Node, Node]) -> None:
    """The protocol negotiation's bytes are credited at once (``OPENING_CREDIT``)."""
    server, client = pair

    async def run() -> int:
        import trio

        stream = await client.open_stream(server.peer_id, ECHO)
        reader = FrameReader(stream)
        await write_frame(stream, b"x")
        await reader.read_frame(1 << 20)
        await trio.sleep(0.1)
        window = int(stream.muxed_stream.send_window)
        await stream.close()
        return window

    # the one-byte request (and its 4-byte length) is all that is not credited yet
    assert client.call(run, timeout=30) >= WINDOW - 16
