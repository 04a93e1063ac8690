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

``import threadkit.net.node`` imports neither trio nor libp2p (0.5 s, 85 MB): they are
imported when a node starts.

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
import inspect
import logging
import socket
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, TypeVar, TypeVarTuple

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
from threadkit.net.connmgr import MAX_CONNECTIONS, ConnLimits

__all__ = [
    "DEFAULT_LISTEN",
    "MAX_CONNECTIONS",
    "PUBLISH_QUEUE_HIGH_WATER",
    "Handler",
    "Node",
    "SubscriptionCallback",
]

log = logging.getLogger(__name__)

T = TypeVar("T")
Ts = TypeVarTuple("Ts")

Handler = Callable[[Any, str], Awaitable[None]]
"""A stream handler: ``async handler(stream, remote_peer_id)``."""

SubscriptionCallback = Callable[[bytes, str], Awaitable[None] | None]
"""A pubsub callback: ``callback(data, from_peer_id)``, sync or async, run on the node's loop."""

DEFAULT_LISTEN: tuple[str, ...] = ("/ip4/127.0.0.1/tcp/0",)
"""Loopback on a free port. Listen on ``/ip4/0.0.0.0/tcp/0`` to accept other machines."""

PUBLISH_QUEUE_HIGH_WATER = 16
"""``publish`` waits while any peer's outbound pubsub queue (32 slots) holds more RPCs."""

PUBLISH_MAX_WAIT = 5.0
"""Seconds ``publish`` waits for a stuck peer queue before it publishes anyway."""

PEERSTORE_ADDR_TTL = 600
"""Seconds the peerstore keeps an address this node dialed successfully."""

SUBSCRIPTION_BUFFER = 10_000
"""Messages held per topic while its callbacks are busy; beyond that they are dropped (logged)."""

_STOP_GRACE = 1.0  # seconds call() waits for a timed-out task to finish cancelling


