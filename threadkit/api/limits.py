"""The daemon's budgets: stream slots, idle streams, proxy connections.

The gRPC server runs each call in a worker thread, and a stream (Listen, Subscribe, a
transaction, GetToken) holds its thread for as long as it is open. So that open streams
never take the threads unary calls need, the server has ``max_streams + unary_workers``
threads and at most ``max_streams`` streams: a stream beyond the budget, in total or
from one client address, is refused at once with RESOURCE_EXHAUSTED. A stream that waits
for its client (GetToken and the transactions) and gets nothing for ``stream_idle``
seconds is ended with DEADLINE_EXCEEDED (a write transaction is then discarded). Listen
and Subscribe wait for the daemon, not the client, so they are bounded by count only.

The grpc-web/websocket proxy bounds its connections the same way, in total and per
client address, and closes a connection that has not sent a whole request (headers, and
for a websocket its first message) within ``header_timeout`` seconds.

Examples
--------
>>> limits = APILimits(max_streams=4, max_client_streams=2)
>>> limits.workers
20
>>> slots = StreamSlots(limits)
>>> slots.acquire("10.0.0.1"), slots.acquire("10.0.0.1")
(None, None)
>>> slots.acquire("10.0.0.1")
'too many open streams from 10.0.0.1 (limit 2, apiMaxClientStreams)'
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import math
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from threadkit.errors import InvalidInput, LimitExceeded, Timeout
from threadkit.net.connmgr import parse_duration

__all__ = ["APILimits", "IdleWatch", "StreamGuard", "StreamSlots", "client_address"]

FORWARDED_KEY = "x-threadkit-client-addr"
"""Metadata naming the client address of a call forwarded by the in-process proxy."""

PROXY_SECRET_KEY = "x-threadkit-proxy-secret"
"""Metadata proving a call comes from the daemon's own proxy (which alone knows the secret)."""


