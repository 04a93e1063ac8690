"""Yamux with its flow control enforced, and a bound on what the muxer buffers.

py-libp2p 0.8.1's Yamux keeps the bytes a peer sends on a stream until the stream's
reader takes them. Flow control is meant to bound that: a peer may send only what the
receive window it was granted allows. But the library only *logs* a peer that sends
beyond its window, and buffers the data anyway, so a hand-made sender that ignores the
window makes its victim buffer without limit, below any bound the application keeps
(the frame budget of :mod:`threadkit.net.budget` counts only what a reader has taken).
And even within the windows, nothing bounds how many streams a peer may open, each
with its own window, nor how far windows grow (16 MiB a stream).

:class:`GuardedYamux` is py-libp2p's Yamux with these holes closed
(docs/libp2p-notes.md §9):

- **the receive window is enforced**: a DATA frame longer than the window granted on
  its stream (256 KiB for a new stream) is a protocol violation: the connection gets
  ``GO_AWAY`` (protocol error) and is closed, as go-yamux does, before the frame's body
  is read;
- **inbound streams are counted**: a connection may have :data:`MAX_INBOUND_STREAMS_PER_CONN`
  streams the peer opened, all connections of the node together
  :data:`MAX_INBOUND_STREAMS`; a stream beyond either is reset as soon as it is accepted;
- **windows grow within a budget**: a window may grow beyond the initial 256 KiB only
  while the growth of all windows of its connection stays within
  :data:`MAX_WINDOW_GROWTH_PER_CONN` and of all connections within
  :data:`MAX_WINDOW_GROWTH`; a stream can always get its 256 KiB back, so nothing stalls;
- **a reset stream's unread bytes are dropped** at once (the library kept them 60 s);
- **credit is granted as go-yamux grants it**: a stream tells its peer of the bytes it
  read only once they reach half its window (:class:`GuardedStream`). The library's
  default also sent a ``WINDOW_UPDATE`` after every read, so each request and each reply
  cost both peers one more frame to write, encrypt, read and decrypt (~170 µs of CPU a
  side per round trip here, a third of a small request's cost).

So what the muxer buffers is at most 256 KiB a stream plus the growth budget: 24 MiB
for one connection, 160 MiB for the node. The library's Yamux is built by
``MuxerMultistream.new_conn`` whatever muxer class the host is given, so
:func:`install` replaces the host's muxer selector with one that builds this class.
Only Yamux is offered (no Mplex), see docs/libp2p-notes.md §1.
"""

from __future__ import annotations

import logging
import struct
import weakref
from typing import Any

import trio
from libp2p.abc import IMuxedConn, IMuxedStream, ISecureConn
from libp2p.custom_types import TProtocol
from libp2p.peer.id import ID
from libp2p.stream_muxer.muxer_multistream import MuxerMultistream
from libp2p.stream_muxer.yamux.yamux import (
    DEFAULT_WINDOW_SIZE,
    FLAG_SYN,
    GO_AWAY_PROTOCOL_ERROR,
    HEADER_SIZE,
    PROTOCOL_ID,
    TYPE_DATA,
    TYPE_GO_AWAY,
    TYPE_WINDOW_UPDATE,
    YAMUX_HEADER_FORMAT,
    Yamux,
    YamuxStream,
)

from threadkit.errors import ProtocolError

__all__ = [
    "MAX_INBOUND_STREAMS",
    "MAX_INBOUND_STREAMS_PER_CONN",
    "MAX_WINDOW_GROWTH",
    "MAX_WINDOW_GROWTH_PER_CONN",
    "OPENING_CREDIT",
    "GuardedStream",
    "GuardedYamux",
    "MuxerBudget",
    "budget_of",
    "install",
]

log = logging.getLogger("threadkit.net")

MiB = 1024 * 1024

MAX_INBOUND_STREAMS_PER_CONN = 64
"""Streams a peer may have open (or closed with bytes unread) on one connection."""

MAX_INBOUND_STREAMS = 512
"""Streams other peers may have open on all the node's connections together."""