def _describe(exc: BaseException) -> str:
    """A one-line description, looking inside single-exception groups."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return f"{type(exc).__name__}: {exc}"


def _fn_name(fn: Callable[..., Any]) -> str:
    return getattr(fn, "__qualname__", None) or repr(fn)


class _Job(Generic[T]):
    """One submitted call: its future, its cancel scope, and an event set when it ends."""

    __slots__ = ("done", "future", "scope")

    def __init__(self, scope: Any) -> None:
        self.future: concurrent.futures.Future[T] = concurrent.futures.Future()
        self.scope = scope
        self.done = threading.Event()

    def set_result(self, value: T) -> None:
        try:
            if not self.future.cancelled():
                self.future.set_result(value)
        except concurrent.futures.InvalidStateError:  # cancelled meanwhile by another thread
            pass

    def set_exception(self, exc: BaseException) -> None:
        try:
            if not self.future.cancelled():
                self.future.set_exception(exc)
        except concurrent.futures.InvalidStateError:
            pass


class _Runtime:
    """What the trio thread owns. The ``Node`` facade holds one; the thread never holds the Node.

    That way an unreferenced, still running ``Node`` can be garbage-collected, and its
    ``weakref.finalize`` stops the thread.
    """

    def __init__(
        self,
        seed: bytes,
        peer_id: str,
        listen: tuple[str, ...],
        enable_pubsub: bool,
        conn_limits: ConnLimits,
        announce: tuple[str, ...] = (),
        relays: tuple[str, ...] = (),
        relay_service: bool = False,
    ) -> None:
        self.relays = relays
        self.relay_service = relay_service
        self.connect: Any = None  # a weak reference to Node.connect
        self.seed = seed
        self.peer_id = peer_id
        self.listen = listen
        self.announce = announce
        self.enable_pubsub = enable_pubsub
        self.conn_limits = conn_limits
        self.handlers: dict[str, Handler] = {}
        self.lock = threading.Lock()  # start/stop
        self._reset()

    def _reset(self) -> None:
        self.relay: Any = None  # threadkit.net.relay.RelayClient, once started
        self.thread: threading.Thread | None = None
        self.thread_ident: int | None = None
        self.ready = threading.Event()
        self.start_error: BaseException | None = None
        self.stop_requested = False
        self.stopping = False
        self.token: Any = None  # trio.lowlevel.TrioToken
        self.stop_event: Any = None  # trio.Event
        self.nursery: Any = None  # trio.Nursery for jobs and spawned tasks
        self.host: Any = None  # libp2p BasicHost
        self.pubsub: Any = None  # libp2p Pubsub
        self.addrs: list[str] = []
        self.bound: list[str] = []
        self.dial_locks: dict[str, Any] = {}  # peer id -> trio.Lock
        self.publish_lock: Any = None  # trio.Lock
        self.topics: dict[str, _Topic] = {}

    # ------------------------------------------------------------------ thread side

    def thread_main(self) -> None:
        import trio

        try:
            trio.run(self._main)
        except BaseException as exc:  # reported to start(), or logged
            if not self.ready.is_set():
                self.start_error = exc
            else:
                log.error("node %s: event loop crashed: %s", self.peer_id, _describe(exc))
        finally:
            self.nursery = None
            self.ready.set()

    async def _main(self) -> None:
        import trio
        from multiaddr import Multiaddr

        from threadkit.net.logs import route_libp2p_logs

        self.thread_ident = threading.get_ident()
        self.stop_event = trio.Event()
        self.publish_lock = trio.Lock()
        self.token = trio.lowlevel.current_trio_token()
        host = _new_host(self.seed, self.listen, self.conn_limits)
        route_libp2p_logs()  # after libp2p's import, which resets its logger
        self.host = host
        if str(host.get_id()) != self.peer_id:  # pragma: no cover - a key-format change
            raise NetworkError(f"libp2p derived peer id {host.get_id()}, expected {self.peer_id}")
        for protocol_id, handler in self.handlers.items():
            host.set_stream_handler(protocol_id, _wrap_handler(self, protocol_id, handler))
        try:
            async with host.run([Multiaddr(a) for a in self.listen]):
                await self._serve(host)
        finally:
            with trio.CancelScope(shield=True):
                await host.close()  # idempotent; covers failures before _serve's close

    async def _serve(self, host: Any) -> None:
        import trio
        from libp2p.tools.anyio_service import background_trio_service

        async with trio.open_nursery() as services:
            services.start_soon(_trim_periodically, host, self.conn_limits, self.peer_id)
            if self.enable_pubsub:
                pubsub, router = _new_pubsub(host)
                services.start_soon(_run_service, background_trio_service, router)
                services.start_soon(_run_service, background_trio_service, pubsub)
                with trio.fail_after(10):
                    await pubsub.wait_until_ready()
                self.pubsub = pubsub
            async with trio.open_nursery() as nursery:
                self.nursery = nursery
                self.bound = [str(a) for a in host.get_transport_addrs()]
                self.addrs = _advertised(self.bound, self.announce, self.peer_id, self.relays)
                if self.relays or self.relay_service:
                    from threadkit.net.relay import start_relaying

                    self.relay = await start_relaying(
                        host,
                        nursery,
                        serve=self.relay_service,
                        relays=self.relays,
                        peer_id=self.peer_id,
                        connect=self.connect(),
                    )
                self.ready.set()
                if not self.stop_requested:
                    await self.stop_event.wait()
                # the shutdown order the notes prescribe: stop asked, then the host is
                # closed inside run() (else its TCP listener outlives run()), then the
                # tasks are cancelled, then the caller joins the thread
                self.stopping = True
                await host.close()
                nursery.cancel_scope.cancel()
            services.cancel_scope.cancel()

    # ------------------------------------------------------------------ caller side

    def on_trio_thread(self) -> bool:
        return self.thread_ident is not None and threading.get_ident() == self.thread_ident

    def running(self) -> bool:
        return self.nursery is not None and not self.stopping and not self.stop_requested

    def request_stop(self) -> None:
        """Ask the loop to stop (any thread, any time, idempotent)."""
        import trio

        self.stop_requested = True
        token, event = self.token, self.stop_event
        if token is not None and event is not None:
            with contextlib.suppress(trio.RunFinishedError):
                token.run_sync_soon(event.set)

    def shutdown(self, timeout: float) -> None:
        """Stop the loop and join the thread; raises Timeout if it does not end in time."""
        with self.lock:
            thread = self.thread
            if thread is None:
                return
            if self.on_trio_thread():
                raise WrongThread(
                    "Node.stop() was called from the node's own trio thread, where it would "
                    "deadlock; call it from another thread"
                )
            self.request_stop()
            thread.join(timeout)
            if thread.is_alive():
                raise Timeout(f"node {self.peer_id} did not stop within {timeout} s")
            self._reset()

    def schedule(
        self, job_runner: Callable[[], Awaitable[None]], on_refused: Callable[[], None]
    ) -> None:
        """Start ``job_runner`` in the node's nursery, from any thread."""
        import trio

        token, nursery = self.token, self.nursery
        if token is None or nursery is None or not self.running():
            raise NodeClosed(f"node {self.peer_id} is not running (start() it first)")

        def start() -> None:
            # runs on the trio thread: an exception here would crash the loop
            try:
                nursery.start_soon(job_runner)
            except RuntimeError:  # the nursery is closing: the node is stopping
                on_refused()

        if self.on_trio_thread():
            start()
            return
        try:
            token.run_sync_soon(start)
        except trio.RunFinishedError:
            raise NodeClosed(f"node {self.peer_id} has stopped") from None


