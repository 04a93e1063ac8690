"""Length-prefixed messages on a byte stream: ``uvarint(len(payload)) ‖ payload``.

The prefix is an unsigned varint (multiformats' codec, at most 9 bytes). Reads go through
a buffered :class:`FrameReader`: py-libp2p's own helper
(``libp2p.utils.varint.read_varint_prefixed_bytes``) reads the prefix one byte per
``read()``, and every ``read()`` on a libp2p stream is a trip through the muxer.

Works on py-libp2p streams (``read(n)``/``write(data)``) and on trio streams
(``receive_some(n)``/``send_all(data)``, e.g. ``trio.testing.memory_stream_pair``).

- a clean end of stream between frames → ``None``
- a frame longer than ``max_size`` → :class:`~threadkit.errors.FrameTooLarge`, raised as soon
  as the prefix is read, before any of the body
- an end of stream inside a frame, or a malformed prefix → :class:`~threadkit.errors.ProtocolError`
- a reset or broken stream → :class:`~threadkit.errors.ConnectionLost`
- a frame that stalls (no byte for ``stall_timeout`` seconds once it has begun, or slower
  on average than ``min_rate``) → :class:`~threadkit.errors.ProtocolError` (``"stalled"``)
- with a :class:`~threadkit.net.budget.FrameBudget`, every frame reserves its size in it
  while it is read (``"busy"`` when no room comes)

Examples
--------
>>> import trio, trio.testing
>>> async def demo() -> list[bytes | None]:
...     left, right = trio.testing.memory_stream_pair()
...     await write_frame(left, b"hello")
...     await write_frame(left, b"")
...     await left.send_eof()
...     reader = FrameReader(right)
...     return [await reader.read_frame(1024) for _ in range(3)]
>>> trio.run(demo)
[b'hello', b'', None]
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from multiformats import varint

from threadkit.errors import ConnectionLost, FrameTooLarge, ProtocolError
from threadkit.net.budget import MIN_FRAME_RATE, STALL_TIMEOUT

if TYPE_CHECKING:
    from threadkit.net.budget import FrameBudget

__all__ = [
    "MAX_PREFIX",
    "READ_SIZE",
    "FrameReader",
    "read_frame",
    "write_frame",
]

MAX_PREFIX = 9
"""The longest uvarint prefix (the unsigned-varint spec caps values below 2**63)."""

READ_SIZE = 64 * 1024
"""Bytes asked for per read while a frame's prefix or a small body is missing."""

_MAX_READ = 4 * 1024 * 1024  # largest single read while a big body is missing
_SPLIT_WRITE = 1024 * 1024  # payloads this large are written after their prefix, not copied
_ATTR = "_threadkit_frame_reader"


def _is_connection_failure(exc: BaseException) -> bool:
    """True for the errors a broken, reset or closed stream raises (trio or libp2p)."""
    if isinstance(exc, ConnectionError):
        return True
    trio = sys.modules.get("trio")
    if trio is not None and isinstance(exc, trio.BrokenResourceError | trio.ClosedResourceError):
        return True
    io_errors = sys.modules.get("libp2p.io.exceptions")
    if io_errors is not None and isinstance(exc, io_errors.IOException):
        return True
    muxer_errors = sys.modules.get("libp2p.stream_muxer.exceptions")
    return muxer_errors is not None and isinstance(
        exc, muxer_errors.MuxedStreamError | muxer_errors.MuxedConnError
    )


def _prefix_length(buffer: bytearray) -> int:
    """Length of the complete uvarint at the start of ``buffer``, or 0 while it is incomplete."""
    for index in range(min(len(buffer), MAX_PREFIX)):
        if buffer[index] < 0x80:  # the last byte of a varint has no continuation bit
            return index + 1
    return 0


