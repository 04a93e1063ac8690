"""Long-lived request/response streams to remote peers (``StreamPool``).

Opening a libp2p stream is the expensive part of a request with py-libp2p 0.8.1: a Yamux
SYN, a multistream-select handshake and the protocol negotiation, and py-libp2p's own
bookkeeping — on this machine about 5× the cost of one more round trip on a stream that
is already open (``bench/RESULTS.md``). A :class:`StreamPool` keeps a few streams per
remote peer open and sends many requests on each, one at a time: write one frame, read
one frame back. What it guarantees:

- **Reuse.** A request takes an idle stream to its peer, or opens one while fewer than
  ``max_per_peer`` are open; otherwise it waits for one to come back. Requests to one
  peer from many tasks (threads, logs, pulls) are thus spread over at most
  ``max_per_peer`` streams, each carrying one exchange at a time.
- **Failure.** A stream that breaks (reset, connection lost, the remote closed it) is
  dropped, and the request is tried once more on a new stream (after ``connect``, which
  may dial again). A request interrupted in the middle (a timeout, a cancellation) drops
  its stream: a late reply can never be read as the answer to the next request. Every
  call of ``/threadkit`` is idempotent, so a retried request that had been served does no
  harm.
- **Older peers.** Streams are opened offering ``protocols`` in order; a stream that
  negotiated one of ``single_protocols`` carries exactly one request and is then closed,
  as that protocol wants. The pool remembers the peer's choice for the life of its
  connection, so the next stream is opened offering only that protocol.
- **Idle streams close.** A stream unused for ``idle_timeout`` seconds is closed. This
  matters beyond tidiness: py-libp2p's connection manager never trims a connection that
  has an open stream, so idle streams kept forever would switch connection limits off.

The pool runs on the node's trio loop; its methods are called from there.

Examples
--------
>>> pool = StreamPool(node, ["/echo/2.0.0", "/echo/1.0.0"],  # doctest: +SKIP
...                   single_protocols=["/echo/1.0.0"], idle_timeout=10)
>>> reply = await pool.request(peer_id, b"ping")  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from threadkit.errors import (
    ConnectionLost,
    InvalidInput,
    NetworkError,
    NodeClosed,
    PeerUnreachable,
    ProtocolError,
)
from threadkit.net.framing import FrameReader, write_frame

if TYPE_CHECKING:
    from threadkit.net.budget import FrameBudget
    from threadkit.net.connmgr import ConnLimits
    from threadkit.net.node import Node

__all__ = [
    "IDLE_TIMEOUT",
    "MAX_PER_PEER",
    "MIN_IDLE_TIMEOUT",
    "PoolStats",
    "StreamPool",
    "idle_timeout_for",
]

log = logging.getLogger("threadkit.net")

IDLE_TIMEOUT = 10.0
"""Seconds an unused stream stays open at most (see :func:`idle_timeout_for`)."""

MIN_IDLE_TIMEOUT = 0.25
"""Seconds an unused stream stays open at least, however short the grace period."""

MAX_PER_PEER = 4
"""Streams open to one peer at most; more concurrent requests wait for one."""

_CLOSE_GRACE = 1.0  # seconds a shielded close or reset of a dropped stream may take
_REOPEN_DELAYS = (0.1, 0.4)  # seconds before each new try when no stream could be opened


def idle_timeout_for(limits: ConnLimits) -> float:
    """How long an unused stream stays open under these connection limits.

    Half the grace period, within :data:`MIN_IDLE_TIMEOUT`–:data:`IDLE_TIMEOUT`: a
    connection unused for longer than its grace period then has no stream left open, so
    the connection manager may trim it.

    Examples
    --------
    >>> from threadkit.net.connmgr import ConnLimits
    >>> idle_timeout_for(ConnLimits()), idle_timeout_for(ConnLimits(1, 2, 1.0))
    (10.0, 0.5)
    """
    return min(IDLE_TIMEOUT, max(MIN_IDLE_TIMEOUT, limits.grace_period / 2))


@dataclass
class PoolStats:
    """What a pool did (for tests and the benchmark)."""

    opened: int = 0
    """Streams opened."""
    reused: int = 0
    """Requests sent on a stream that had carried one before."""
    retried: int = 0
    """Requests sent a second time after their stream failed."""
    idle_closed: int = 0
    """Streams closed after ``idle_timeout`` unused."""
    dropped: int = 0
    """Streams dropped because they failed or a request on them was interrupted."""


@dataclass(eq=False)
class _Stream:
    """One open stream: its reader, its protocol, when it was last used."""

    stream: Any
    reader: FrameReader
    single: bool
    last_used: float
    uses: int = 0

    @property
    def conn(self) -> Any:
        return getattr(self.stream, "muxed_conn", None)


@dataclass(eq=False)
class _Peer:
    """The streams to one remote peer."""

    slots: Any  # trio.Semaphore(max_per_peer): one per stream that may be open
    idle: deque[_Stream] = field(default_factory=deque)
    open: int = 0
    users: int = 0  # requests under way or waiting for a slot
    single_conn: Any = None  # the connection on which the peer chose a single protocol


class StreamPool:
    """Persistent request/response streams to remote peers.

    Parameters
    ----------
    node : Node
        The running node whose loop the pool is used on.
    protocols : sequence of str
        Protocol ids offered when opening a stream, in order of preference.
    single_protocols : sequence of str
        Those of ``protocols`` that carry one request per stream (older peers).
    idle_timeout : float
        Seconds an unused stream stays open (more than 0).
    max_per_peer : int
        Streams open to one peer at most (at least 1).
    max_frame : int
        The largest reply accepted, in bytes.
    budget : FrameBudget, optional
        Where replies being read reserve their size (shared with the node's other streams).

    Raises
    ------
    InvalidInput
        An empty ``protocols``, a non-positive ``idle_timeout`` or ``max_per_peer``.
    """

    def __init__(
        self,
        node: Node,
        protocols: Sequence[str],
        *,
        single_protocols: Sequence[str] = (),
        idle_timeout: float = IDLE_TIMEOUT,
        max_per_peer: int = MAX_PER_PEER,
        max_frame: int = 32 * 1024 * 1024,
        budget: FrameBudget | None = None,
    ) -> None:
        if not protocols or isinstance(protocols, str):
            raise InvalidInput("protocols must be a non-empty list of protocol ids")
        if not idle_timeout > 0 or not math.isfinite(idle_timeout):
            raise InvalidInput(f"idle_timeout must be a positive number, got {idle_timeout!r}")
        if isinstance(max_per_peer, bool) or not isinstance(max_per_peer, int) or max_per_peer < 1:
            raise InvalidInput(f"max_per_peer must be a positive int, got {max_per_peer!r}")
        self.node = node
        self.protocols = tuple(protocols)
        self.single_protocols = frozenset(single_protocols)
        self.idle_timeout = float(idle_timeout)
        self.max_per_peer = max_per_peer
        self.max_frame = max_frame
        self.budget = budget
        self.stats = PoolStats()
        self._peers: dict[str, _Peer] = {}
        self._reaping = False
        self._closed = False

    # ------------------------------------------------------------------ public

    def open_streams(self, peer_id: str | None = None) -> int:
        """Streams open (idle or in use), to one peer or to all."""
        if peer_id is not None:
            peer = self._peers.get(peer_id)
            return 0 if peer is None else peer.open
        return sum(peer.open for peer in self._peers.values())

    def requests_under_way(self, peer_id: str) -> int:
        """Requests to ``peer_id`` being sent, answered, or waiting for a stream."""
        peer = self._peers.get(peer_id)
        return 0 if peer is None else peer.users

    def idle_streams(self, peer_id: str | None = None) -> int:
        """Streams open and unused, to one peer or to all."""
        peers = [self._peers.get(peer_id)] if peer_id is not None else self._peers.values()
        return sum(len(peer.idle) for peer in peers if peer is not None)

    async def request(
        self,
        peer_id: str,
        payload: bytes,
        *,
        connect: Callable[[], Awaitable[None]] | None = None,
    ) -> bytes:
        """Send ``payload`` as one frame to ``peer_id`` and return the reply frame.

        Parameters
        ----------
        peer_id : str
            The remote peer.
        payload : bytes
            The request.
        connect : async callable, optional
            Awaited before a new stream is opened (e.g. to dial the peer's known
            addresses when it is not connected).

        Returns
        -------
        bytes
            The reply.

        Raises
        ------
        ConnectionLost
            The stream broke twice (on the first stream and on the retry).
        ProtocolError
            The peer closed the stream without a reply twice (``code="eof"``), the reply
            frame is malformed or too large, or the peer speaks none of ``protocols``.
        PeerUnreachable
            No stream could be opened, three times (tries 0.1 s and 0.4 s apart).
        """
        import trio

        if self._closed:
            raise ConnectionLost("the stream pool is closed")
        peer = self._peers.get(peer_id)
        if peer is None:
            peer = self._peers[peer_id] = _Peer(trio.Semaphore(self.max_per_peer))
        peer.users += 1
        try:
            async with peer.slots:
                return await self._request(peer_id, peer, payload, connect)
        finally:
            peer.users -= 1

    async def _request(
        self,
        peer_id: str,
        peer: _Peer,
        payload: bytes,
        connect: Callable[[], Awaitable[None]] | None,
    ) -> bytes:
        import trio

        retried = False
        open_failures = 0
        while True:
            # a retry never takes an idle stream: it may share the broken one's fate
            entry = None if retried else self._take_idle(peer)
            if entry is None:
                try:
                    if connect is not None:
                        await connect()
                    entry = await self._open(peer_id, peer)
                except PeerUnreachable as exc:
                    # a connection being torn down (or a duplicate of a simultaneous dial
                    # being closed) still counts as connected for a moment, so no dial
                    # happens and no stream opens on it: try again, shortly
                    if open_failures == len(_REOPEN_DELAYS):
                        raise
                    log.debug("no stream to %s (%s); retrying", peer_id, exc)
                    if open_failures == len(_REOPEN_DELAYS) - 1 and connect is not None:
                        # twice no stream: the connection py-libp2p keeps may be dead without
                        # its knowing (a stream handshake failed on it); close it, so that
                        # the last try dials anew
                        with contextlib.suppress(NetworkError, OSError, trio.BrokenResourceError):
                            await self.node.disconnect(peer_id)
                    await trio.sleep(_REOPEN_DELAYS[open_failures])
                    open_failures += 1
                    self.stats.retried += 1
                    continue
            try:
                data = await self._exchange(entry, payload)
            except (ConnectionLost, ProtocolError) as exc:
                await self._drop(peer, entry, reset=True)
                self._drop_idle_on(peer, entry.conn)
                if retried or not _retryable(exc):
                    raise
                log.debug("request to %s failed (%s); retrying on a new stream", peer_id, exc)
            except BaseException:
                # interrupted mid-exchange: the stream may still deliver a late reply
                await self._drop(peer, entry, reset=True)
                raise
            else:
                if data is not None:
                    if entry.single:
                        await self._drop(peer, entry, reset=False, failed=False)
                    else:
                        self._put_back(peer, entry)
                    return data
                # the peer closed the stream unanswered (it idled out, or it is going away)
                await self._drop(peer, entry, reset=False)
                if retried:
                    raise ProtocolError(f"{peer_id} closed the stream without replying", code="eof")
            retried = True
            self.stats.retried += 1

    async def close(self) -> None:
        """Close every idle stream; streams in use close when their request ends."""
        self._closed = True
        for peer in self._peers.values():
            while peer.idle:
                entry = peer.idle.popleft()
                peer.open -= 1
                await _close(entry.stream)

    # ---------------------------------------------------------------- internals

    def _take_idle(self, peer: _Peer) -> _Stream | None:
        """The most recently used idle stream that still looks usable, or None."""
        while peer.idle:
            entry = peer.idle.pop()
            if _usable(entry.stream):
                return entry
            peer.open -= 1  # closed under us (the remote closed it, the connection died)
            self.stats.dropped += 1
            self._spawn(_close, entry.stream)
        return None

    async def _open(self, peer_id: str, peer: _Peer) -> _Stream:
        import trio

        offered: Sequence[str] = self.protocols
        if peer.single_conn is not None:
            if _connection_live(self.node, peer_id, peer.single_conn):
                offered = [p for p in self.protocols if p in self.single_protocols]
            else:  # a new connection: the peer may have been upgraded
                peer.single_conn = None
        stream = await self.node.open_stream(peer_id, offered)
        chosen = str(stream.get_protocol()) if hasattr(stream, "get_protocol") else offered[0]
        single = chosen in self.single_protocols
        reader = FrameReader(stream, budget=self.budget, peer=peer_id)
        entry = _Stream(stream, reader, single, trio.current_time())
        if single:
            peer.single_conn = entry.conn
        peer.open += 1
        self.stats.opened += 1
        return entry

    async def _exchange(self, entry: _Stream, payload: bytes) -> bytes | None:
        if entry.uses:
            self.stats.reused += 1
        entry.uses += 1
        await write_frame(entry.stream, payload)
        return await entry.reader.read_frame(self.max_frame)

    def _put_back(self, peer: _Peer, entry: _Stream) -> None:
        import trio

        entry.last_used = trio.current_time()
        peer.idle.append(entry)
        if not self._reaping:
            self._reaping = self._spawn(self._reap)

    async def _drop(self, peer: _Peer, entry: _Stream, *, reset: bool, failed: bool = True) -> None:
        """Forget a stream and close it (reset it when its state is unknown)."""
        import trio

        peer.open -= 1
        if failed:
            self.stats.dropped += 1
        with trio.CancelScope(shield=True), trio.move_on_after(_CLOSE_GRACE):
            if reset:
                await _reset(entry.stream)
            else:
                await _close(entry.stream)

    def _drop_idle_on(self, peer: _Peer, conn: Any) -> None:
        """Drop the idle streams that share a connection with a stream that just broke."""
        if conn is None:
            return
        keep: deque[_Stream] = deque()
        for entry in peer.idle:
            if entry.conn is conn and not _usable(entry.stream):
                peer.open -= 1
                self.stats.dropped += 1
                self._spawn(_reset, entry.stream)
            else:
                keep.append(entry)
        peer.idle = keep

    def _spawn(self, afn: Callable[..., Awaitable[None]], *args: Any) -> bool:
        """Start a background task; False when the node is stopping."""
        try:
            self.node.spawn(afn, *args)
        except NodeClosed:
            return False
        return True

    async def _reap(self) -> None:
        """Close streams unused for ``idle_timeout``; ends when no stream is idle."""
        import trio

        try:
            while True:
                now = trio.current_time()
                next_due = math.inf
                for peer_id, peer in list(self._peers.items()):
                    while peer.idle and now - peer.idle[0].last_used >= self.idle_timeout:
                        entry = peer.idle.popleft()  # the least recently used first
                        peer.open -= 1
                        self.stats.idle_closed += 1
                        await _close(entry.stream)
                    if peer.idle:
                        next_due = min(next_due, peer.idle[0].last_used + self.idle_timeout)
                    elif peer.open == 0 and peer.users == 0 and peer.single_conn is None:
                        self._peers.pop(peer_id, None)
                if next_due == math.inf:
                    return
                await trio.sleep(max(0.0, next_due - trio.current_time()))
        finally:
            self._reaping = False


def _retryable(exc: BaseException) -> bool:
    """A failure of the stream itself (not a reply the peer chose to send)."""
    if isinstance(exc, ConnectionLost):
        return True
    return isinstance(exc, ProtocolError) and exc.code in {"truncated", "eof"}


def _usable(stream: Any) -> bool:
    """False when py-libp2p already knows the stream or its connection is closed."""
    try:
        if getattr(stream, "is_closed", False):
            return False
        muxed = getattr(stream, "muxed_stream", None)
        if muxed is not None and any(
            getattr(muxed, name, False) for name in ("closed", "recv_closed", "reset_received")
        ):
            return False
        conn = getattr(stream, "muxed_conn", None)
        closed = getattr(conn, "is_closed", False)
        return not (closed() if callable(closed) else closed)
    except Exception:  # a py-libp2p internal changed: let the request find out
        return True


def _connection_live(node: Node, peer_id: str, muxed_conn: Any) -> bool:
    """Whether ``muxed_conn`` is still one of the node's live connections to ``peer_id``."""
    try:
        from libp2p.peer.id import ID

        conns = node.host.get_network().connections.get(ID.from_base58(peer_id), [])
        return any(
            getattr(c, "muxed_conn", None) is muxed_conn and not getattr(c, "is_closed", False)
            for c in conns
        )
    except Exception:
        return False


async def _close(stream: Any) -> None:
    try:
        await stream.close()
    except Exception as exc:  # the remote reset it, or the connection is gone
        log.debug("ignored while closing a stream: %r", exc)


async def _reset(stream: Any) -> None:
    try:
        await stream.reset()
    except Exception as exc:
        log.debug("ignored while resetting a stream: %r", exc)