def _advertised(
    bound: list[str], announce: tuple[str, ...], peer_id: str, relays: tuple[str, ...] = ()
) -> list[str]:
    """What the node advertises: ``announce`` if given, else its binds expanded.

    With relays, their circuit addresses, after the ``announce`` ones, and no bind: a peer
    that needs a relay is behind a NAT, where no bind is dialable from outside.
    """
    if relays:
        circuits = [f"{relay}/p2p-circuit/p2p/{peer_id}" for relay in relays]
        return [f"{a}/p2p/{peer_id}" for a in announce] + circuits
    from threadkit.net.addrs import expand_addrs

    chosen = list(announce) if announce else expand_addrs(bound)
    return [f"{a}/p2p/{peer_id}" for a in chosen]


async def _run_service(background: Any, service: Any) -> None:
    import trio

    async with background(service):
        await trio.sleep_forever()


async def _trim_periodically(host: Any, limits: ConnLimits, peer_id: str) -> None:
    """Run py-libp2p's connection pruner every ``limits.trim_interval`` s above high water.

    py-libp2p 0.8.1 runs its pruner only when a new connection arrives, and skips every
    connection still in its grace period: connections that were young at that moment
    stay open, however many, until the next newcomer. go-libp2p's connmgr (threadsd's)
    also trims on a timer; this task does the same. The pruner keeps its own rules:
    down to ``low_water``, at most 20 closes a round, never a connection with an open
    stream, a protected peer's, or one to a peer with a positive tag value.
    """
    import trio

    swarm = host.get_network()
    # Swarm._prune_in_background is the pruner behind py-libp2p's own (connection-time)
    # trigger, guarded against running twice at once; fall back to the public entry point
    prune = getattr(swarm, "_prune_in_background", None)
    if prune is None:  # pragma: no cover - another py-libp2p version
        prune = swarm.connection_pruner.maybe_prune_connections
    while True:
        await trio.sleep(limits.trim_interval)
        try:
            if len(swarm.get_connections()) > limits.high_water:
                await prune()
        except Exception as exc:  # never let trimming take the node's loop down
            log.warning("node %s: connection trim failed: %s", peer_id, _describe(exc))