class FrameReader:
    """A buffered reader of length-prefixed frames from one stream.

    Reads as many bytes as the stream has ready (up to ``read_size``) and keeps what is
    left over for the next frame, so a burst of small frames costs one read, not two or
    more per frame. Use one reader per stream for the stream's whole life: bytes it has
    buffered are not seen by other readers.

    Parameters
    ----------
    stream : object
        A py-libp2p stream (``read(n)``) or a trio receive stream (``receive_some(n)``).
    read_size : int
        Bytes asked for per read.
    budget : FrameBudget, optional
        Where each frame reserves its size while it is read (shared by a node's streams).
    peer : str
        The remote peer the budget charges (its peer id).
    stall_timeout : float
        Seconds a frame that has begun may go without a byte.
    min_rate : int
        Bytes per second a frame must average after its first ``stall_timeout`` seconds.

    Examples
    --------
    >>> import trio, trio.testing
    >>> async def demo() -> tuple[list[bytes | None], int]:
    ...     left, right = trio.testing.memory_stream_pair()
    ...     await left.send_all(b"\\x01a\\x01b\\x01c")  # three frames in one write
    ...     reader = FrameReader(right)
    ...     frames = [await reader.read_frame(10) for _ in range(3)]
    ...     return frames, reader.reads
    >>> trio.run(demo)
    ([b'a', b'b', b'c'], 1)
    """

    __slots__ = (
        "_buffer",
        "_eof",
        "_receive",
        "budget",
        "min_rate",
        "peer",
        "read_size",
        "reads",
        "stall_timeout",
        "stream",
    )

    def __init__(
        self,
        stream: Any,
        *,
        read_size: int = READ_SIZE,
        budget: FrameBudget | None = None,
        peer: str = "",
        stall_timeout: float = STALL_TIMEOUT,
        min_rate: int = MIN_FRAME_RATE,
    ) -> None:
        self.stream = stream
        self.read_size = read_size
        self.budget = budget
        self.peer = peer
        self.stall_timeout = stall_timeout
        self.min_rate = min_rate
        self.reads = 0
        """How many reads the reader has made on the stream (for tests and stats)."""
        self._buffer = bytearray()
        self._eof = False
        # trio streams have receive_some(); py-libp2p streams have read()
        self._receive = getattr(stream, "receive_some", None) or stream.read

    @property
    def buffered(self) -> int:
        """Bytes read from the stream and not yet returned in a frame."""
        return len(self._buffer)

    async def _fill(self, wanted: int) -> bool:
        """Read once (up to ``wanted`` bytes) into the buffer; False at the end of the stream."""
        if self._eof:
            return False
        try:
            chunk = await self._receive(wanted)
        except EOFError:  # py-libp2p raises StreamEOF (an EOFError) instead of returning b""
            chunk = b""
        except Exception as exc:
            if _is_connection_failure(exc):
                raise ConnectionLost(f"stream failed while reading: {exc!r}") from exc
            raise
        self.reads += 1
        if not chunk:
            self._eof = True
            return False
        self._buffer += chunk
        return True

    async def _fill_by(self, wanted: int, started: float, size: int) -> bool:
        """:meth:`_fill`, for a frame begun at ``started``: ProtocolError when it stalls."""
        import trio

        deadline = started + self.stall_timeout + size / self.min_rate
        wait = min(self.stall_timeout, deadline - trio.current_time())
        if wait > 0:
            with trio.move_on_after(wait):
                return await self._fill(wanted)
        raise ProtocolError(
            f"frame stalled: {len(self._buffer)} of {size or 'its prefix'} bytes after "
            f"{trio.current_time() - started:.0f} s",
            code="stalled",
        )

    async def read_frame(self, max_size: int) -> bytes | None:
        """The next frame's payload, or None at a clean end of stream (between frames).

        Parameters
        ----------
        max_size : int
            The largest payload accepted.

        Raises
        ------
        FrameTooLarge
            The prefix announces more than ``max_size`` bytes (the body is left unread).
        ProtocolError
            The stream ended inside a frame, or the prefix is not a valid uvarint.
        ConnectionLost
            The stream was reset or broken.
        """
        import trio

        buffer = self._buffer
        started = trio.current_time() if buffer else None
        while not (prefix := _prefix_length(buffer)):
            if len(buffer) >= MAX_PREFIX:
                raise ProtocolError(
                    f"frame length prefix is longer than {MAX_PREFIX} bytes", code="malformed"
                )
            # before its first byte a frame is not late: the caller bounds that wait
            more = (
                await self._fill(self.read_size)
                if started is None
                else await self._fill_by(self.read_size, started, 0)
            )
            if not more:
                if not buffer:
                    return None
                raise ProtocolError(
                    "truncated frame: the stream ended inside a length prefix", code="truncated"
                )
            if started is None:
                started = trio.current_time()
        try:
            size, _, _ = varint.decode_raw(bytes(buffer[:prefix]))
        except ValueError as exc:
            raise ProtocolError(f"bad frame length prefix: {exc}", code="malformed") from None
        if size > max_size:
            raise FrameTooLarge(f"frame of {size} bytes exceeds the limit of {max_size} bytes")
        del buffer[:prefix]
        budget = self.budget if size else None
        if budget is not None:
            await budget.reserve(self.peer, size)
        if budget is not None or started is None:  # waiting for room is not the sender's delay
            started = trio.current_time()
        try:
            while len(buffer) < size:
                missing = size - len(buffer)
                wanted = min(max(missing, self.read_size), _MAX_READ)
                if not await self._fill_by(wanted, started, size):
                    raise ProtocolError(
                        f"truncated frame: the stream ended after {len(buffer)} of {size} bytes",
                        code="truncated",
                    )
            payload = bytes(buffer[:size])
            del buffer[:size]  # CPython drops a bytearray's head in O(1)
        finally:
            if budget is not None:
                budget.release(self.peer, size)
        return payload


