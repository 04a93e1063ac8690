"""The grpc-web/websocket proxy under attack: idle websockets, slowloris, stalled bodies.

A real daemon on 127.0.0.1; the attacks are raw sockets and aiohttp websockets. Under
each, the daemon keeps answering ``ListDBs`` on its gRPC port and on the proxy.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from api_procs import Daemon

import threadkit as tk
from threadkit.api.proto import threads_pb2 as pb
from threadkit.api.proxy import encode_frame

pytestmark = pytest.mark.slow

MAX_CONNS = 48
HEADER_TIMEOUT = 1.0


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    child = Daemon(
        Path(tmp_path_factory.mktemp("daemon")) / "repo",
        "--proxyMaxConns",
        str(MAX_CONNS),
        "--proxyMaxClientConns",
        str(MAX_CONNS),
        "--proxyHeaderTimeout",
        f"{HEADER_TIMEOUT:g}s",
    ).wait_ready()
    yield child
    assert child.stop() == 0, child.log()


def list_dbs_on_proxy(proxy: str) -> int:
    """``ListDBs`` as grpc-web over HTTP; returns its grpc-status."""

    async def call() -> int:
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                f"http://{proxy}/threads.pb.API/ListDBs",
                data=encode_frame(pb.ListDBsRequest().SerializeToString()),
                headers={"content-type": "application/grpc-web+proto", "x-grpc-web": "1"},
                timeout=aiohttp.ClientTimeout(total=10),
            ) as reply,
        ):
            await reply.read()
            return int(reply.headers.get("grpc-status", "0"))

    return asyncio.run(call())


def served(daemon: Daemon) -> None:
    """A normal client is answered on both ports."""
    with tk.Client(daemon.target, timeout=10) as client:
        client.list_dbs()
    assert list_dbs_on_proxy(daemon.proxy) == 0


async def _listen_over_websocket(proxy: str, dbid: bytes, sockets: list[Any]) -> str:
    """Open a Listen websocket and go idle; 'listening' or the refusal's grpc-status."""
    session = aiohttp.ClientSession()
    sockets.append(session)
    ws = await session.ws_connect(
        f"ws://{proxy}/threads.pb.API/Listen", protocols=("grpc-websockets",)
    )
    sockets.append(ws)
    await ws.send_bytes(b"content-type: application/grpc-web+proto\r\n")
    await ws.send_bytes(b"\x00" + encode_frame(pb.ListenRequest(dbID=dbid).SerializeToString()))
    while True:
        msg = await ws.receive(30)
        if msg.type != aiohttp.WSMsgType.BINARY:
            return f"closed {msg.type}"
        text = bytes(msg.data).decode("latin-1")
        if "grpc-status:" in text:
            return text.split("grpc-status:")[1].split("\r\n")[0].strip() + " " + text
        if "content-type" in text:
            return "listening"


async def close_all(items: list[Any]) -> None:
    """Close websockets (then sessions) together, within a bound."""
    sockets = [i for i in items if isinstance(i, aiohttp.ClientWebSocketResponse)]
    await asyncio.wait_for(asyncio.gather(*(ws.close() for ws in sockets)), 30)
    for item in items:
        if isinstance(item, aiohttp.ClientSession):
            await item.close()


def test_idle_websockets_do_not_starve_the_daemon(daemon: Daemon) -> None:
    with tk.Client(daemon.target, timeout=30) as client:
        dbid = client.new_db("ws").id.to_bytes()

    async def attack() -> list[str]:
        sockets: list[Any] = []
        try:
            outcomes = await asyncio.gather(
                *(_listen_over_websocket(daemon.proxy, dbid, sockets) for _ in range(40))
            )
            await asyncio.to_thread(served, daemon)  # while all 40 are open
            return list(outcomes)
        finally:
            await close_all(sockets)

    outcomes = asyncio.run(asyncio.wait_for(attack(), 120))
    assert outcomes.count("listening") == 32, outcomes
    refused = [o for o in outcomes if o != "listening"]
    assert all(o.startswith("8 ") and "apiMaxClientStreams" in o for o in refused), refused
    served(daemon)


def test_websockets_that_send_no_header_are_closed(daemon: Daemon) -> None:
    async def attack() -> list[object]:
        async with aiohttp.ClientSession() as session:
            sockets = [
                await session.ws_connect(
                    f"ws://{daemon.proxy}/threads.pb.API/Listen", protocols=("grpc-websockets",)
                )
                for _ in range(10)
            ]
            received = await asyncio.gather(
                *(ws.receive(10 * HEADER_TIMEOUT) for ws in sockets), return_exceptions=True
            )
            kinds = [getattr(msg, "type", msg) for msg in received]
            await close_all(sockets)
            return [(kind, ws.close_code) for kind, ws in zip(kinds, sockets, strict=True)]

    closes = asyncio.run(asyncio.wait_for(attack(), 60))
    assert closes == [(aiohttp.WSMsgType.CLOSE, 1008)] * 10


def _slow_connections(proxy: str, count: int, start: bytes) -> list[socket.socket]:
    host, port = proxy.rsplit(":", 1)
    conns = []
    for _ in range(count):
        conn = socket.create_connection((host, int(port)), timeout=10)
        conn.sendall(start)
        conns.append(conn)
    return conns


def _read_all(conn: socket.socket, deadline: float) -> tuple[bytes, bool]:
    """Everything until the proxy closes the connection, and whether it did by ``deadline``."""
    out = b""
    conn.settimeout(max(0.01, deadline - time.monotonic()))
    try:
        while chunk := conn.recv(4096):
            out += chunk
    except TimeoutError:
        return out, False
    except ConnectionResetError:
        pass
    return out, True


@pytest.mark.parametrize(
    "start",
    [
        pytest.param(b"POST /threads.pb.API/ListDBs HTTP/1.1\r\nHost: x\r\nX-Slow", id="headers"),
        pytest.param(
            b"POST /threads.pb.API/ListDBs HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/grpc-web+proto\r\nContent-Length: 100\r\n\r\n\x00\x00",
            id="body",
        ),
        pytest.param(b"", id="nothing"),
    ],
)
def test_slowloris_is_bounded_and_timed_out(daemon: Daemon, start: bytes) -> None:
    conns = _slow_connections(daemon.proxy, MAX_CONNS + 12, start)
    try:
        with tk.Client(daemon.target, timeout=10) as client:
            client.list_dbs()  # the gRPC port is not affected
        deadline = time.monotonic() + 10 * HEADER_TIMEOUT
        replies = [_read_all(conn, deadline) for conn in conns]
        # the connections over the budget were answered 503 at once; the rest were closed
        # (no whole request within proxyHeaderTimeout): none is held
        assert all(closed for _, closed in replies)
        busy = [r for r, _ in replies if r.startswith(b"HTTP/1.1 503")]
        assert len(busy) == 12, [r[:60] for r, _ in replies]
        assert b"proxyMaxClientConns" in busy[0]
    finally:
        for conn in conns:
            conn.close()
    served(daemon)


def test_grpc_port_closes_connections_that_never_finish_the_handshake(daemon: Daemon) -> None:
    """proxyHeaderTimeout also bounds the gRPC port's HTTP/2 handshake (grpcio: 120 s)."""
    conns = _slow_connections(daemon.target, 20, b"PRI * HTTP/2.0\r\n")
    try:
        with tk.Client(daemon.target, timeout=10) as client:
            client.list_dbs()
        deadline = time.monotonic() + 10 * HEADER_TIMEOUT
        assert all(_read_all(conn, deadline)[1] for conn in conns)
    finally:
        for conn in conns:
            conn.close()