def _new_host(seed: bytes, listen: Sequence[str], limits: ConnLimits | None = None) -> Any:
    """A BasicHost: the seed's Ed25519 key, Noise only, guarded Yamux only, the inbound cap lifted.

    ``limits`` (default: threadsd's 100/400/20 s) become the swarm's watermarks and grace
    period; ``max_connections`` stays :data:`MAX_CONNECTIONS` whatever they are, and
    ``min_connections`` (py-libp2p's own floor, which must not exceed the low watermark)
    is py-libp2p's 50 or the low watermark if that is lower.
    """
    from libp2p import new_host
    from libp2p.crypto.ed25519 import create_new_key_pair
    from libp2p.crypto.x25519 import create_new_key_pair as create_x25519_key_pair
    from libp2p.custom_types import TProtocol
    from libp2p.network.config import ConnectionConfig
    from libp2p.security.noise.transport import PROTOCOL_ID as NOISE_PROTOCOL_ID
    from libp2p.security.noise.transport import Transport as NoiseTransport
    from libp2p.stream_muxer.yamux.yamux import PROTOCOL_ID as YAMUX_PROTOCOL_ID
    from libp2p.stream_muxer.yamux.yamux import Yamux
    from multiaddr import Multiaddr

    from threadkit.net.muxer import install

    key_pair = create_new_key_pair(seed)
    noise = NoiseTransport(key_pair, noise_privkey=create_x25519_key_pair().private_key)
    host = new_host(
        key_pair=key_pair,
        sec_opt={TProtocol(NOISE_PROTOCOL_ID): noise},
        muxer_opt={TProtocol(YAMUX_PROTOCOL_ID): Yamux},
        listen_addrs=[Multiaddr(a) for a in listen],
        connection_config=_connection_config(ConnectionConfig, limits or ConnLimits()),
    )
    install(host)  # Yamux that enforces its receive windows (docs/libp2p-notes.md §9)
    return host


def _connection_config(config_class: Any, limits: ConnLimits) -> Any:
    """``ConnectionConfig`` with ``limits`` applied and the 250-inbound cap still lifted."""
    from libp2p.network.config import MIN_CONNECTIONS

    return config_class(
        max_connections=MAX_CONNECTIONS,
        min_connections=min(MIN_CONNECTIONS, limits.low_water),
        low_watermark=limits.low_water,
        high_watermark=limits.high_water,
        grace_period=limits.grace_period,
    )


def _new_pubsub(host: Any) -> tuple[Any, Any]:
    """GossipSub with spam protection off (it drops the node's own bursts)."""
    from libp2p.pubsub.gossipsub import PROTOCOL_ID, PROTOCOL_ID_V11, GossipSub
    from libp2p.pubsub.pubsub import Pubsub

    router = GossipSub(
        protocols=[PROTOCOL_ID_V11, PROTOCOL_ID],
        degree=6,
        degree_low=4,
        degree_high=12,
        heartbeat_interval=1,
        spam_protection_enabled=False,
    )
    return Pubsub(host, router), router


def _wrap_handler(
    rt: _Runtime, protocol_id: str, handler: Handler
) -> Callable[[Any], Awaitable[None]]:
    async def wrapped(stream: Any) -> None:
        remote = str(stream.muxed_conn.peer_id)
        try:
            await handler(stream, remote)
        except Exception as exc:
            level = logging.DEBUG if rt.stopping else logging.ERROR
            log.log(level, "handler for %s from %s failed", protocol_id, remote, exc_info=exc)
            await _quietly(stream.reset)
        else:
            await _quietly(stream.close)

    return wrapped


async def _quietly(action: Callable[[], Awaitable[Any]]) -> None:
    try:
        await action()
    except Exception as exc:  # closing a stream the peer already reset
        log.debug("ignored while closing a stream: %r", exc)