MAX_WINDOW_GROWTH_PER_CONN = 8 * MiB
"""Bytes the receive windows of one connection's streams may grow beyond 256 KiB each, together."""

MAX_WINDOW_GROWTH = 32 * MiB
"""Bytes the receive windows of all the node's streams may grow beyond 256 KiB each, together."""


class MuxerBudget:
    """The limits shared by the Yamux connections of one host, and what they count.

    Parameters
    ----------
    streams_per_conn, streams : int
        Inbound streams one connection, and all together, may have.
    growth_per_conn, growth : int
        Bytes windows may grow beyond the initial 256 KiB, on one connection and on all.
    """

    def __init__(
        self,
        *,
        streams_per_conn: int = MAX_INBOUND_STREAMS_PER_CONN,
        streams: int = MAX_INBOUND_STREAMS,
        growth_per_conn: int = MAX_WINDOW_GROWTH_PER_CONN,
        growth: int = MAX_WINDOW_GROWTH,
    ) -> None:
        self.streams_per_conn = streams_per_conn
        self.streams = streams
        self.growth_per_conn = growth_per_conn
        self.growth = growth
        self.violations = 0
        """Connections closed for sending beyond a window (for tests and stats)."""
        self.refused_streams = 0
        """Inbound streams reset for want of room (for tests and stats)."""
        self.conns: weakref.WeakSet[GuardedYamux] = weakref.WeakSet()

    def buffered(self) -> int:
        """Bytes the node's connections hold that no reader has taken yet."""
        return sum(conn.buffered() for conn in list(self.conns))

    def inbound(self) -> int:
        """Streams other peers have open on the node's connections."""
        return sum(conn.inbound() for conn in list(self.conns))

    def growth_used(self) -> int:
        """Bytes by which the node's windows exceed 256 KiB each."""
        return sum(conn.growth() for conn in list(self.conns))


def _grant(conn: Yamux, stream: YamuxStream) -> int:
    """What ``stream`` may hold: its unread bytes and what its peer may still send."""
    return stream.recv_window + len(conn.stream_buffers.get(stream.stream_id, b""))


class _InboundGuard:
    """The secured connection as Yamux reads it, with every frame header checked first.

    Yamux reads a header, then the DATA body it announces, then the next header, and acts
    on each frame before reading the next, so when a header is whole the windows are
    those the peer was granted for it.
    """

    def __init__(self, conn: ISecureConn, muxer: GuardedYamux) -> None:
        self._conn = conn
        self._muxer = weakref.ref(muxer)
        self._header = bytearray()
        self._body_left = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)

    async def read(self, n: int | None = None) -> bytes:
        data = await self._conn.read(n)
        view = memoryview(data)
        while view:
            if self._body_left:
                step = min(self._body_left, len(view))
                self._body_left -= step
                view = view[step:]
                continue
            step = min(HEADER_SIZE - len(self._header), len(view))
            self._header += view[:step]
            view = view[step:]
            if len(self._header) == HEADER_SIZE:
                header = bytes(self._header)
                self._header.clear()
                await self._check(header)
        return data

    async def _check(self, header: bytes) -> None:
        muxer = self._muxer()
        _, kind, flags, stream_id, length = struct.unpack(YAMUX_HEADER_FORMAT, header)
        if kind != TYPE_DATA or muxer is None:
            return
        self._body_left = length
        stream = muxer.streams.get(stream_id)
        if stream is not None:
            window = stream.recv_window
        elif flags & FLAG_SYN:
            window = DEFAULT_WINDOW_SIZE
        else:  # a stream already gone (its data is dropped): it had at most this window
            window = DEFAULT_WINDOW_SIZE + muxer.budget.growth_per_conn
        if length > window:
            await muxer.violated(
                f"peer {muxer.peer_id} sent {length} bytes on stream {stream_id} "
                f"beyond its receive window of {window} bytes"
            )


OPENING_CREDIT = 1024
"""Bytes a stream reads first (its protocol negotiation) whose credit goes back at once."""


