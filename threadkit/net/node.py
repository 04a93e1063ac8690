"""``Node``: a py-libp2p host on its own trio thread, callable from sync and asyncio code.

py-libp2p is trio-only, and a notebook kernel already runs an asyncio loop on its main
thread, so the host lives on one background daemon thread that runs ``trio.run``
(docs/design.md §3). Everything else talks to it through a small bridge:

- ``node.call(afn, *args, timeout=)`` blocks the calling thread until ``afn`` has run on
  the node's loop and returns its result (or re-raises its exception). On timeout the
  trio task is cancelled (each job runs in its own ``CancelScope``) and
  :class:`~threadkit.errors.Timeout` is raised.
- ``node.submit(afn, *args)`` returns a ``concurrent.futures.Future``; asyncio code awaits
  ``asyncio.wrap_future(fut)``. Cancelling the future cancels the trio task.
- ``node.spawn(afn, *args)`` starts a background task in the node's nursery; its
  exceptions are logged (logger ``threadkit.net.node``), never lost silently.

Code that already runs on the node's loop (stream handlers, spawned tasks, jobs)
awaits the async helpers directly: :meth:`Node.connect`, :meth:`Node.open_stream`,
:meth:`Node.publish`, … Calling a *blocking* method from there would deadlock the loop,
so it raises :class:`~threadkit.errors.WrongThread` instead.

py-libp2p 0.8.1 has bugs and traps this module works around (see
``docs/libp2p-notes.md``, which names the regression test of each):

- every inbound connection keeps a slot of the swarm's inbound limiter forever, and the
  default cap is 250: after 250 inbound connections the host refuses everyone. Fix:
  ``ConnectionConfig(max_connections=1_000_000)``, kept whatever connection limits
  (:class:`~threadkit.net.connmgr.ConnLimits`) the node is given.
- the connection pruner runs only when a new connection arrives, and skips connections
  still in their grace period, so a burst of connections outlives its grace period until
  the next newcomer: the node also runs the pruner on a timer, as go-libp2p's connmgr does.
- leaving ``host.run()`` does not close the TCP listener: ``stop()`` awaits
  ``host.close()`` inside ``run()``, so the port is free once ``stop()`` returns.
- every new connection through ``host.connect`` costs ≥250 ms (a happy-eyeballs delay
  waited out even on success), and ``host.connect`` dials only one TCP address from the
  peerstore — a stale one after the peer restarted on a new port — then blocks the peer
  for 60 s: :meth:`Node.connect` dials exactly the address given
  (``swarm.dial_addr``), reuses a live connection, and serialises dials per peer.
- GossipSub's default spam protection drops the node's *own* publishes beyond 10/s, each
  peer's outbound queue (32 RPCs) drops silently, and so does each subscription queue (32):
  spam protection is off, :meth:`Node.publish` waits while any peer queue holds more than
  16 RPCs, and each subscription is drained by its own task.
- the defaults offer SECIO and *plaintext*: only Noise is offered here; the muxer is Yamux.
- Yamux only logs a peer that sends beyond its receive window, and buffers what it sends:
  :class:`~threadkit.net.muxer.GuardedYamux` closes such a connection and bounds the
  streams and window growth of every connection.
- listeners use SO_REUSEPORT, so a second node on a taken port silently shares it:
  ``start()`` probes fixed TCP ports first and refuses taken ones.
- the ``libp2p`` logger has no handler (its import removes any), so its warnings reach a
  notebook's stderr through Python's last-resort handler: once libp2p is imported, its
  records are routed under ``threadkit.net.libp2p`` (:mod:`threadkit.net.logs`).

``import threadkit.net.node`` imports neither trio nor libp2p (0.6 s, 85 MB): they are
imported when a node starts.

This module is the facade and the dialing, streams and pubsub API; the pieces behind it:
:mod:`threadkit.net._loop` (the trio thread: its state, start-up, shutdown and submitted
jobs), :mod:`threadkit.net._libp2p_host` (building the py-libp2p host, pubsub and the
periodic trim; parsing listen addresses and peer ids) and :mod:`threadkit.net._topics`
(one draining task per subscribed topic).

Examples
--------
>>> from threadkit.net.node import Node
>>> async def hello(stream, remote_peer_id):  # doctest: +SKIP
...     await stream.write(b"hi " + remote_peer_id.encode())
>>> with Node(b"\\x01" * 32) as node:  # doctest: +SKIP
...     node.set_handler("/hello/1.0.0", hello)
...     print(node.addrs[0])
/ip4/127.0.0.1/tcp/40123/p2p/12D3KooW...
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar, TypeVarTuple

from threadkit.errors import (
    InvalidAddress,
    InvalidInput,
    InvalidKey,
    NetworkError,
    NodeClosed,
    PeerUnreachable,
    ProtocolError,
    Timeout,
    WrongThread,
)
from threadkit.net._libp2p_host import (
    check_listen_addrs,
    describe,
    live_connections,
    parse_peer_id,
    with_peer,
)
from threadkit.net._loop import STOP_GRACE, Handler, Job, Runtime, finalize, fn_name, wrap_handler
from threadkit.net._topics import (
    SUBSCRIPTION_BUFFER,
    SubscriptionCallback,
    Topic,
    run_topic,
    topic_peers,
    topic_peers_async,
)
from threadkit.net.addrs import is_wildcard
from threadkit.net.connmgr import MAX_CONNECTIONS, ConnLimits

__all__ = [
    "DEFAULT_LISTEN",
    "MAX_CONNECTIONS",
    "PUBLISH_QUEUE_HIGH_WATER",
    "SUBSCRIPTION_BUFFER",
    "Handler",
    "Node",
    "SubscriptionCallback",
]

log = logging.getLogger(__name__)

T = TypeVar("T")
Ts = TypeVarTuple("Ts")

DEFAULT_LISTEN: tuple[str, ...] = ("/ip4/127.0.0.1/tcp/0",)
"""Loopback on a free port. Listen on ``/ip4/0.0.0.0/tcp/0`` to accept other machines."""

PUBLISH_QUEUE_HIGH_WATER = 16
"""``publish`` waits while any peer's outbound pubsub queue (32 slots) holds more RPCs."""