class _Topic:
    """One subscribed topic: its callbacks and the scope of its two tasks."""

    def __init__(self, scope: Any, send: Any) -> None:
        self.callbacks: list[SubscriptionCallback] = []
        self.scope = scope
        self.send = send
        self.dropped = 0


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
        addresses) instead of its binds (:mod:`threadkit.net.relay`).
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
        self._rt = _Runtime(
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
        self._finalizer = weakref.finalize(self, _finalize, self._rt)

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
            _check_listen_addrs(rt.listen)
            thread = threading.Thread(
                target=rt.thread_main, name=f"threadkit-net-{self.peer_id[-8:]}", daemon=True
            )
            rt.thread = thread
            thread.start()
        if not rt.ready.wait(timeout):
            rt.request_stop()
            thread.join(_STOP_GRACE)
            if not thread.is_alive():
                rt._reset()
            raise Timeout(f"node {self.peer_id} did not start listening within {timeout} s")
        if rt.start_error is not None or not rt.running():
            error = rt.start_error
            thread.join(_STOP_GRACE)
            rt._reset()
            detail = _describe(error) if error is not None else "its loop ended"
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
                f"Node.call({_fn_name(async_fn)}) was made from the node's own trio thread, "
                "where blocking deadlocks the loop: `await` the function instead"
            )
        job = self._submit(async_fn, args)
        future = job.future
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            if not future.cancel():  # finished just now
                return future.result(0)
            job.done.wait(_STOP_GRACE)  # let the cancellation land before reporting it
            raise Timeout(
                f"{_fn_name(async_fn)} did not finish within {timeout} s and was cancelled"
            ) from None
        except concurrent.futures.CancelledError:
            raise Timeout(f"{_fn_name(async_fn)} was cancelled") from None
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
        name = _fn_name(async_fn)

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

    def _submit(self, async_fn: Callable[[*Ts], Awaitable[T]], args: tuple[*Ts]) -> _Job[T]:
        import trio

        rt = self._rt
        job: _Job[T] = _Job(trio.CancelScope())
        name = _fn_name(async_fn)

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

    def _loop_side(self) -> _Runtime:
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
        pid = _parse_peer_id(peer_id)
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

    async def _dial(self, rt: _Runtime, pid: Any, maddrs: Sequence[Any], what: str) -> None:
        import trio
        from libp2p.peer.peerinfo import PeerInfo

        host = rt.host
        if pid == host.get_id():
            raise InvalidAddress(f"{what} is this node's own address")
        if _live_connections(host, pid):
            return
        lock = rt.dial_locks.setdefault(str(pid), trio.Lock())
        async with lock:
            if _live_connections(host, pid):
                return
            if not maddrs:
                try:
                    await host.connect(PeerInfo(pid, []))
                except Exception as exc:
                    raise PeerUnreachable(f"could not connect to {what}: {_describe(exc)}") from exc
                return
            network = host.get_network()
            failures = []
            for maddr in maddrs:
                try:
                    if "/p2p-circuit" in str(maddr):
                        conn = await _relay_client(rt).dial(_with_peer(maddr, pid))
                    else:
                        conn = await network.dial_addr(maddr, pid)
                except Exception as exc:
                    failures.append(f"{maddr}: {_describe(exc)}")
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
        await rt.host.disconnect(_parse_peer_id(peer_id))

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
        pid = _parse_peer_id(peer_id)
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
                f"could not open a {what} stream to {peer_id}: {_describe(exc)}"
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

            wrapped = _wrap_handler(rt, protocol_id, handler)
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

    def _pubsub(self) -> tuple[_Runtime, Any]:
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
        entry = _Topic(trio.CancelScope(), send)
        entry.callbacks.append(callback)
        rt.topics[topic] = entry
        rt.nursery.start_soon(_run_topic, rt, entry, topic, subscription, receive)

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
            return _topic_peers(rt.pubsub, topic)
        return self.call(_topic_peers_async, rt.pubsub, topic, timeout=5)


async def _run_topic(
    rt: _Runtime, entry: _Topic, topic: str, subscription: Any, receive: Any
) -> None:
    """One topic's two tasks: drain py-libp2p's queue, deliver to the callbacks."""
    import trio

    try:
        with entry.scope:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_drain_subscription, entry, topic, subscription)
                nursery.start_soon(_deliver, entry, topic, receive)
    except Exception as exc:  # never let a subscription take the node's loop down
        level = logging.DEBUG if rt.stopping else logging.ERROR
        log.log(level, "subscription to %s failed", topic, exc_info=exc)
    finally:
        if rt.topics.get(topic) is entry:
            del rt.topics[topic]