class GuardedStream(YamuxStream):
    """A Yamux stream that grants its peer more room once half its window was read.

    py-libp2p 0.8.1's stream follows go-yamux's rule (an update once the credit owed
    reaches half the window, the window doubling while reads keep up) but by default
    also releases every read's bytes at once (``PY_YAMUX_RELEASE_ON_READ``, which does not
    stop its "partial slack" branch): one ``WINDOW_UPDATE`` frame per read. This keeps
    only go-yamux's rule; the sender never waits, as it still has half a window when
    the update is sent. The first :data:`OPENING_CREDIT` bytes a stream reads (its
    protocol negotiation) are still credited at once, so that a fresh stream offers its
    peer the whole initial window, as the library's did. :class:`GuardedYamux` gives its
    streams this class.
    """

    async def _auto_tune_and_send_window_update(self, *, bytes_read: int = 0) -> None:
        # no await before the update is sent: the loop cannot interleave, so no lock
        self._pending_recv_release += bytes_read
        opened = self.__dict__.get("_tk_read", 0)
        self.__dict__["_tk_read"] = opened + bytes_read
        buffered = len(self.conn.stream_buffers.get(self.stream_id, b""))
        threshold = self._grow_threshold()
        owed = self.target_recv_window - (self.recv_window + buffered)
        increment = 0
        if opened + bytes_read <= OPENING_CREDIT and self._pending_recv_release > 0:
            increment = self._pending_recv_release
            self.recv_window += increment
            self._pending_recv_release = 0
        elif owed >= threshold and owed > 0:
            increment = self._grow_to_delta(buffered) + self._apply_autotune_epoch(buffered)
            self._pending_recv_release = 0
        elif self._pending_recv_release >= threshold:
            increment = self._pending_recv_release
            self.recv_window += increment
            self._pending_recv_release = 0
            increment += self._apply_autotune_epoch(buffered)
        if increment > 0:
            await self.send_window_update(increment, skip_lock=True)


