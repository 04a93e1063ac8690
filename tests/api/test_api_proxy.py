"""The daemon's proxy port driven the way improbable-eng grpc-web clients drive it.

A tiny client here speaks both transports of docs/wire-contract.md §8: HTTP POST
with ``application/grpc-web+proto`` bodies and the ``grpc-websockets``
subprotocol (header lines first, ``0x00`` + frame per message, ``0x01`` to finish).
"""

from __future__ import annotations

import asyncio
import json
import struct
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import aiohttp
import pytest
from api_procs import Daemon

import threadkit as tk
from threadkit.api.proto import threads_pb2 as pb
from threadkit.api.proto import threadsnet_pb2 as netpb
from threadkit.api.proxy import encode_frame, parse_frames

pytestmark = pytest.mark.slow

_T = TypeVar("_T")
CT = "application/grpc-web+proto"


class GrpcWebError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def _decode_block(raw: bytes) -> dict[str, str]:
    out = {}
    for line in raw.decode("latin-1").split("\r\n"):
        key, sep, value = line.partition(":")
        if sep:
            out[key.strip().lower()] = value.strip()
    return out


def _unquote(text: str) -> str:
    from urllib.parse import unquote

    return unquote(text)


def _check(trailers: dict[str, str]) -> None:
    code = int(trailers.get("grpc-status", "0"))
    if code:
        raise GrpcWebError(code, _unquote(trailers.get("grpc-message", "")))


def _headers(token: str | None) -> dict[str, str]:
    headers = {"content-type": CT, "x-grpc-web": "1"}
    if token:
        headers["authorization"] = f"bearer {token}"
    return headers


async def http_call(
    proxy: str, path: str, request: Any, reply_cls: type[_T], token: str | None = None
) -> _T:
    """A unary call over HTTP grpc-web (binary)."""
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"http://{proxy}{path}",
            data=encode_frame(request.SerializeToString()),
            headers=_headers(token),
        ) as resp,
    ):
        assert resp.status == 200
        assert resp.headers["content-type"] == CT
        body = bytearray(await resp.read())
    frames = parse_frames(body)
    assert not body
    messages = [payload for flag, payload in frames if flag == 0]
    trailer_blocks = [payload for flag, payload in frames if flag == 0x80]
    trailers = _decode_block(trailer_blocks[-1]) if trailer_blocks else dict(resp.headers)
    _check({k.lower(): v for k, v in trailers.items()})
    assert len(messages) == 1
    reply = reply_cls()
    reply.ParseFromString(messages[0])  # type: ignore[attr-defined]
    return reply


