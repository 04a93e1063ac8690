"""Length-prefixed framing over in-memory trio streams: buffering, limits, truncation."""

from __future__ import annotations

import os
from typing import Any

import pytest
import trio
import trio.testing
from multiformats import varint

from threadkit.errors import ConnectionLost, FrameTooLarge, ProtocolError
from threadkit.net.framing import FrameReader, read_frame, write_frame


class CountingReceiver:
    """A trio receive stream that records every ``receive_some`` and can cap its size."""

    def __init__(self, inner: Any, max_chunk: int | None = None) -> None:
        self.inner = inner
        self.max_chunk = max_chunk
        self.calls = 0

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        self.calls += 1
        if self.max_chunk is not None:
            max_bytes = self.max_chunk if max_bytes is None else min(max_bytes, self.max_chunk)
        data: bytes | bytearray = await self.inner.receive_some(max_bytes)
        return data


class Libp2pLikeStream:
    """The py-libp2p stream shape: ``read(n)`` raising an EOFError at the end, ``write``."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.written = bytearray()

    async def read(self, n: int | None = None) -> bytes:
        await trio.lowlevel.checkpoint()
        if not self.data:
            raise EOFError("stream closed")
        size = len(self.data) if n is None else n
        chunk, self.data = self.data[:size], self.data[size:]
        return chunk

    async def write(self, data: bytes) -> None:
        await trio.lowlevel.checkpoint()
        self.written += data


def frame(payload: bytes) -> bytes:
    return bytes(varint.encode(len(payload))) + payload


def run(fn: Any) -> Any:
    return trio.run(fn)


def test_round_trip_and_clean_eof() -> None:
    payloads = [b"", b"a", b"x" * 127, b"y" * 128, os.urandom(70_000)]

    async def main() -> list[bytes | None]:
        left, right = trio.testing.memory_stream_pair()
        for p in payloads:
            await write_frame(left, p)
        await left.send_eof()
        reader = FrameReader(right)
        return [await reader.read_frame(1 << 20) for _ in range(len(payloads) + 2)]

    assert run(main) == [*payloads, None, None]


def test_prefix_is_multiformats_uvarint() -> None:
    async def main() -> bytes:
        left, right = trio.testing.memory_stream_pair()
        await write_frame(left, b"z" * 300)
        await left.send_eof()
        data = b""
        while chunk := await right.receive_some():
            data += chunk
        return data

    data = run(main)
    assert data[:2] == bytes(varint.encode(300)) == b"\xac\x02"
    assert data[2:] == b"z" * 300


def test_byte_at_a_time_delivery() -> None:
    payloads = [b"hello", b"", b"w" * 200, os.urandom(1000)]

    async def main() -> tuple[list[bytes | None], int]:
        left, right = trio.testing.memory_stream_pair()
        receiver = CountingReceiver(right, max_chunk=1)
        reader = FrameReader(receiver)

        async def send() -> None:
            for p in payloads:
                data = frame(p)
                for i in range(len(data)):  # one byte per send, with a yield between
                    await left.send_all(data[i : i + 1])
                    await trio.sleep(0)
            await left.send_eof()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(send)
            got = [await reader.read_frame(4096) for _ in range(len(payloads) + 1)]
        return got, receiver.calls

    got, calls = run(main)
    assert got == [*payloads, None]
    total = sum(len(frame(p)) for p in payloads)
    assert calls == total + 1  # one read per byte, plus the read that sees EOF


def test_many_frames_in_one_read() -> None:
    payloads = [f"frame {i}".encode() for i in range(500)]

    async def main() -> tuple[list[bytes | None], int, int]:
        left, right = trio.testing.memory_stream_pair()
        await left.send_all(b"".join(frame(p) for p in payloads))  # one chunk
        receiver = CountingReceiver(right)
        reader = FrameReader(receiver)
        got = [await reader.read_frame(100) for _ in payloads]
        return got, receiver.calls, reader.buffered

    got, calls, buffered = run(main)
    assert got == payloads
    assert calls == 1  # py-libp2p's helper would have made >= 1000 reads
    assert buffered == 0


def test_oversized_is_refused_before_the_body() -> None:
    async def main() -> None:
        left, right = trio.testing.memory_stream_pair()
        # only the prefix is sent: reading the body would block forever
        await left.send_all(bytes(varint.encode(10_000_000)))
        reader = FrameReader(right)
        with trio.fail_after(2), pytest.raises(FrameTooLarge, match="10000000") as info:
            await reader.read_frame(1000)
        assert info.value.code == "too_large"
        assert isinstance(info.value, ProtocolError)

    run(main)


def test_exact_limit_is_accepted() -> None:
    async def main() -> bytes | None:
        left, right = trio.testing.memory_stream_pair()
        await write_frame(left, b"q" * 1000)
        return await FrameReader(right).read_frame(1000)

    assert run(main) == b"q" * 1000


def test_write_frame_max_size() -> None:
    async def main() -> None:
        left, _right = trio.testing.memory_stream_pair()
        with pytest.raises(FrameTooLarge):
            await write_frame(left, b"x" * 11, max_size=10)

    run(main)


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(frame(b"abcdef")[:-2], id="body"),
        pytest.param(b"\x80", id="prefix"),
        pytest.param(bytes(varint.encode(5)), id="after-prefix"),
    ],
)
def test_truncated_frame(data: bytes) -> None:
    async def main() -> None:
        left, right = trio.testing.memory_stream_pair()
        await left.send_all(frame(b"ok") + data)
        await left.send_eof()
        reader = FrameReader(right)
        assert await reader.read_frame(100) == b"ok"
        with pytest.raises(ProtocolError, match="truncated") as info:
            await reader.read_frame(100)
        assert info.value.code == "truncated"

    run(main)


@pytest.mark.parametrize(
    "prefix",
    [
        pytest.param(b"\x80\x00", id="not-minimal"),
        pytest.param(b"\xff" * 9 + b"\x01", id="too-long"),
    ],
)
def test_malformed_prefix(prefix: bytes) -> None:
    async def main() -> None:
        left, right = trio.testing.memory_stream_pair()
        await left.send_all(prefix + b"rest")
        with pytest.raises(ProtocolError) as info:
            await FrameReader(right).read_frame(1 << 30)
        assert info.value.code == "malformed"
        assert not isinstance(info.value, FrameTooLarge)

    run(main)


def test_large_frame_streams_through() -> None:
    payload = os.urandom(5 * 1024 * 1024 + 3)

    async def main() -> bytes | None:
        left, right = trio.testing.memory_stream_pair()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(write_frame, left, payload)
            got = await FrameReader(right).read_frame(len(payload))
        return got

    assert run(main) == payload


def test_module_read_frame_keeps_the_buffer_per_stream() -> None:
    async def main() -> list[bytes | None]:
        left, right = trio.testing.memory_stream_pair()
        await left.send_all(frame(b"one") + frame(b"two") + frame(b"three"))
        await left.send_eof()
        # three calls on the raw stream: the bytes buffered past frame one are not lost
        return [await read_frame(right, 10) for _ in range(4)]

    assert run(main) == [b"one", b"two", b"three", None]


def test_libp2p_style_stream() -> None:
    """``read(n)`` / ``write(b)``, and EOF signalled by an EOFError (py-libp2p's StreamEOF)."""

    async def main() -> tuple[list[bytes | None], bytes]:
        stream = Libp2pLikeStream(frame(b"a") + frame(b"bc"))
        reader = FrameReader(stream)
        got = [await reader.read_frame(10) for _ in range(3)]
        await write_frame(stream, b"reply")
        return got, bytes(stream.written)

    got, written = run(main)
    assert got == [b"a", b"bc", None]
    assert written == frame(b"reply")


def test_broken_stream_is_connection_lost() -> None:
    async def main() -> None:
        left, right = trio.testing.memory_stream_pair()
        await right.aclose()
        with pytest.raises(ConnectionLost):
            await write_frame(left, b"x")
        with pytest.raises(ConnectionLost):
            await FrameReader(right).read_frame(10)

    run(main)
