"""grpc-web (binary) and grpc-websockets in front of the daemon's gRPC port.

ThreadDB's JS client (``@textile/threads-client``) speaks improbable-eng's
grpc-web: every call, unary included, opens a websocket to
``/<service>/<Method>`` with the subprotocol ``grpc-websockets``; a browser or a
caller that swaps in an HTTP transport POSTs ``application/grpc-web+proto``
instead. :class:`WebProxy` accepts both on the proxy address (threadsd's
``THRDS_APIPROXYADDR``) and forwards each call, as raw bytes, to the gRPC server
on the API address, so both speak to the same servicers. The framing is
docs/wire-contract.md §8:

- a gRPC frame is 1 flag byte + a 4-byte big-endian length + the payload; flag
  ``0x80`` marks a header/trailer frame whose payload is ``key: value\\r\\n`` lines;
- websocket, client to server: the first message is the header lines, then
  ``0x00`` + frame for each request, and the single byte ``0x01`` when the client
  has finished sending; server to client: the header frame, one message frame per
  websocket message, the trailer frame (each 0x80 frame alone in its messages),
  then the socket is closed;
- HTTP: the body holds the request frames; the reply is 200 with the message
  frames and a trailer frame (a trailers-only reply also carries ``grpc-status``
  and ``grpc-message`` as HTTP headers); ``OPTIONS`` preflights are answered for
  any origin.

Connections are bounded (:class:`threadkit.api.limits.APILimits`): at most
``max_conns`` at once and ``max_client_conns`` from one address (more are answered
``503`` and closed); a connection must deliver its request headers, and a websocket its
first message, within ``header_timeout`` seconds, and an HTTP body must not stall
longer than that between chunks. Each forwarded call names its client's address to the
daemon (with the daemon's proxy secret), so the daemon's per-client stream budget counts
the proxy's clients one by one.

Examples
--------
>>> import threadkit as tk
>>> from threadkit.api.server import APIServer
>>> with tk.Peer(memory=True, network=False) as peer:
...     server = APIServer(peer, "127.0.0.1:0")
...     server.start()
...     proxy = WebProxy(f"127.0.0.1:{server.port}", "127.0.0.1", 0)
...     proxy.start()
...     proxy.port > 0
...     proxy.stop()
...     server.stop()
True
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import struct
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import grpc.aio
from aiohttp import WSMsgType, web
from aiohttp.web_protocol import RequestHandler

from threadkit import errors
from threadkit.api.limits import FORWARDED_KEY, PROXY_SECRET_KEY, APILimits
from threadkit.api.wire import MAX_MESSAGE, message_size_options

__all__ = ["WebProxy", "encode_frame", "known_methods", "parse_frames"]

log = logging.getLogger(__name__)

_PATH = re.compile(r"^/[A-Za-z_][\w.]*/[A-Za-z_]\w*$")
_CONTENT_TYPE = "application/grpc-web+proto"
_FORWARDED = ("authorization", "x-textile-")
_ALLOW_HEADERS = (
    "content-type, x-grpc-web, x-user-agent, grpc-timeout, authorization, "
    "x-textile-thread, x-textile-thread-name, x-textile-api-key, x-textile-api-sig, "
    "x-textile-api-sig-msg, x-textile-session, x-textile-org"
)
_EXPOSE_HEADERS = "grpc-status, grpc-message"
_DATA, _FINISH = 0x00, 0x01
_TRAILER_FLAG = 0x80
_UNIMPLEMENTED = int(grpc.StatusCode.UNIMPLEMENTED.value[0])
_RESOURCE_EXHAUSTED = int(grpc.StatusCode.RESOURCE_EXHAUSTED.value[0])
_INVALID_ARGUMENT = int(grpc.StatusCode.INVALID_ARGUMENT.value[0])
_DRAIN_LIMIT = 4
"""An oversized HTTP body is read (and dropped) up to this many times the message limit, so
the client, still sending, sees the RESOURCE_EXHAUSTED reply; beyond it the connection closes."""


def known_methods() -> frozenset[str]:
    """The ``/<service>/<Method>`` paths the daemon serves (the DB and the Net API, and
    threadkit's Members and Lifecycle services)."""
    from threadkit.api.proto import lifecycle_pb2, members_pb2, threads_pb2, threadsnet_pb2

    return frozenset(
        f"/{service.full_name}/{method.name}"
        for module in (threads_pb2, threadsnet_pb2, members_pb2, lifecycle_pb2)
        for service in module.DESCRIPTOR.services_by_name.values()
        for method in service.methods
    )


def _unknown_method(path: str, methods: frozenset[str]) -> str:
    """grpc-go's text for a call the server does not have."""
    service, _, method = path[1:].rpartition("/")
    if any(known.startswith(f"/{service}/") for known in methods):
        return f"unknown method {method} for service {service}"
    return f"unknown service {service}"


def _too_large(size: int, limit: int) -> str:
    """grpc-go's text for a message over the size limit."""
    return f"grpc: received message larger than max ({size} vs. {limit})"


def encode_frame(payload: bytes, flag: int = 0) -> bytes:
    """One gRPC frame: ``flag``, the big-endian length, ``payload``."""
    return struct.pack(">BI", flag, len(payload)) + payload


def parse_frames(buffer: bytearray) -> list[tuple[int, bytes]]:
    """Take the complete frames off the front of ``buffer`` as ``(flag, payload)``."""
    frames: list[tuple[int, bytes]] = []
    while len(buffer) >= 5:
        flag, length = struct.unpack(">BI", bytes(buffer[:5]))
        if len(buffer) < 5 + length:
            break
        frames.append((flag, bytes(buffer[5 : 5 + length])))
        del buffer[: 5 + length]
    return frames


def _percent_encode(text: str) -> str:
    """grpc-message encoding: bytes outside printable ASCII, and ``%``, as ``%XX``."""
    out = []
    for byte in text.encode("utf-8"):
        if 0x20 <= byte <= 0x7E and byte != 0x25:
            out.append(chr(byte))
        else:
            out.append(f"%{byte:02X}")
    return "".join(out)


def _trailer_lines(code: int, message: str) -> bytes:
    lines = f"grpc-status: {code}\r\n"
    if message:
        lines += f"grpc-message: {_percent_encode(message)}\r\n"
    return lines.encode("ascii")


def _metadata(pairs: list[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    """The request headers passed on to the gRPC server (credentials and thread names)."""
    return tuple(
        (key.lower(), value)
        for key, value in pairs
        if key.lower().startswith(_FORWARDED) and value.isascii()
    )


def _header_lines(text: str) -> list[tuple[str, str]]:
    pairs = []
    for line in text.split("\r\n"):
        key, sep, value = line.partition(":")
        if sep:
            pairs.append((key.strip(), value.strip()))
    return pairs


def _status(exc: BaseException) -> tuple[int, str]:
    if isinstance(exc, grpc.aio.AioRpcError):
        return int(exc.code().value[0]), exc.details() or ""
    if isinstance(exc, asyncio.CancelledError):
        return int(grpc.StatusCode.CANCELLED.value[0]), "call cancelled"
    return int(grpc.StatusCode.UNAVAILABLE.value[0]), str(exc)


class WebProxy:
    """grpc-web and grpc-websockets on ``host:port``, forwarding to the gRPC ``target``.

    Parameters
    ----------
    target : str
        ``host:port`` of the gRPC server (the daemon's API address).
    host, port : str, int
        Where to listen (port 0: any free port, see :attr:`port` after :meth:`start`).
    max_message : int
        Largest message in bytes, both ways. A larger request gets a RESOURCE_EXHAUSTED
        trailer; a websocket message over twice this size is refused by closing the socket
        (code 1009), since it has to be held whole before it can be looked at.
    keep_alive : float
        Seconds between websocket pings (threadsd's ``keepAliveInterval``); 0 sends none.
    methods : frozenset of str, optional
        The ``/<service>/<Method>`` paths forwarded; others are answered UNIMPLEMENTED by
        the proxy itself. Default: :func:`known_methods`.
    limits : APILimits, optional
        ``max_conns``, ``max_client_conns`` and ``header_timeout`` bound the proxy's
        connections (default: :class:`~threadkit.api.limits.APILimits`' defaults).
    forward_secret : str, optional
        The daemon's :attr:`~threadkit.api.server.APIServer.proxy_secret`: forwarded calls
        carry it with their client's address, so the daemon counts each client's streams
        apart. Without it the daemon counts every proxied call under the proxy's address.
    """

    def __init__(
        self,
        target: str,
        host: str = "127.0.0.1",
        port: int = 6007,
        max_message: int = MAX_MESSAGE,
        keep_alive: float = 5.0,
        methods: frozenset[str] | None = None,
        limits: APILimits | None = None,
        forward_secret: str | None = None,
    ) -> None:
        self.target = target
        self.limits = limits or APILimits()
        self.forward_secret = forward_secret
        self.host = host
        self.port = port
        self.max_message = max_message
        self.keep_alive = keep_alive
        self.methods = known_methods() if methods is None else methods
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.ServerRunner | None = None
        self._server: _GatedServer | None = None
        self._channel: grpc.aio.Channel | None = None
        self._handlers: set[asyncio.Task[Any]] = set()

    # -- life cycle -------------------------------------------------------------

    def start(self) -> None:
        """Bind and serve in a background thread; raises NetworkError when binding fails."""
        loop = asyncio.new_event_loop()
        self._loop = loop
        ready = threading.Event()
        outcome: list[BaseException | int] = []

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                outcome.append(loop.run_until_complete(self._start()))
            except BaseException as exc:
                outcome.append(exc)
            ready.set()
            if isinstance(outcome[0], int):
                loop.run_forever()
            loop.close()

        self._thread = threading.Thread(target=run, name="tk-webproxy", daemon=True)
        self._thread.start()
        ready.wait()
        result = outcome[0]
        if not isinstance(result, int):
            self._thread.join()
            raise errors.NetworkError(f"cannot listen on {self.host}:{self.port}: {result}")
        self.port = result

    async def _start(self) -> int:
        options = message_size_options(self.max_message)
        self._channel = grpc.aio.insecure_channel(self.target, options=options)
        # handler_cancellation: a client that hangs up ends its call (Listen over HTTP);
        # keepalive_timeout: aiohttp closes a connection that has no whole request within
        # it, from its start (slow or absent headers) and between requests
        self._server = _GatedServer(
            self._handle,
            self.limits,
            handler_cancellation=True,
            access_log=None,
            keepalive_timeout=self.limits.header_timeout,
        )
        self._runner = web.ServerRunner(self._server, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
        await site.start()
        server = getattr(site, "_server", None)
        sockets = getattr(server, "sockets", None) or []
        return int(sockets[0].getsockname()[1]) if sockets else self.port

    def stop(self, grace: float = 1.0) -> None:
        """Cancel the calls in flight (their clients get a CANCELLED trailer) and stop."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None or not thread.is_alive():
            return
        future = asyncio.run_coroutine_threadsafe(self._stop(grace), loop)
        try:
            future.result(grace + 10.0)
        except Exception:
            log.exception("web proxy did not stop cleanly")
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10.0)

    async def _stop(self, grace: float) -> None:
        if self._channel is not None:
            await self._channel.close(grace=None)
        if self._handlers:
            await asyncio.wait(set(self._handlers), timeout=grace)
        if self._runner is not None:
            await self._runner.cleanup()

    # -- requests ---------------------------------------------------------------

    @property
    def connections(self) -> int:
        """Connections the proxy holds now (admitted ones)."""
        return self._server.admitted if self._server is not None else 0

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
        try:
            return await self._dispatch(request)
        finally:
            if task is not None:
                self._handlers.discard(task)

    async def _dispatch(self, request: web.BaseRequest) -> web.StreamResponse:
        if request.method == "OPTIONS":
            return self._preflight(request)
        if not _PATH.match(request.path):
            return web.Response(status=404, text="unknown method path")
        websocket = request.headers.get("Upgrade", "").lower() == "websocket"
        if not websocket and request.method != "POST":
            return web.Response(status=405, headers={"Allow": "POST, OPTIONS"})
        if request.path not in self.methods:
            status = (_UNIMPLEMENTED, _unknown_method(request.path, self.methods))
            if websocket:
                return await self._websocket_status(request, *status)
            await self._drain(request)
            return self._trailers_only(request, *status)
        if websocket:
            return await self._websocket(request)
        return await self._http(request)

    def _cors(self, request: web.BaseRequest) -> dict[str, str]:
        origin = request.headers.get("Origin")
        if not origin:
            return {}
        return {
            "Access-Control-Allow-Origin": origin,
            "Access-Control-Allow-Credentials": "true",
            "Access-Control-Expose-Headers": _EXPOSE_HEADERS,
            "Vary": "Origin",
        }

    def _preflight(self, request: web.BaseRequest) -> web.StreamResponse:
        asked = request.headers.get("Access-Control-Request-Headers", "")
        headers = {
            "Access-Control-Allow-Origin": request.headers.get("Origin", "*"),
            "Access-Control-Allow-Methods": "POST, OPTIONS",
            "Access-Control-Allow-Headers": ", ".join(
                h for h in (_ALLOW_HEADERS, asked.strip()) if h
            ),
            "Access-Control-Allow-Credentials": "true",
            "Access-Control-Expose-Headers": _EXPOSE_HEADERS,
            "Access-Control-Max-Age": "600",
            "Vary": "Origin",
        }
        return web.Response(status=204, headers=headers)

    def _call(
        self, request: web.BaseRequest, path: str, metadata: tuple[tuple[str, str], ...]
    ) -> Any:
        assert self._channel is not None
        if self.forward_secret and request.remote:
            metadata += ((FORWARDED_KEY, request.remote), (PROXY_SECRET_KEY, self.forward_secret))
        method = self._channel.stream_stream(path)  # no serializers: raw bytes both ways
        return method(metadata=metadata)

    def _trailers_only(self, request: web.BaseRequest, code: int, message: str) -> web.Response:
        """A reply with no messages: the status as HTTP headers and as a trailer frame."""
        status_headers = {"grpc-status": str(code)}
        if message:
            status_headers["grpc-message"] = _percent_encode(message)
        return web.Response(
            status=200,
            body=encode_frame(_trailer_lines(code, message), _TRAILER_FLAG),
            headers={"Content-Type": _CONTENT_TYPE, **status_headers, **self._cors(request)},
        )

    async def _read_body(self, request: web.BaseRequest) -> bytearray | tuple[int, str]:
        """The request body, or a status when a frame in it is over the size limit."""
        body = bytearray()
        checked = 0  # offset of the next frame header to look at
        while chunk := await self._chunk(request):
            body.extend(chunk)
            while len(body) >= checked + 5:
                length = struct.unpack(">I", bytes(body[checked + 1 : checked + 5]))[0]
                if length > self.max_message:
                    await self._drain(request, len(body))
                    return _RESOURCE_EXHAUSTED, _too_large(length, self.max_message)
                checked += 5 + length
        return body

    async def _drain(self, request: web.BaseRequest, already: int = 0) -> None:
        """Read and drop the rest of a refused request's body (up to a bound)."""
        seen = already
        limit = _DRAIN_LIMIT * self.max_message
        while seen <= limit:
            chunk = await self._chunk(request)
            if not chunk:
                return
            seen += len(chunk)

    async def _chunk(self, request: web.BaseRequest) -> bytes:
        """The body's next bytes (b"" at its end); a body stalled ``header_timeout`` long
        closes the connection (raises ``ConnectionResetError``)."""
        try:
            return await asyncio.wait_for(request.content.readany(), self.limits.header_timeout)
        except TimeoutError:
            if request.transport is not None:
                request.transport.close()
            raise ConnectionResetError("request body stalled") from None

    async def _http(self, request: web.BaseRequest) -> web.StreamResponse:
        body = await self._read_body(request)
        if isinstance(body, tuple):
            return self._trailers_only(request, *body)
        frames = parse_frames(body)
        if body:
            return self._trailers_only(request, _INVALID_ARGUMENT, "truncated grpc-web frame")
        call = self._call(request, request.path, _metadata(list(request.headers.items())))
        try:
            return await self._http_reply(request, call, frames)
        finally:
            call.cancel()  # no-op once the call has ended; ends it if the client went away

    async def _http_reply(
        self, request: web.BaseRequest, call: Any, frames: list[tuple[int, bytes]]
    ) -> web.StreamResponse:
        code, message = 0, ""
        response: web.StreamResponse | None = None

        async def open_response() -> web.StreamResponse:
            opened = web.StreamResponse(
                status=200, headers={"Content-Type": _CONTENT_TYPE, **self._cors(request)}
            )
            await opened.prepare(request)
            return opened

        try:
            for flag, payload in frames:
                if flag == 0:
                    await call.write(payload)
            await call.done_writing()
            # the server's headers, when they come before any message (Listen sends them at
            # once), open the reply so the client knows the stream is up
            await call.initial_metadata()
            if not call.done():
                response = await open_response()
            async for reply in call:
                if response is None:
                    response = await open_response()
                await response.write(encode_frame(reply))
        except (grpc.aio.AioRpcError, grpc.aio.UsageError, asyncio.CancelledError) as exc:
            code, message = _status(exc)
        if code == 0:
            try:
                code_obj = await call.code()
                code, message = int(code_obj.value[0]), (await call.details()) or ""
            except Exception as exc:
                code, message = _status(exc)
        if response is None:
            return self._trailers_only(request, code, message)
        await response.write(encode_frame(_trailer_lines(code, message), _TRAILER_FLAG))
        await response.write_eof()
        return response

    async def _open_websocket(self, request: web.BaseRequest) -> tuple[web.WebSocketResponse, str]:
        """Accept the socket and read the client's header lines (its first message)."""
        ws = web.WebSocketResponse(
            protocols=("grpc-websockets",),
            max_msg_size=2 * self.max_message + 1024,
            heartbeat=self.keep_alive or None,
        )
        await ws.prepare(request)
        try:
            first = await ws.receive(self.limits.header_timeout)
        except TimeoutError:
            await ws.close(code=1008, message=b"no header message in time")
            return ws, ""
        if first.type == WSMsgType.TEXT:
            return ws, str(first.data)
        if first.type == WSMsgType.BINARY:
            return ws, bytes(first.data).decode("latin-1")
        return ws, ""

    async def _websocket_status(
        self, request: web.BaseRequest, code: int, message: str
    ) -> web.StreamResponse:
        """A call refused by the proxy itself: the trailer, then the close."""
        ws, _ = await self._open_websocket(request)
        if not ws.closed:
            await _close_with(_Sender(ws), code, message)
        return ws

    async def _websocket(self, request: web.BaseRequest) -> web.StreamResponse:
        ws, header_text = await self._open_websocket(request)
        if ws.closed:
            return ws
        call = self._call(request, request.path, _metadata(_header_lines(header_text)))
        send = _Sender(ws)
        refused: list[tuple[int, str]] = []  # set by the pump: a request it would not forward
        pump = asyncio.create_task(self._pump_requests(ws, call, refused))
        code, message = 0, ""
        try:
            await call.initial_metadata()
            if not call.done():
                await send.headers()
            async for reply in call:
                if not send.sent_headers:
                    await send.headers()
                await send.frame(reply)
            code_obj = await call.code()
            code, message = int(code_obj.value[0]), (await call.details()) or ""
        except (grpc.aio.AioRpcError, grpc.aio.UsageError, asyncio.CancelledError) as exc:
            code, message = _status(exc)
        except (ConnectionError, RuntimeError):  # the client went away
            call.cancel()
        finally:
            pump.cancel()
            call.cancel()  # no-op once the call has ended
        if refused:
            code, message = refused[0]
        if not ws.closed:
            await _close_with(send, code, message)
        return ws

    async def _pump_requests(
        self, ws: web.WebSocketResponse, call: Any, refused: list[tuple[int, str]]
    ) -> None:
        """Client messages into the call; the client closing the socket cancels it."""
        buffer = bytearray()
        finished = False
        async for msg in ws:
            if msg.type != WSMsgType.BINARY or not msg.data:
                continue
            data = bytes(msg.data)
            if data[0] == _FINISH:
                if not finished:
                    finished = True
                    await _quietly(call.done_writing)
                continue
            if data[0] != _DATA or finished:
                continue
            buffer.extend(data[1:])
            if len(buffer) >= 5:
                length = struct.unpack(">I", bytes(buffer[1:5]))[0]
                if length > self.max_message:
                    refused.append((_RESOURCE_EXHAUSTED, _too_large(length, self.max_message)))
                    break
            for flag, payload in parse_frames(buffer):
                if flag == 0:
                    await _quietly(lambda p=payload: call.write(p))  # type: ignore[misc]
        call.cancel()


class _Sender:
    """Each frame as its own websocket messages: the 5-byte prefix, then the payload."""

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self.ws = ws
        self.sent_headers = False

    async def headers(self) -> None:
        """The reply's header frame (once)."""
        if not self.sent_headers:
            self.sent_headers = True
            await self.frame(f"content-type: {_CONTENT_TYPE}\r\n".encode(), _TRAILER_FLAG)

    async def frame(self, payload: bytes, flag: int = 0) -> None:
        if flag == _TRAILER_FLAG:
            await self.ws.send_bytes(encode_frame(b"", flag)[:1] + struct.pack(">I", len(payload)))
            await self.ws.send_bytes(payload)
        else:
            await self.ws.send_bytes(encode_frame(payload, flag))


async def _close_with(send: _Sender, code: int, message: str) -> None:
    """The trailer frame, then the normal close; a client already gone is let be."""
    try:
        await send.frame(_trailer_lines(code, message), _TRAILER_FLAG)
        await send.ws.close(code=1000)
    except (ConnectionError, RuntimeError):
        pass


async def _quietly(action: Callable[[], Awaitable[Any]]) -> None:
    with contextlib.suppress(grpc.aio.UsageError, grpc.aio.AioRpcError, asyncio.InvalidStateError):
        await action()


_BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\n"
    b"Content-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s"
)


class _GatedServer(web.Server):
    """aiohttp's low-level server admitting at most ``max_conns`` connections, and
    ``max_client_conns`` from one address; others get a 503 and are closed at once."""

    def __init__(self, handler: Any, limits: APILimits, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self.limits = limits
        self.admitted = 0
        self._by_address: dict[str, int] = {}
        self._counted: dict[RequestHandler, str] = {}

    def connection_made(self, handler: RequestHandler, transport: asyncio.Transport) -> None:
        super().connection_made(handler, transport)
        peer = transport.get_extra_info("peername")
        address = str(peer[0]) if isinstance(peer, tuple) and peer else "unknown"
        held = self._by_address.get(address, 0)
        refused = ""
        if held >= self.limits.max_client_conns:
            refused = (
                f"too many connections from {address} "
                f"(limit {self.limits.max_client_conns}, proxyMaxClientConns)"
            )
        elif self.admitted >= self.limits.max_conns:
            refused = f"too many connections (limit {self.limits.max_conns}, proxyMaxConns)"
        if refused:
            log.info("proxy refused a connection: %s", refused)
            body = refused.encode()
            transport.write(_BUSY % (len(body), body))
            transport.close()
            return
        self._by_address[address] = held + 1
        self._counted[handler] = address
        self.admitted += 1

    def connection_lost(self, handler: RequestHandler, exc: BaseException | None = None) -> None:
        super().connection_lost(handler, exc)
        address = self._counted.pop(handler, None)
        if address is None:
            return
        self.admitted -= 1
        held = self._by_address.get(address, 0) - 1
        if held > 0:
            self._by_address[address] = held
        else:
            self._by_address.pop(address, None)