class GuardedYamux(Yamux):
    """py-libp2p's Yamux with receive windows enforced and a budget for what it buffers.

    Parameters
    ----------
    secured_conn, peer_id, is_initiator, on_close
        As for py-libp2p's ``Yamux``.
    budget : MuxerBudget
        The limits shared by the host's connections.
    """

    def __init__(
        self,
        secured_conn: ISecureConn,
        peer_id: ID,
        is_initiator: bool | None = None,
        on_close: Any = None,
        *,
        budget: MuxerBudget,
    ) -> None:
        super().__init__(secured_conn, peer_id, is_initiator, on_close)
        self.secured_conn = _InboundGuard(secured_conn, self)  # type: ignore[assignment]
        self.budget = budget
        budget.conns.add(self)

    def buffered(self) -> int:
        """Bytes received on this connection's streams and not read yet."""
        return sum(len(b) for b in self.stream_buffers.values())

    def inbound(self) -> int:
        """Streams the peer opened that are still here (open, or closed with bytes unread)."""
        return sum(1 for s in self.streams.values() if not s.is_initiator)

    def growth(self, skip: YamuxStream | None = None) -> int:
        """Bytes by which this connection's windows exceed 256 KiB each."""
        return sum(
            max(0, _grant(self, s) - DEFAULT_WINDOW_SIZE)
            for s in self.streams.values()
            if s is not skip
        )

    async def violated(self, reason: str) -> None:
        """Close the connection: the peer broke flow control. Raises ProtocolError."""
        self.budget.violations += 1
        log.warning("closing a connection: %s", reason)
        header = struct.pack(YAMUX_HEADER_FORMAT, 0, TYPE_GO_AWAY, 0, 0, GO_AWAY_PROTOCOL_ERROR)
        try:
            await super()._write_frame(header)
        except Exception as exc:  # the connection may be gone already
            log.debug("GO_AWAY not sent: %r", exc)
        self.event_shutting_down.set()
        # raised inside Yamux's header read, which then cleans the connection up
        raise ProtocolError(reason, code="flow_control")

    async def open_stream(self) -> YamuxStream:
        """A new outbound stream (a :class:`GuardedStream`)."""
        stream = await super().open_stream()
        stream.__class__ = GuardedStream
        return stream

    async def accept_stream(self) -> IMuxedStream:
        """The next inbound stream with room; streams beyond the limits are reset."""
        while True:
            stream = await super().accept_stream()
            budget = self.budget
            if self.inbound() <= budget.streams_per_conn and budget.inbound() <= budget.streams:
                if type(stream) is YamuxStream:  # the library builds them: read as go-yamux
                    stream.__class__ = GuardedStream
                return stream
            budget.refused_streams += 1
            log.info("resetting a stream from %s: too many inbound streams", self.peer_id)
            try:
                await stream.reset()
            except Exception as exc:
                log.debug("reset failed: %r", exc)

    def _finalize_stream_locked(self, stream: YamuxStream, *, fully_closed: bool) -> None:
        if stream.reset_received:  # a reset stream's bytes are never read: drop them now
            buffer = self.stream_buffers.get(stream.stream_id)
            if buffer:
                buffer.clear()
        super()._finalize_stream_locked(stream, fully_closed=fully_closed)

    async def _write_frame(self, data: bytes) -> None:
        """Write a frame; a window update is cut to what the growth budget allows."""
        if len(data) == HEADER_SIZE and data[1] == TYPE_WINDOW_UPDATE:
            version, kind, flags, stream_id, increment = struct.unpack(YAMUX_HEADER_FORMAT, data)
            stream = self.streams.get(stream_id)
            if increment and not flags & FLAG_SYN and stream is not None:
                cut = self._excess(stream)
                if cut:
                    cut = min(cut, increment)
                    # the library counted the whole increment as granted: take back the cut
                    stream.recv_window -= cut
                    increment -= cut
                    if not increment and not flags:
                        await trio.lowlevel.checkpoint()
                        return
                    data = struct.pack(
                        YAMUX_HEADER_FORMAT, version, kind, flags, stream_id, increment
                    )
        await super()._write_frame(data)

    def _excess(self, stream: YamuxStream) -> int:
        """Bytes of ``stream``'s grant beyond what it may have."""
        budget = self.budget
        others = sum(c.growth() for c in list(budget.conns) if c is not self)
        room = min(
            budget.growth_per_conn - self.growth(skip=stream),
            budget.growth - others - self.growth(skip=stream),
        )
        allowed = DEFAULT_WINDOW_SIZE + max(0, room)
        return max(0, _grant(self, stream) - allowed)


class _GuardedMuxerMultistream(MuxerMultistream):
    """Negotiates the muxer as py-libp2p does, and builds a :class:`GuardedYamux`."""

    def __init__(self, base: MuxerMultistream, budget: MuxerBudget) -> None:
        self.__dict__.update(base.__dict__)
        self.budget = budget

    async def new_conn(self, conn: ISecureConn, peer_id: ID) -> IMuxedConn:
        protocol, _transport = await self._selector.select(
            conn, conn.is_initiator, self.negotiate_timeout
        )
        if protocol != PROTOCOL_ID:
            raise ProtocolError(f"muxer {protocol} is not offered", code="refused")

        async def on_close() -> None:
            pass

        muxed = GuardedYamux(
            conn, peer_id, is_initiator=conn.is_initiator, on_close=on_close, budget=self.budget
        )
        return self._annotate_connection(muxed, conn, TProtocol(protocol))


def install(host: Any, budget: MuxerBudget | None = None) -> MuxerBudget:
    """Make ``host`` (a py-libp2p BasicHost offering Yamux) build :class:`GuardedYamux`.

    Returns
    -------
    MuxerBudget
        The budget its connections share.
    """
    budget = budget or MuxerBudget()
    upgrader = host.get_network().upgrader
    upgrader.muxer_multistream = _GuardedMuxerMultistream(upgrader.muxer_multistream, budget)
    return budget


def budget_of(host: Any) -> MuxerBudget:
    """The :class:`MuxerBudget` that :func:`install` gave ``host``."""
    selector = host.get_network().upgrader.muxer_multistream
    if not isinstance(selector, _GuardedMuxerMultistream):
        raise ProtocolError("this host's muxer is not guarded", code="refused")
    return selector.budget