PUBLISH_MAX_WAIT = 5.0
"""Seconds ``publish`` waits for a stuck peer queue before it publishes anyway."""

PEERSTORE_ADDR_TTL = 600
"""Seconds the peerstore keeps an address this node dialed successfully."""


class Node:
    """A libp2p host with a stable identity, run on its own trio thread.

    Parameters
    ----------
    identity_seed : bytes
        The 32-byte Ed25519 seed (``threadkit.Identity.seed``). The peer id is
        ``Identity(identity_seed).public.peer_id`` and stays the same across restarts.
    listen : sequence of str
        Multiaddrs to listen on (default: loopback, a free TCP port).
    enable_pubsub : bool
        Run GossipSub, for :meth:`publish` and :meth:`subscribe`.
    conn_limits : ConnLimits, optional
        The connection manager's watermarks and grace period
        (:class:`threadkit.net.connmgr.ConnLimits`; default threadsd's 100/400/20 s).
    announce : sequence of str, optional
        Addresses to advertise instead of the listen addresses (a host behind a port
        forward); without them, wildcard binds are advertised as the host's interface
        addresses, loopback last (:mod:`threadkit.net.addrs`).
    relays : sequence of str, optional
        Circuit relays (``…/p2p/<relay id>``) to keep a reservation on; the node then
        advertises ``<relay>/p2p-circuit/p2p/<its id>`` (after any ``announce``
        addresses) instead of its binds, and upgrades relayed connections it accepts
        to direct ones by hole punching (DCUtR) where the NATs allow
        (:mod:`threadkit.net.relay`).
    relay_service : bool
        Serve circuit relay v2 for other peers.

    Raises
    ------
    InvalidKey
        ``identity_seed`` is not 32 bytes.
    InvalidAddress
        ``listen`` is empty or a single string; an ``announce`` address is malformed,
        unspecified (``0.0.0.0``), on port 0 or names another peer.
    InvalidInput
        ``conn_limits`` is not a ``ConnLimits``.

    Notes
    -----
    Security is Noise only (no TLS, SECIO or plaintext offered) and the muxer is Yamux.
    Above ``conn_limits.high_water`` connections, idle ones past their grace period are
    closed down to ``low_water`` — when a new connection arrives (py-libp2p) and every
    ``conn_limits.trim_interval`` seconds (this class, as go-libp2p does).
    A node may be started again after ``stop()``; stream handlers are kept, pubsub
    subscriptions are not. ``weakref.finalize`` stops a forgotten node when it is
    garbage-collected or when the interpreter exits.

    Examples
    --------
    >>> from threadkit.core.identity import Identity
    >>> ident = Identity.generate()
    >>> node = Node(ident.seed)
    >>> node.peer_id == ident.public.peer_id
    True
    >>> node.start()  # doctest: +SKIP
    >>> node.call(node.connect, other_addr, timeout=10)  # doctest: +SKIP
    '12D3KooW...'
    >>> node.stop()  # doctest: +SKIP
    """

    def __init__(
        self,
        identity_seed: bytes,
        listen: Sequence[str] = DEFAULT_LISTEN,
        *,
        enable_pubsub: bool = False,
        conn_limits: ConnLimits | None = None,
        announce: Sequence[str] | None = None,
        relays: Sequence[str] | None = None,
        relay_service: bool = False,
    ) -> None:
        from threadkit.core.identity import Identity
        from threadkit.net.addrs import parse_announce
        from threadkit.net.relay import parse_relays

        if not isinstance(identity_seed, bytes | bytearray) or len(identity_seed) != 32:
            raise InvalidKey("identity_seed must be the 32-byte Ed25519 seed of an Identity")
        if isinstance(listen, str) or not listen:
            raise InvalidAddress("listen must be a non-empty list of multiaddr strings")
        if conn_limits is None:
            conn_limits = ConnLimits()
        elif not isinstance(conn_limits, ConnLimits):
            raise InvalidInput(
                f"conn_limits must be a threadkit.net.connmgr.ConnLimits, got {conn_limits!r}"
            )
        seed = bytes(identity_seed)
        peer_id = Identity(seed).public.peer_id
        self._rt = Runtime(
            seed,
            peer_id,
            tuple(str(a) for a in listen),
            enable_pubsub,
            conn_limits,
            parse_announce(announce, peer_id),
            parse_relays(relays, peer_id),
            bool(relay_service),
        )
        self._rt.connect = weakref.WeakMethod(self.connect)
        self._finalizer = weakref.finalize(self, finalize, self._rt)

    def __repr__(self) -> str:
        state = "running" if self._rt.running() else "stopped"
        return f"Node({self.peer_id}, {state})"

    # ----------------------------------------------------------------- lifecycle

    def start(self, timeout: float = 10.0) -> Node:
        """Start the host; returns once it listens (on a no-op when already running).

        Raises
        ------
        Timeout
            It was not listening within ``timeout`` seconds (it is stopped again).
        InvalidAddress
            A listen address is not a valid multiaddr.
        NetworkError
            The host failed to start (e.g. the port is taken).
        """
        rt = self._rt
        with rt.lock:
            if rt.thread is not None:
                if rt.running():
                    return self
                raise NodeClosed(f"node {self.peer_id} is stopping; call stop() first")
            check_listen_addrs(rt.listen)
            thread = threading.Thread(
                target=rt.thread_main, name=f"threadkit-net-{self.peer_id[-8:]}", daemon=True
            )
            rt.thread = thread
            thread.start()
        if not rt.ready.wait(timeout):
            rt.request_stop()
            thread.join(STOP_GRACE)
            if not thread.is_alive():
                rt._reset()
            raise Timeout(f"node {self.peer_id} did not start listening within {timeout} s")
        if rt.start_error is not None or not rt.running():
            error = rt.start_error
            thread.join(STOP_GRACE)
            rt._reset()
            detail = describe(error) if error is not None else "its loop ended"
            raise NetworkError(f"node {self.peer_id} failed to start: {detail}") from error
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Close the host, end the thread, free the ports (idempotent).

        Raises
        ------
        Timeout
            The thread did not end within ``timeout`` seconds.
        WrongThread
            Called from the node's own trio thread.
        """
        self._rt.shutdown(timeout)

    def __enter__(self) -> Node:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        """True between a successful ``start()`` and ``stop()``."""
        return self._rt.running()

    @property
    def peer_id(self) -> str:
        """The base58 peer id (``12D3KooW…``), known before ``start()``."""
        return self._rt.peer_id

    @property
    def addrs(self) -> list[str]:
        """The addresses others dial, ending ``/p2p/<peer id>`` (empty when stopped).

        The ``announce`` addresses when given; else the listen addresses with their real
        ports, wildcard binds expanded to the host's interface addresses, loopback last.
        """
        return list(self._rt.addrs) if self._rt.running() else []

    @property
    def relays(self) -> dict[str, dict[str, Any]]:
        """Each relay given: ``reserved`` (a slot is held now) and ``error`` (the last failure)."""
        client = self._rt.relay
        return {
            relay: {
                "reserved": client is not None and relay in client.reserved,
                "error": None if client is None else client.errors.get(relay),
            }
            for relay in self._rt.relays
        }

    @property
    def listen_addrs(self) -> list[str]:
        """The addresses bound, with their real ports (``0.0.0.0`` kept; empty when stopped)."""
        return list(self._rt.bound) if self._rt.running() else []

    @property
    def host(self) -> Any:
        """The py-libp2p host, for use on the node's loop only (None when stopped)."""
        return self._rt.host if self._rt.running() else None

    @property
    def pubsub_enabled(self) -> bool:
        """Whether the node runs GossipSub."""
        return self._rt.enable_pubsub

    @property
    def conn_limits(self) -> ConnLimits:
        """The connection manager's watermarks and grace period."""
        return self._rt.conn_limits

    # ------------------------------------------------------------- sync bridge

    def submit(
        self, async_fn: Callable[[*Ts], Awaitable[T]], *args: *Ts
    ) -> concurrent.futures.Future[T]:
        """Run ``async_fn(*args)`` on the node's loop; returns a future of its result.

        Callable from any thread, including the node's own (the future is then not to be
        waited on there). asyncio code awaits ``asyncio.wrap_future(future)``; cancelling
        the future (or the asyncio task awaiting it) cancels the trio task.

        Raises
        ------
        NodeClosed
            The node is not running.
        """
        return self._submit(async_fn, args).future

    def call(
        self,
        async_fn: Callable[[*Ts], Awaitable[T]],
        *args: *Ts,
        timeout: float,
    ) -> T:
        """Run ``async_fn(*args)`` on the node's loop and wait for its result.

        Parameters
        ----------
        async_fn : async callable
            Runs on the node's trio loop.
        *args
            Its positional arguments.
        timeout : float
            Seconds to wait. On timeout the trio task is cancelled.

        Returns
        -------
        object
            What ``async_fn`` returned; its exception is re-raised here.

        Raises
        ------
        Timeout
            ``async_fn`` did not finish in time; it has been cancelled.
        WrongThread
            Called from the node's own trio thread (it would deadlock).
        NodeClosed
            The node is not running, or stopped during the call.
        """
        if self._rt.on_trio_thread():
            raise WrongThread(
                f"Node.call({fn_name(async_fn)}) was made from the node's own trio thread, "
                "where blocking deadlocks the loop: `await` the function instead"
            )
        job = self._submit(async_fn, args)
        future = job.future
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            if not future.cancel():  # finished just now
                return future.result(0)
            job.done.wait(STOP_GRACE)  # let the cancellation land before reporting it
            raise Timeout(
                f"{fn_name(async_fn)} did not finish within {timeout} s and was cancelled"
            ) from None
        except concurrent.futures.CancelledError:
            raise Timeout(f"{fn_name(async_fn)} was cancelled") from None
        except BaseException:  # KeyboardInterrupt (a kernel interrupt) cancels the task too
            future.cancel()
            raise

    def spawn(self, async_fn: Callable[[*Ts], Awaitable[object]], *args: *Ts) -> None:
        """Start ``async_fn(*args)`` as a background task in the node's nursery.

        Callable from any thread. The task is cancelled when the node stops. An
        exception it raises is logged (``threadkit.net.node``, ERROR, with traceback).

        Raises
        ------
        NodeClosed
            The node is not running.
        """
        rt = self._rt
        name = fn_name(async_fn)

        async def runner() -> None:
            try:
                await async_fn(*args)
            except Exception as exc:
                level = logging.DEBUG if rt.stopping else logging.ERROR
                log.log(level, "background task %s failed", name, exc_info=exc)

        def refused() -> None:
            log.warning("background task %s not started: node %s is stopping", name, rt.peer_id)

        rt.schedule(runner, refused)

    def spawn_threadsafe(self, async_fn: Callable[[*Ts], Awaitable[object]], *args: *Ts) -> None:
        """Same as :meth:`spawn` (which is already callable from any thread)."""
        self.spawn(async_fn, *args)

    def _submit(self, async_fn: Callable[[*Ts], Awaitable[T]], args: tuple[*Ts]) -> Job[T]:
        import trio

        rt = self._rt
        job: Job[T] = Job(trio.CancelScope())
        name = fn_name(async_fn)

        async def runner() -> None:
            try:
                with job.scope:
                    job.set_result(await async_fn(*args))
                if job.scope.cancelled_caught:  # cancelled through its future
                    job.set_exception(Timeout(f"{name} was cancelled"))
            except trio.Cancelled:  # the node is stopping
                job.set_exception(NodeClosed(f"node {rt.peer_id} stopped during {name}"))
                raise
            except BaseException as exc:
                job.set_exception(exc)
                if not isinstance(exc, Exception):
                    raise
            finally:
                job.done.set()

        def refused() -> None:
            job.set_exception(NodeClosed(f"node {rt.peer_id} is stopping"))
            job.done.set()

        def on_done(future: concurrent.futures.Future[Any]) -> None:
            if future.cancelled() and not job.done.is_set():
                token = rt.token
                if rt.on_trio_thread():
                    job.scope.cancel()
                elif token is not None:
                    with contextlib.suppress(trio.RunFinishedError):
                        token.run_sync_soon(job.scope.cancel)

        rt.schedule(runner, refused)
        job.future.add_done_callback(on_done)
        return job

    # ------------------------------------------------- async helpers (node's loop)

    def _loop_side(self) -> Runtime:
        rt = self._rt
        if not rt.on_trio_thread():
            raise WrongThread(
                "the node's async API runs on its own trio thread: use "
                "node.call(node.<method>, ..., timeout=...) or node.submit(...) from elsewhere"
            )
        if rt.host is None or rt.stopping:
            raise NodeClosed(f"node {rt.peer_id} is stopping")
        return rt

    async def connect(self, addr: str) -> str:
        """Make sure there is a connection to the peer at ``addr`` (``…/p2p/<id>``).

        Reuses a live connection, and dials at most once at a time per peer. The dial goes
        to exactly ``addr``: py-libp2p's own ``host.connect`` would dial just one TCP address
        from the peerstore (a stale one after the peer restarted on a new port) and wait out
        a 250 ms happy-eyeballs delay even on success. Returns the peer id.

        Raises
        ------
        InvalidAddress
            ``addr`` is not a multiaddr ending in ``/p2p/<peer id>``, or is this node's.
        PeerUnreachable
            The dial failed (nobody there, or a different peer id answered).
        """
        from libp2p.peer.peerinfo import info_from_p2p_addr
        from multiaddr import Multiaddr

        rt = self._loop_side()
        try:
            info = info_from_p2p_addr(Multiaddr(str(addr)))
        except Exception as exc:
            raise InvalidAddress(f"not a multiaddr ending in /p2p/<peer id>: {addr!r}") from exc
        await self._dial(rt, info.peer_id, info.addrs, str(addr))
        return str(info.peer_id)

    async def connect_peer(self, peer_id: str, addrs: Sequence[str] = ()) -> None:
        """Make sure there is a connection to ``peer_id``: reuse one, else dial ``addrs``.

        The addresses are tried in order (with or without the ``/p2p/<peer id>`` suffix);
        with none, py-libp2p dials what its peerstore knows (e.g. from identify).

        Raises
        ------
        PeerUnreachable
            No connection could be made.
        """
        from multiaddr import Multiaddr

        rt = self._loop_side()
        pid = parse_peer_id(peer_id)
        suffix = f"/p2p/{peer_id}"
        parsed = []
        for addr in addrs:
            try:
                maddr = Multiaddr(addr)
                if str(maddr).endswith(suffix):
                    maddr = maddr.decapsulate(Multiaddr(suffix))
                parsed.append(maddr)
            except Exception as exc:
                log.debug("skipping bad address %r for %s: %r", addr, peer_id, exc)
        await self._dial(rt, pid, parsed, peer_id)

    async def _dial(self, rt: Runtime, pid: Any, maddrs: Sequence[Any], what: str) -> None:
        import trio
        from libp2p.peer.peerinfo import PeerInfo

        host = rt.host
        if pid == host.get_id():
            raise InvalidAddress(f"{what} is this node's own address")
        if live_connections(host, pid):
            return
        lock = rt.dial_locks.setdefault(str(pid), trio.Lock())
        async with lock:
            if live_connections(host, pid):
                return
            if not maddrs:
                try:
                    await host.connect(PeerInfo(pid, []))
                except Exception as exc:
                    raise PeerUnreachable(f"could not connect to {what}: {describe(exc)}") from exc
                return
            network = host.get_network()
            failures = []
            for maddr in maddrs:
                if is_wildcard(str(maddr)):  # it would reach a port on this very host
                    failures.append(f"{maddr}: an unspecified address is not dialable")
                    continue
                try:
                    if "/p2p-circuit" in str(maddr):
                        conn = await _relay_client(rt).dial(with_peer(maddr, pid))
                    else:
                        conn = await network.dial_addr(maddr, pid)
                except Exception as exc:
                    failures.append(f"{maddr}: {describe(exc)}")
                    continue
                started = getattr(conn, "event_started", None)
                if started is not None:
                    await started.wait()
                host.get_peerstore().add_addrs(pid, [maddr], PEERSTORE_ADDR_TTL)
                return
            raise PeerUnreachable(f"could not connect to {what}: {'; '.join(failures)}")

    async def disconnect(self, peer_id: str) -> None:
        """Close every connection to ``peer_id`` (py-libp2p takes ~200 ms)."""
        rt = self._loop_side()
        await rt.host.disconnect(parse_peer_id(peer_id))

    async def open_stream(self, peer_id: str, protocol_id: str | Sequence[str]) -> Any:
        """Open a stream to ``peer_id`` speaking ``protocol_id`` (on a live connection if any).

        Parameters
        ----------
        peer_id : str
            The remote peer.
        protocol_id : str or sequence of str
            The protocol, or protocols in order of preference: multistream-select offers
            them one by one (a round trip each) and the first the peer accepts is used;
            ``stream.get_protocol()`` tells which.

        Returns
        -------
        libp2p stream
            ``await s.read(n)``, ``await s.write(b)``, ``await s.close()`` (half-close),
            ``await s.reset()``; see :mod:`threadkit.net.framing` for messages.

        Raises
        ------
        ProtocolError
            The peer speaks none of the protocols (``code="unsupported_protocol"``).
        PeerUnreachable
            No connection, or the stream could not be opened.
        """
        from libp2p.custom_types import TProtocol

        rt = self._loop_side()
        pid = parse_peer_id(peer_id)
        wanted = [protocol_id] if isinstance(protocol_id, str) else list(protocol_id)
        what = " or ".join(wanted)
        try:
            return await rt.host.new_stream(pid, [TProtocol(p) for p in wanted])
        except Exception as exc:
            cause = exc.__cause__
            if cause is not None and "not supported" in str(cause):
                raise ProtocolError(
                    f"{peer_id} does not speak {what}", code="unsupported_protocol"
                ) from exc
            raise PeerUnreachable(
                f"could not open a {what} stream to {peer_id}: {describe(exc)}"
            ) from exc

    def set_handler(self, protocol_id: str, handler: Handler) -> None:
        """Serve ``protocol_id``: each inbound stream runs ``await handler(stream, remote_peer)``.

        May be called before ``start()`` (kept across restarts) or while running, from any
        thread. The stream is closed when the handler returns, reset when it raises (the
        exception is logged).
        """
        rt = self._rt
        rt.handlers[protocol_id] = handler
        host = rt.host
        if host is not None:
            from libp2p.custom_types import TProtocol

            wrapped = wrap_handler(rt, protocol_id, handler)
            if rt.on_trio_thread():
                host.set_stream_handler(TProtocol(protocol_id), wrapped)
            else:
                self.call(_set_handler_async, host, TProtocol(protocol_id), wrapped, timeout=5)

    def connected_peers(self) -> list[str]:
        """Peer ids with a live connection (any thread; empty when stopped)."""
        rt = self._rt
        if rt.on_trio_thread() or not rt.running():
            return _connected(rt.host)
        return self.call(_connected_async, rt.host, timeout=5)

    # ------------------------------------------------------------------ pubsub

    def _pubsub(self) -> tuple[Runtime, Any]:
        rt = self._loop_side()
        if rt.pubsub is None:
            raise NodeClosed(f"node {rt.peer_id} runs without pubsub (enable_pubsub=False)")
        return rt, rt.pubsub

    async def publish(self, topic: str, data: bytes) -> None:
        """Publish ``data`` on ``topic`` (GossipSub, signed), paced so nothing is dropped.

        Publishes are serialised, and each waits while any peer's outbound queue holds more
        than :data:`PUBLISH_QUEUE_HIGH_WATER` RPCs (py-libp2p drops silently beyond 32).
        Delivery is still best-effort: a peer that does not drain for
        :data:`PUBLISH_MAX_WAIT` seconds is not waited for.
        """
        import trio

        rt, pubsub = self._pubsub()
        async with rt.publish_lock:
            deadline = time.monotonic() + PUBLISH_MAX_WAIT
            while any(len(q) > PUBLISH_QUEUE_HIGH_WATER for q in pubsub.peer_queues.values()):
                if time.monotonic() > deadline:
                    log.warning("publishing on %s although a peer queue stays full", topic)
                    break
                await trio.sleep(0.001)
            await pubsub.publish(topic, bytes(data))

    async def subscribe(self, topic: str, callback: SubscriptionCallback) -> None:
        """Call ``callback(data, from_peer_id)`` for each message on ``topic``.

        The callback runs on the node's loop (sync or async). The node's own publishes on
        a topic it subscribes to come back too (``from_peer_id == node.peer_id``). Each
        topic is drained by its own task into a buffer of :data:`SUBSCRIPTION_BUFFER`
        messages, so a slow callback does not make py-libp2p drop (32-message queue).
        """
        import trio

        rt, pubsub = self._pubsub()
        existing = rt.topics.get(topic)
        if existing is not None:
            existing.callbacks.append(callback)
            return
        subscription = await pubsub.subscribe(topic)
        send, receive = trio.open_memory_channel[tuple[bytes, str]](SUBSCRIPTION_BUFFER)
        entry = Topic(trio.CancelScope(), send)
        entry.callbacks.append(callback)
        rt.topics[topic] = entry
        rt.nursery.start_soon(run_topic, rt, entry, topic, subscription, receive)

    async def unsubscribe(self, topic: str) -> None:
        """Stop receiving ``topic`` (every callback on it)."""
        rt, pubsub = self._pubsub()
        entry = rt.topics.pop(topic, None)
        if entry is not None:
            entry.scope.cancel()
            await pubsub.unsubscribe(topic)

    def topic_peers(self, topic: str) -> list[str]:
        """Peers known to subscribe to ``topic`` (any thread; empty when stopped)."""
        rt = self._rt
        if rt.on_trio_thread() or not rt.running():
            return topic_peers(rt.pubsub, topic)
        return self.call(topic_peers_async, rt.pubsub, topic, timeout=5)


async def _set_handler_async(host: Any, protocol_id: Any, handler: Any) -> None:
    host.set_stream_handler(protocol_id, handler)


def _connected(host: Any) -> list[str]:
    if host is None:
        return []
    return [str(p) for p in host.get_connected_peers()]


async def _connected_async(host: Any) -> list[str]:
    return _connected(host)


def _relay_client(rt: Runtime) -> Any:
    """The node's relay client; a dial-only one on a node that neither serves nor uses relays."""
    if rt.relay is None:
        from threadkit.net.relay import RelayClient

        rt.relay = RelayClient(rt.host, (), rt.peer_id)
    return rt.relay