def _positive(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(f"API limits: {name} must be a whole number, got {value!r}")
    if value < 1:
        raise InvalidInput(f"API limits: {name} must be at least 1, got {value}")
    return value


def _seconds(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInput(f"API limits: {name} must be seconds (a number), got {value!r}")
    if not math.isfinite(value) or value <= 0:
        raise InvalidInput(f"API limits: {name} must be more than 0 seconds, got {value}")
    return float(value)


@dataclass(frozen=True)
class APILimits:
    """How much of the daemon one client, or all of them, may hold at once.

    Parameters
    ----------
    max_streams : int
        Open streams (Listen, Subscribe, Read/WriteTransaction, GetToken) at once, all
        clients together (``apiMaxStreams``).
    max_client_streams : int
        Open streams from one client address (``apiMaxClientStreams``); calls the proxy
        forwards count for the address of the proxy's client.
    unary_workers : int
        Worker threads kept for unary calls on top of ``max_streams``
        (``apiUnaryWorkers``).
    stream_idle : float
        Seconds a GetToken or transaction stream may wait for its client's next message
        (``apiStreamIdleTimeout``).
    max_conns : int
        Connections the proxy holds at once (``proxyMaxConns``).
    max_client_conns : int
        Proxy connections from one client address (``proxyMaxClientConns``).
    header_timeout : float
        Seconds a proxy connection has to deliver a request's headers, and a websocket its
        first message (``proxyHeaderTimeout``); also the gRPC port's HTTP/2 handshake limit.

    Raises
    ------
    InvalidInput
        A count that is not a whole number of at least 1, a per-client limit above its
        total, or a time that is not a positive number of seconds.
    """

    max_streams: int = 64
    max_client_streams: int = 32
    unary_workers: int = 16
    stream_idle: float = 60.0
    max_conns: int = 256
    max_client_conns: int = 64
    header_timeout: float = 10.0

    def __post_init__(self) -> None:
        for name in (
            "max_streams",
            "max_client_streams",
            "unary_workers",
            "max_conns",
            "max_client_conns",
        ):
            _positive(getattr(self, name), name)
        for name in ("stream_idle", "header_timeout"):
            object.__setattr__(self, name, _seconds(getattr(self, name), name))
        if self.max_client_streams > self.max_streams:
            raise InvalidInput(
                f"API limits: max_client_streams ({self.max_client_streams}) must not exceed "
                f"max_streams ({self.max_streams})"
            )
        if self.max_client_conns > self.max_conns:
            raise InvalidInput(
                f"API limits: max_client_conns ({self.max_client_conns}) must not exceed "
                f"max_conns ({self.max_conns})"
            )

    @property
    def workers(self) -> int:
        """The gRPC server's worker threads: every stream slot plus the unary reserve."""
        return self.max_streams + self.unary_workers

    @property
    def peer_calls(self) -> int:
        """Unary calls that wait for another peer (NewDBFromAddr, AddThread, PullThread,
        AddReplicator) at once: half the unary reserve, so the other half stays quick."""
        return max(1, self.unary_workers // 2)

    @classmethod
    def parse(cls, settings: dict[str, object]) -> APILimits:
        """Limits from the daemon's string settings (``"64"``, ``"60s"``).

        ``settings`` holds ``apiMaxStreams``, ``apiMaxClientStreams``, ``apiUnaryWorkers``,
        ``apiStreamIdleTimeout``, ``proxyMaxConns``, ``proxyMaxClientConns`` and
        ``proxyHeaderTimeout``.

        Raises
        ------
        InvalidInput
            A count is not a whole number, a time not a Go duration, or a value out of
            range (the message names the setting).
        """

        def whole(name: str) -> int:
            text = str(settings[name]).strip()
            try:
                value = int(text)
            except ValueError:
                raise InvalidInput(f"{name}: {text!r} is not a whole number") from None
            if value < 1:
                raise InvalidInput(f"{name}: must be at least 1, got {value}")
            return value

        def duration(name: str) -> float:
            value = parse_duration(str(settings[name]), name)
            if value <= 0:
                raise InvalidInput(f"{name}: must be more than 0")
            return value

        return cls(
            max_streams=whole("apiMaxStreams"),
            max_client_streams=whole("apiMaxClientStreams"),
            unary_workers=whole("apiUnaryWorkers"),
            stream_idle=duration("apiStreamIdleTimeout"),
            max_conns=whole("proxyMaxConns"),
            max_client_conns=whole("proxyMaxClientConns"),
            header_timeout=duration("proxyHeaderTimeout"),
        )


class StreamSlots:
    """Counts open streams, in total and per client address, against :class:`APILimits`.

    Parameters
    ----------
    limits : APILimits
        ``max_streams`` and ``max_client_streams`` are used.
    """

    def __init__(self, limits: APILimits) -> None:
        self.total = limits.max_streams
        self.per_client = limits.max_client_streams
        self._lock = threading.Lock()
        self._open: dict[str, int] = {}
        self._count = 0

    def acquire(self, client: str) -> str | None:
        """Take a slot for ``client``; None when taken, else why it was refused."""
        with self._lock:
            held = self._open.get(client, 0)
            if held >= self.per_client:
                return (
                    f"too many open streams from {client} "
                    f"(limit {self.per_client}, apiMaxClientStreams)"
                )
            if self._count >= self.total:
                return f"too many open streams (limit {self.total}, apiMaxStreams)"
            self._open[client] = held + 1
            self._count += 1
            return None

    def release(self, client: str) -> None:
        """Give back a slot taken by :meth:`acquire`."""
        with self._lock:
            held = self._open.get(client, 0) - 1
            if held > 0:
                self._open[client] = held
            else:
                self._open.pop(client, None)
            self._count = max(0, self._count - 1)

    @property
    def open(self) -> int:
        """Streams open now."""
        with self._lock:
            return self._count


def client_address(peer: str, metadata: Any, proxy_secret: str) -> str:
    """The address a call's streams are counted under.

    Parameters
    ----------
    peer : str
        gRPC's peer string, e.g. ``ipv4:127.0.0.1:50512`` or ``ipv6:[::1]:50512``.
    metadata : iterable of (key, value)
        The call's invocation metadata.
    proxy_secret : str
        The daemon's proxy secret: a call that carries it is counted under the address
        the proxy names (its own client's), any other under its own.

    Examples
    --------
    >>> client_address("ipv4:127.0.0.1:5000", (), "s")
    '127.0.0.1'
    >>> client_address("ipv6:[::1]:5000", (), "s")
    '::1'
    >>> meta = (("x-threadkit-proxy-secret", "s"), ("x-threadkit-client-addr", "10.1.2.3"))
    >>> client_address("ipv4:127.0.0.1:5000", meta, "s")
    '10.1.2.3'
    >>> client_address("ipv4:127.0.0.1:5000", meta, "other")
    '127.0.0.1'
    """
    forwarded = secret = ""
    for key, value in metadata or ():
        text = value if isinstance(value, str) else bytes(value).decode("latin-1")
        if key == FORWARDED_KEY:
            forwarded = text
        elif key == PROXY_SECRET_KEY:
            secret = text
    if forwarded and proxy_secret and secret == proxy_secret:
        return forwarded
    kind, _, rest = peer.partition(":")
    if kind in {"ipv4", "ipv6"}:
        host = rest.rpartition(":")[0]
        return host.strip("[]") or rest
    return peer


class IdleWatch:
    """Ends calls whose client stays silent too long, from one watchdog thread.

    :meth:`expect` arms a deadline before a blocking read of the call's next message;
    :meth:`done` disarms it. A deadline that passes calls the ``expire`` callback given to
    :meth:`expect` (once); the watchdog sleeps until the earliest deadline.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int]] = []
        self._armed: dict[int, Any] = {}
        self._ids = itertools.count()
        self._thread: threading.Thread | None = None
        self._stopped = False

    def expect(self, seconds: float, expire: Any) -> int:
        """Arm a deadline ``seconds`` from now; returns its handle for :meth:`done`."""
        handle = next(self._ids)
        with self._cond:
            if self._thread is None and not self._stopped:
                self._thread = threading.Thread(target=self._run, name="tk-api-idle", daemon=True)
                self._thread.start()
            self._armed[handle] = expire
            heapq.heappush(self._heap, (time.monotonic() + seconds, handle))
            self._cond.notify()
        return handle

    def done(self, handle: int) -> None:
        """Disarm a deadline (the message came, or the call ended)."""
        with self._cond:
            self._armed.pop(handle, None)

    def stop(self) -> None:
        """Stop the watchdog thread."""
        with self._cond:
            self._stopped = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(5.0)

    def _run(self) -> None:
        while True:
            due = []
            with self._cond:
                while not self._stopped:
                    while self._heap and self._heap[0][1] not in self._armed:
                        heapq.heappop(self._heap)
                    now = time.monotonic()
                    if self._heap and self._heap[0][0] <= now:
                        break
                    wait = self._heap[0][0] - now if self._heap else None
                    self._cond.wait(wait)
                if self._stopped:
                    return
                now = time.monotonic()
                while self._heap and self._heap[0][0] <= now:
                    _, handle = heapq.heappop(self._heap)
                    expire = self._armed.pop(handle, None)
                    if expire is not None:
                        due.append(expire)
            for expire in due:
                with contextlib.suppress(Exception):  # a call that ended meanwhile
                    expire()


class StreamGuard:
    """A server's stream budget: slots on entry, idle deadlines on client messages.

    Parameters
    ----------
    limits : APILimits
        The budget.
    proxy_secret : str
        The secret the daemon's own proxy sends with forwarded calls
        (:func:`client_address`).
    """

    def __init__(self, limits: APILimits, proxy_secret: str) -> None:
        self.limits = limits
        self.slots = StreamSlots(limits)
        self.idle = IdleWatch()
        self.proxy_secret = proxy_secret
        self._peer_calls = 0
        self._peer_lock = threading.Lock()

    @contextlib.contextmanager
    def peer_call(self) -> Iterator[None]:
        """Hold one of the ``limits.peer_calls`` slots of calls that wait for other peers.

        Raises
        ------
        LimitExceeded
            All are taken.
        """
        with self._peer_lock:
            if self._peer_calls >= self.limits.peer_calls:
                raise LimitExceeded(
                    f"too many calls waiting for other peers (limit {self.limits.peer_calls}, "
                    "half of apiUnaryWorkers)"
                )
            self._peer_calls += 1
        try:
            yield
        finally:
            with self._peer_lock:
                self._peer_calls -= 1

    def enter(self, context: Any) -> Callable[[], None]:
        """Take a stream slot for the call; returns the (idempotent) release.

        The slot is also released when the call ends, however it ends.

        Raises
        ------
        LimitExceeded
            No slot is free, in total or for the call's client address.
        """
        client = client_address(context.peer(), context.invocation_metadata(), self.proxy_secret)
        refused = self.slots.acquire(client)
        if refused is not None:
            raise LimitExceeded(refused)
        lock = threading.Lock()
        held = [True]

        def release() -> None:
            with lock:
                if not held[0]:
                    return
                held[0] = False
            self.slots.release(client)

        context.add_callback(release)
        return release

    def watch(self, requests: Iterator[Any], context: Any) -> Iterator[Any]:
        """``requests`` with a deadline on each message: ``stream_idle`` seconds.

        A client silent that long has its call ended with DEADLINE_EXCEEDED, and the
        handler's next read raises :class:`threadkit.errors.Timeout` (never a plain end of
        the stream, so a write transaction cannot mistake it for a commit).
        """

        seconds = self.limits.stream_idle
        text = f"stream idle: no message from the client for {seconds:g}s (apiStreamIdleTimeout)"
        expired = threading.Event()

        def expire() -> None:
            expired.set()
            _end_call(context, text)

        while True:
            handle = self.idle.expect(seconds, expire)
            try:
                request = next(requests)
            except StopIteration:
                if expired.is_set():
                    raise Timeout(text) from None
                return
            except Exception:
                if expired.is_set():
                    raise Timeout(text) from None
                raise
            finally:
                self.idle.done(handle)
            if expired.is_set():
                raise Timeout(text)
            yield request

    def stop(self) -> None:
        """Stop the idle watchdog."""
        self.idle.stop()


def _end_call(context: Any, details: str) -> None:
    """End a call from outside its handler with DEADLINE_EXCEEDED and ``details``."""
    import grpc

    call = getattr(getattr(context, "_rpc_event", None), "call", None)
    code = grpc.StatusCode.DEADLINE_EXCEEDED.value[0]
    try:
        if call is not None:
            call.cancel(code, details)  # grpcio's server call: sends this status
            return
    except (TypeError, AttributeError):
        pass
    context.cancel()
