"""The trio thread behind a :class:`~threadkit.net.node.Node`: its state, start-up and shutdown.

:class:`Runtime` is what the thread owns (the host, the nursery, the trio token); the
``Node`` facade holds one and the thread never holds the ``Node``, so a forgotten node can
be garbage-collected and :func:`finalize` stops its thread. :class:`Job` is one call
submitted from another thread, with its own cancel scope.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import threading
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

from threadkit.errors import NetworkError, NodeClosed, Timeout, WrongThread
from threadkit.net._libp2p_host import (
    advertised,
    describe,
    new_host_for,
    new_pubsub,
    run_service,
    trim_periodically,
)
from threadkit.net._topics import Topic
from threadkit.net.connmgr import ConnLimits

__all__ = ["STOP_GRACE", "Handler", "Job", "Runtime", "describe", "finalize", "fn_name"]

log = logging.getLogger("threadkit.net.node")

T = TypeVar("T")

Handler = Callable[[Any, str], Awaitable[None]]
"""A stream handler: ``async handler(stream, remote_peer_id)``."""

STOP_GRACE = 1.0  # seconds call() waits for a timed-out task to finish cancelling


def fn_name(fn: Callable[..., Any]) -> str:
    return getattr(fn, "__qualname__", None) or repr(fn)


class Job(Generic[T]):
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


class Runtime:
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
        self.topics: dict[str, Topic] = {}

    # ------------------------------------------------------------------ thread side

    def thread_main(self) -> None:
        import trio

        try:
            trio.run(self._main)
        except BaseException as exc:  # reported to start(), or logged
            if not self.ready.is_set():
                self.start_error = exc
            else:
                log.error("node %s: event loop crashed: %s", self.peer_id, describe(exc))
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
        host = new_host_for(self.seed, self.listen, self.conn_limits, self.announce)
        route_libp2p_logs()  # after libp2p's import, which resets its logger
        self.host = host
        if str(host.get_id()) != self.peer_id:  # pragma: no cover - a key-format change
            raise NetworkError(f"libp2p derived peer id {host.get_id()}, expected {self.peer_id}")
        for protocol_id, handler in self.handlers.items():
            host.set_stream_handler(protocol_id, wrap_handler(self, protocol_id, handler))
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
            services.start_soon(trim_periodically, host, self.conn_limits, self.peer_id)
            if self.enable_pubsub:
                pubsub, router = new_pubsub(host)
                services.start_soon(run_service, background_trio_service, router)
                services.start_soon(run_service, background_trio_service, pubsub)
                with trio.fail_after(10):
                    await pubsub.wait_until_ready()
                self.pubsub = pubsub
            async with trio.open_nursery() as nursery:
                self.nursery = nursery
                self.bound = [str(a) for a in host.get_transport_addrs()]
                self.addrs = advertised(self.bound, self.announce, self.peer_id, self.relays)
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


def wrap_handler(
    rt: Runtime, protocol_id: str, handler: Handler
) -> Callable[[Any], Awaitable[None]]:
    async def wrapped(stream: Any) -> None:
        remote = str(stream.muxed_conn.peer_id)
        try:
            await handler(stream, remote)
        except Exception as exc:
            level = logging.DEBUG if rt.stopping else logging.ERROR
            log.log(level, "handler for %s from %s failed", protocol_id, remote, exc_info=exc)
            await quietly(stream.reset)
        else:
            await quietly(stream.close)

    return wrapped


async def quietly(action: Callable[[], Awaitable[Any]]) -> None:
    try:
        await action()
    except Exception as exc:  # closing a stream the peer already reset
        log.debug("ignored while closing a stream: %r", exc)


def finalize(rt: Runtime) -> None:
    """Safety net (garbage collection, interpreter exit): stop a node left running."""
    try:
        rt.shutdown(timeout=2.0)
    except Exception as exc:  # never raise from a finalizer
        log.debug("node %s: finalizer could not stop it: %r", rt.peer_id, exc)