def _reader_for(stream: Any) -> FrameReader:
    if isinstance(stream, FrameReader):
        return stream
    reader = getattr(stream, _ATTR, None)
    if not isinstance(reader, FrameReader):
        reader = FrameReader(stream)
        setattr(stream, _ATTR, reader)
    return reader


async def read_frame(stream: Any, max_size: int) -> bytes | None:
    """Read one frame; ``None`` at a clean end of stream.

    ``stream`` is a :class:`FrameReader`, or a stream: then the stream's own reader
    (created on first use and kept on the stream) is used, so bytes buffered past one
    frame are not lost between calls. Do not mix with raw reads on the same stream.

    See :meth:`FrameReader.read_frame` for the errors.
    """
    return await _reader_for(stream).read_frame(max_size)


async def write_frame(stream: Any, payload: bytes, *, max_size: int | None = None) -> None:
    """Write ``uvarint(len(payload)) ‖ payload`` to a py-libp2p or trio stream.

    Parameters
    ----------
    stream : object
        A py-libp2p stream (``write``), a trio send stream (``send_all``), or a
        :class:`FrameReader` (its stream is written to).
    payload : bytes
        The message.
    max_size : int, optional
        Refuse (``FrameTooLarge``) a payload larger than this, before writing anything.

    Raises
    ------
    FrameTooLarge
        ``payload`` is larger than ``max_size``.
    ConnectionLost
        The stream was reset, closed or broken.
    """
    if isinstance(stream, FrameReader):
        stream = stream.stream
    size = len(payload)
    if max_size is not None and size > max_size:
        raise FrameTooLarge(f"frame of {size} bytes exceeds the limit of {max_size} bytes")
    prefix = varint.encode(size)
    send = getattr(stream, "send_all", None) or stream.write
    try:
        if size >= _SPLIT_WRITE:
            await send(prefix)
            await send(payload)
        else:
            await send(prefix + bytes(payload))
    except Exception as exc:
        if _is_connection_failure(exc):
            raise ConnectionLost(f"stream failed while writing: {exc!r}") from exc
        raise