class WsCall:
    """One call over ``grpc-websockets``."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.buffer = bytearray()
        self.pending: list[tuple[int, bytes]] = []
        self.headers: dict[str, str] | None = None
        self.trailers: dict[str, str] | None = None
        self.closed = False

    async def send(self, message: Any) -> None:
        await self.ws.send_bytes(b"\x00" + encode_frame(message.SerializeToString()))

    async def finish(self) -> None:
        await self.ws.send_bytes(b"\x01")

    async def recv(self, reply_cls: type[_T], timeout: float = 20.0) -> _T | None:
        """The next message, or None once the trailer came (errors raised)."""
        while True:
            while self.pending:
                flag, payload = self.pending.pop(0)
                if flag == 0x80:
                    block = _decode_block(payload)
                    if self.headers is None and "grpc-status" not in block:
                        self.headers = block
                        continue
                    self.trailers = block
                    _check(block)
                    return None
                reply = reply_cls()
                reply.ParseFromString(payload)  # type: ignore[attr-defined]
                return reply
            if self.trailers is not None:
                return None
            msg = await self.ws.receive(timeout)
            if msg.type != aiohttp.WSMsgType.BINARY:
                self.closed = True
                raise AssertionError(f"socket closed before the trailer: {msg.type}")
            self.buffer.extend(msg.data)
            self.pending.extend(parse_frames(self.buffer))

    async def wait_closed(self) -> None:
        msg = await self.ws.receive(10)
        assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED), msg
        self.closed = True


async def with_ws(
    proxy: str,
    path: str,
    token: str | None,
    body: Callable[[WsCall], Awaitable[_T]],
) -> _T:
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(f"ws://{proxy}{path}", protocols=("grpc-websockets",)) as ws,
    ):
        assert ws.protocol == "grpc-websockets"
        lines = "".join(f"{k}: {v}\r\n" for k, v in _headers(token).items())
        await ws.send_bytes(f"host: http://{proxy}\r\n{lines}".encode())
        return await body(WsCall(ws))


async def ws_unary(
    proxy: str, path: str, request: Any, reply_cls: type[_T], token: str | None = None
) -> _T:
    async def body(call: WsCall) -> _T:
        await call.send(request)
        await call.finish()
        reply = await call.recv(reply_cls)
        assert reply is not None
        assert await call.recv(reply_cls) is None
        await call.wait_closed()
        return reply

    return await with_ws(proxy, path, token, body)


async def ws_token(proxy: str, identity: tk.Identity, service: str = "threads.pb.API") -> str:
    async def body(call: WsCall) -> str:
        await call.send(pb.GetTokenRequest(key=str(identity.public)))
        challenge = await call.recv(pb.GetTokenReply)
        assert challenge is not None and challenge.challenge
        await call.send(pb.GetTokenRequest(signature=identity.sign(challenge.challenge)))
        await call.finish()
        reply = await call.recv(pb.GetTokenReply)
        assert reply is not None and reply.token
        assert await call.recv(pb.GetTokenReply) is None
        await call.wait_closed()
        return str(reply.token)

    return await with_ws(proxy, f"/{service}/GetToken", None, body)


API = "/threads.pb.API/"
SCHEMA = {"properties": {"_id": {"type": "string"}, "n": {"type": "integer"}}}


def _run(coro: Awaitable[_T]) -> _T:
    return asyncio.run(asyncio.wait_for(coro, 90))  # type: ignore[arg-type]


@pytest.mark.parametrize("transport", ["http", "ws"])
def test_unary_calls_and_errors(daemon: Daemon, transport: str) -> None:
    async def scenario() -> None:
        proxy = daemon.proxy
        token = await ws_token(proxy, tk.Identity.generate())
        call = http_call if transport == "http" else ws_unary

        async def unary(method: str, request: Any, reply_cls: type[_T]) -> _T:
            return await call(proxy, API + method, request, reply_cls, token)

        db_id = tk.ThreadID.new().to_bytes()
        await unary("NewDB", pb.NewDBRequest(dbID=db_id, name="web"), pb.NewDBReply)
        config = pb.CollectionConfig(
            name="Things",
            schema=json.dumps(SCHEMA).encode(),
            indexes=[pb.Index(path="n", unique=True)],
        )
        await unary(
            "NewCollection",
            pb.NewCollectionRequest(dbID=db_id, config=config),
            pb.NewCollectionReply,
        )
        docs = [json.dumps({"n": i}).encode() for i in range(3)]
        created = await unary(
            "Create",
            pb.CreateRequest(dbID=db_id, collectionName="Things", instances=docs),
            pb.CreateReply,
        )
        ids = list(created.instanceIDs)
        assert len(ids) == 3
        found = await unary(
            "Find",
            pb.FindRequest(dbID=db_id, collectionName="Things", queryJSON=b"{}"),
            pb.FindReply,
        )
        assert sorted(json.loads(raw)["n"] for raw in found.instances) == [0, 1, 2]
        one = await unary(
            "FindByID",
            pb.FindByIDRequest(dbID=db_id, collectionName="Things", instanceID=ids[1]),
            pb.FindByIDReply,
        )
        assert json.loads(one.instance)["n"] == 1
        # an empty reply message still comes as a frame
        deleted = await unary(
            "Delete",
            pb.DeleteRequest(dbID=db_id, collectionName="Things", instanceIDs=[ids[2]]),
            pb.DeleteReply,
        )
        assert deleted.ByteSize() == 0
        dbs = await unary("ListDBs", pb.ListDBsRequest(), pb.ListDBsReply)
        assert db_id in [entry.dbID for entry in dbs.dbs]

        # errors: trailers with go-threads' texts
        with pytest.raises(GrpcWebError) as caught:
            await unary("NewDB", pb.NewDBRequest(dbID=db_id), pb.NewDBReply)
        assert caught.value.message == "db already exists"
        with pytest.raises(GrpcWebError) as caught:
            await unary(
                "NewCollection",
                pb.NewCollectionRequest(dbID=db_id, config=config),
                pb.NewCollectionReply,
            )
        assert caught.value.code == 6 and caught.value.message == "collection already registered"
        with pytest.raises(GrpcWebError) as caught:
            await unary(
                "Create",
                pb.CreateRequest(dbID=db_id, collectionName="Things", instances=[b'{"n": 1}']),
                pb.CreateReply,
            )
        assert caught.value.message.startswith("unique constraint violation")
        with pytest.raises(GrpcWebError) as caught:
            await unary("NoSuchMethod", pb.ListDBsRequest(), pb.ListDBsReply)
        assert caught.value.code == 12  # UNIMPLEMENTED, answered by the proxy itself
        assert caught.value.message == "unknown method NoSuchMethod for service threads.pb.API"
        with pytest.raises(GrpcWebError) as caught:
            await call(proxy, "/no.such.Service/ListDBs", pb.ListDBsRequest(), pb.ListDBsReply)
        assert (caught.value.code, caught.value.message) == (12, "unknown service no.such.Service")
        with pytest.raises(GrpcWebError) as caught:
            await call(proxy, API + "ListDBs", pb.ListDBsRequest(), pb.ListDBsReply, "forged")
        assert caught.value.code == 16  # UNAUTHENTICATED

    async def net() -> None:
        call = http_call if transport == "http" else ws_unary
        reply = await call(
            daemon.proxy,
            "/threads.net.pb.API/GetHostID",
            netpb.GetHostIDRequest(),
            netpb.GetHostIDReply,
        )
        assert reply.peerID

    _run(scenario())
    _run(net())  # the Net API is on the same port


async def _new_db(proxy: str, token: str) -> bytes:
    db_id = tk.ThreadID.new().to_bytes()
    await http_call(
        proxy, API + "NewDB", pb.NewDBRequest(dbID=db_id, name="tx"), pb.NewDBReply, token
    )
    config = pb.CollectionConfig(name="Things", schema=json.dumps(SCHEMA).encode())
    await http_call(
        proxy,
        API + "NewCollection",
        pb.NewCollectionRequest(dbID=db_id, config=config),
        pb.NewCollectionReply,
        token,
    )
    return db_id


async def _find_all(proxy: str, token: str, db_id: bytes) -> list[int]:
    found = await http_call(
        proxy,
        API + "Find",
        pb.FindRequest(dbID=db_id, collectionName="Things", queryJSON=b"{}"),
        pb.FindReply,
        token,
    )
    return sorted(json.loads(raw)["n"] for raw in found.instances)


def test_write_transaction_over_websocket(daemon: Daemon) -> None:
    async def scenario() -> None:
        proxy = daemon.proxy
        token = await ws_token(proxy, tk.Identity.generate())
        db_id = await _new_db(proxy, token)
        start = pb.StartTransactionRequest(dbID=db_id, collectionName="Things")

        async def body(call: WsCall) -> None:
            await call.send(pb.WriteTransactionRequest(startTransactionRequest=start))
            await call.send(
                pb.WriteTransactionRequest(createRequest=pb.CreateRequest(instances=[b'{"n": 7}']))
            )
            created = await call.recv(pb.WriteTransactionReply)
            assert created is not None and len(created.createReply.instanceIDs) == 1
            await call.send(
                pb.WriteTransactionRequest(findByIDRequest=pb.FindByIDRequest(instanceID="nope"))
            )
            missing = await call.recv(pb.WriteTransactionReply)
            assert missing is not None
            assert missing.findByIDReply.transactionError.startswith("instance not found")
            assert await _find_all(proxy, token, db_id) == []  # not committed yet
            await call.finish()
            assert await call.recv(pb.WriteTransactionReply) is None
            await call.wait_closed()

        await with_ws(proxy, API + "WriteTransaction", token, body)
        assert await _find_all(proxy, token, db_id) == [7]

        # a client vanishing mid-transaction: the transaction is discarded
        async def vanish(call: WsCall) -> None:
            await call.send(pb.WriteTransactionRequest(startTransactionRequest=start))
            await call.send(
                pb.WriteTransactionRequest(createRequest=pb.CreateRequest(instances=[b'{"n": 8}']))
            )
            assert await call.recv(pb.WriteTransactionReply) is not None

        await with_ws(proxy, API + "WriteTransaction", token, vanish)
        await asyncio.sleep(1.0)
        assert await _find_all(proxy, token, db_id) == [7]

    _run(scenario())


def test_listen_over_websocket(daemon: Daemon) -> None:
    async def scenario() -> None:
        proxy = daemon.proxy
        token = await ws_token(proxy, tk.Identity.generate())
        db_id = await _new_db(proxy, token)

        async def body(call: WsCall) -> None:
            await call.send(
                pb.ListenRequest(
                    dbID=db_id, filters=[pb.ListenRequest.Filter(collectionName="Things")]
                )
            )
            await call.finish()
            await asyncio.sleep(0.5)  # let the listener register
            created = await http_call(
                proxy,
                API + "Create",
                pb.CreateRequest(dbID=db_id, collectionName="Things", instances=[b'{"n": 1}']),
                pb.CreateReply,
                token,
            )
            event = await call.recv(pb.ListenReply)
            assert event is not None
            assert event.action == 0 and event.instanceID == created.instanceIDs[0]
            assert json.loads(event.instance)["n"] == 1
            # the client closes the socket to end the stream

        await with_ws(proxy, API + "Listen", token, body)
        # the daemon keeps serving after the listener went away
        assert await _find_all(proxy, token, db_id) == [1]

    _run(scenario())


def test_cors_preflight_and_bad_requests(daemon: Daemon) -> None:
    async def scenario() -> None:
        proxy = daemon.proxy
        origin = "http://example.org:8080"
        asked = "authorization,content-type,x-grpc-web,x-user-agent,x-textile-thread"
        async with aiohttp.ClientSession() as session:
            async with session.options(
                f"http://{proxy}{API}NewDB",
                headers={
                    "Origin": origin,
                    "Access-Control-Request-Method": "POST",
                    "Access-Control-Request-Headers": asked,
                },
            ) as resp:
                assert resp.status in (200, 204)
                assert resp.headers["Access-Control-Allow-Origin"] == origin
                assert "POST" in resp.headers["Access-Control-Allow-Methods"]
                allowed = resp.headers["Access-Control-Allow-Headers"].lower()
                for header in asked.split(","):
                    assert header in allowed
            async with session.post(
                f"http://{proxy}{API}ListDBs",
                data=encode_frame(b""),
                headers={**_headers(None), "Origin": origin},
            ) as resp:
                assert resp.status == 200
                assert resp.headers["Access-Control-Allow-Origin"] == origin
                assert "grpc-status" in resp.headers["Access-Control-Expose-Headers"]
                await resp.read()
            # a malformed protobuf comes back as a trailer, and the daemon keeps serving
            async with session.post(
                f"http://{proxy}{API}NewDB",
                data=encode_frame(b"\xff\xff\xff"),
                headers=_headers(None),
            ) as resp:
                frames = parse_frames(bytearray(await resp.read()))
                trailer = _decode_block(frames[-1][1])
                assert frames[-1][0] == 0x80 and trailer["grpc-status"] != "0"
            # a truncated frame
            async with session.post(
                f"http://{proxy}{API}NewDB",
                data=struct.pack(">BI", 0, 100) + b"abc",
                headers=_headers(None),
            ) as resp:
                assert resp.headers["grpc-status"] == "3"
            async with session.post(f"http://{proxy}/not-a-method", data=b"") as resp:
                assert resp.status == 404
        reply = await http_call(proxy, API + "ListDBs", pb.ListDBsRequest(), pb.ListDBsReply)
        assert reply is not None

    _run(scenario())


def test_listen_over_http_streams_chunks(daemon: Daemon) -> None:
    async def scenario() -> None:
        proxy = daemon.proxy
        token = await ws_token(proxy, tk.Identity.generate(), "threads.net.pb.API")
        db_id = await _new_db(proxy, token)
        request = pb.ListenRequest(
            dbID=db_id, filters=[pb.ListenRequest.Filter(collectionName="Things")]
        )

        async def create_later() -> Any:
            await asyncio.sleep(0.5)  # let the listener register
            return await http_call(
                proxy,
                API + "Create",
                pb.CreateRequest(dbID=db_id, collectionName="Things", instances=[b'{"n": 2}']),
                pb.CreateReply,
                token,
            )

        # the reply headers come as soon as the daemon listens, before any event: post()
        # returns with them, and only then is the document created
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                f"http://{proxy}{API}Listen",
                data=encode_frame(request.SerializeToString()),
                headers=_headers(token),
            ) as resp,
        ):
            assert resp.status == 200 and resp.headers["content-type"] == CT
            assert "grpc-status" not in resp.headers  # not a trailers-only reply
            created = await create_later()
            buffer = bytearray()
            frames: list[tuple[int, bytes]] = []
            while not frames:
                chunk = await resp.content.readany()
                assert chunk, "the stream ended before the event"
                buffer.extend(chunk)
                frames = parse_frames(buffer)
            event = pb.ListenReply()
            event.ParseFromString(frames[0][1])
            assert frames[0][0] == 0 and event.instanceID == created.instanceIDs[0]
        assert await _find_all(proxy, token, db_id) == [2]

    _run(scenario())


def _too_big(size: int) -> bytes:
    """A NewDB request whose name makes it ``size`` bytes or more."""
    return pb.NewDBRequest(dbID=tk.ThreadID.new().to_bytes(), name="x" * size).SerializeToString()


LIMIT = 16 * 1024 * 1024  # the daemon's message limit (threadkit.api.server.DEFAULT_MAX_MESSAGE)


def test_oversized_requests_get_resource_exhausted(daemon: Daemon) -> None:
    async def scenario() -> None:
        proxy = daemon.proxy
        payload = _too_big(LIMIT + 10)
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                f"http://{proxy}{API}NewDB", data=encode_frame(payload), headers=_headers(None)
            ) as resp,
        ):
            assert resp.status == 200
            assert resp.headers["grpc-status"] == "8"  # RESOURCE_EXHAUSTED
            message = _unquote(resp.headers["grpc-message"])
            assert message == f"grpc: received message larger than max ({len(payload)} vs. {LIMIT})"
            frames = parse_frames(bytearray(await resp.read()))
            assert [flag for flag, _ in frames] == [0x80]

        async def body(call: WsCall) -> None:
            await call.ws.send_bytes(b"\x00" + encode_frame(payload))
            with pytest.raises(GrpcWebError) as caught:
                await call.recv(pb.NewDBReply)
            assert caught.value.code == 8 and "larger than max" in caught.value.message
            await call.wait_closed()

        await with_ws(proxy, API + "NewDB", None, body)
        # and the daemon goes on serving, on both transports
        assert await http_call(proxy, API + "ListDBs", pb.ListDBsRequest(), pb.ListDBsReply)
        assert await ws_unary(proxy, API + "ListDBs", pb.ListDBsRequest(), pb.ListDBsReply)

    _run(scenario())


def test_websocket_keep_alive_pings() -> None:
    """The proxy pings an idle websocket every ``keep_alive`` seconds (threadsd's setting)."""
    from threadkit.api.proxy import WebProxy
    from threadkit.api.server import APIServer

    async def listen_for_pings(port: int) -> int:
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(
                f"ws://127.0.0.1:{port}{API}Listen", protocols=("grpc-websockets",), autoping=False
            ) as ws,
        ):
            await ws.send_bytes(b"content-type: application/grpc-web+proto\r\n")
            pings = 0
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 1.0
            while loop.time() < deadline:
                try:
                    msg = await ws.receive(max(0.01, deadline - loop.time()))
                except TimeoutError:
                    break
                if msg.type == aiohttp.WSMsgType.PING:
                    pings += 1
                    await ws.pong(msg.data)
            return pings

    with tk.Peer(memory=True, network=False) as peer:
        server = APIServer(peer, "127.0.0.1:0")
        server.start()
        pinging = WebProxy(f"127.0.0.1:{server.port}", "127.0.0.1", 0, keep_alive=0.2)
        silent = WebProxy(f"127.0.0.1:{server.port}", "127.0.0.1", 0, keep_alive=0)
        pinging.start()
        silent.start()
        try:
            assert _run(listen_for_pings(pinging.port)) >= 3
            assert _run(listen_for_pings(silent.port)) == 0
        finally:
            pinging.stop()
            silent.stop()
            server.stop()