async def _drain_subscription(entry: _Topic, topic: str, subscription: Any) -> None:
    import trio
    from libp2p.peer.id import ID

    async for message in subscription:
        item = (bytes(message.data), ID(message.from_id).to_base58())
        try:
            entry.send.send_nowait(item)
        except trio.WouldBlock:
            entry.dropped += 1
            if entry.dropped == 1 or entry.dropped % 1000 == 0:
                log.warning(
                    "topic %s: callbacks too slow, %d messages dropped", topic, entry.dropped
                )


async def _deliver(entry: _Topic, topic: str, receive: Any) -> None:
    async for data, sender in receive:
        for callback in list(entry.callbacks):
            try:
                result = callback(data, sender)
                if inspect.isawaitable(result):
                    await result
            except Exception as exc:
                log.error("callback for topic %s failed", topic, exc_info=exc)


async def _set_handler_async(host: Any, protocol_id: Any, handler: Any) -> None:
    host.set_stream_handler(protocol_id, handler)


def _connected(host: Any) -> list[str]:
    if host is None:
        return []
    return [str(p) for p in host.get_connected_peers()]


async def _connected_async(host: Any) -> list[str]:
    return _connected(host)


def _topic_peers(pubsub: Any, topic: str) -> list[str]:
    if pubsub is None:
        return []
    return sorted(str(p) for p in pubsub.peer_topics.get(topic, ()))


async def _topic_peers_async(pubsub: Any, topic: str) -> list[str]:
    return _topic_peers(pubsub, topic)


def _relay_client(rt: _Runtime) -> Any:
    """The node's relay client; a dial-only one on a node that neither serves nor uses relays."""
    if rt.relay is None:
        from threadkit.net.relay import RelayClient

        rt.relay = RelayClient(rt.host, (), rt.peer_id)
    return rt.relay


def _with_peer(maddr: Any, pid: Any) -> Any:
    from multiaddr import Multiaddr

    text = str(maddr)
    return maddr if text.endswith(f"/p2p/{pid}") else Multiaddr(f"{text}/p2p/{pid}")


def _live_connections(host: Any, peer_id: Any) -> bool:
    connections = host.get_network().connections.get(peer_id)
    return bool(connections) and any(not getattr(c, "is_closed", False) for c in connections)


def _parse_peer_id(peer_id: str) -> Any:
    from libp2p.peer.id import ID

    try:
        return ID.from_base58(str(peer_id))
    except Exception as exc:
        raise InvalidAddress(f"not a peer id: {peer_id!r}") from exc


def _check_listen_addrs(addrs: Sequence[str]) -> None:
    """Parse the listen addresses, and refuse fixed TCP ports that are already taken.

    py-libp2p opens its listeners with SO_REUSEPORT, so on Linux a second listener on a
    taken port does not fail: it silently shares the port and gets a random half of the
    inbound connections. A probe socket without SO_REUSEPORT (with SO_REUSEADDR, so
    TIME_WAIT leftovers do not count) fails exactly when another listener holds the port.
    """
    from multiaddr import Multiaddr

    for addr in addrs:
        try:
            maddr = Multiaddr(addr)
            protocols = {p.name for p in maddr.protocols()}
        except Exception as exc:
            raise InvalidAddress(f"not a multiaddr: {addr!r} ({exc})") from exc
        if "tcp" not in protocols or not protocols & {"ip4", "ip6"}:
            continue
        port = int(maddr.value_for_protocol("tcp"))
        if port == 0:
            continue
        family = socket.AF_INET6 if "ip6" in protocols else socket.AF_INET
        host = maddr.value_for_protocol("ip6" if family == socket.AF_INET6 else "ip4")
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((host, port))
            except OSError as exc:
                raise NetworkError(f"cannot listen on {addr}: {exc.strerror or exc}") from exc


def _finalize(rt: _Runtime) -> None:
    """Safety net (garbage collection, interpreter exit): stop a node left running."""
    try:
        rt.shutdown(timeout=2.0)
    except Exception as exc:  # never raise from a finalizer
        log.debug("node %s: finalizer could not stop it: %r", rt.peer_id, exc)
