"""Bad input to the daemon: each gets a clear status and the daemon keeps serving."""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator

import grpc
import pytest
from api_procs import Daemon

import threadkit as tk
from threadkit.api.proto import threads_pb2 as pb
from threadkit.api.proto import threads_pb2_grpc as pb_grpc
from threadkit.core.tokens import TokenIssuer

pytestmark = pytest.mark.slow


@pytest.fixture
def channel(daemon: Daemon) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(
        daemon.target, options=[("grpc.max_send_message_length", 64 * 1024 * 1024)]
    ) as ch:
        yield ch


@pytest.fixture
def client(daemon: Daemon) -> Iterator[tk.Client]:
    with tk.Client(daemon.target, timeout=20) as c:
        yield c


def _still_serving(channel: grpc.Channel) -> None:
    pb_grpc.APIStub(channel).ListDBs(pb.ListDBsRequest(), timeout=20)


def _code(call: object) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as caught:
        call()  # type: ignore[operator]
    return caught.value.code(), caught.value.details() or ""


def test_malformed_protobuf(channel: grpc.Channel) -> None:
    raw = channel.unary_unary("/threads.pb.API/NewDB")
    code, _ = _code(lambda: raw(b"\xff\xff\xff\xff\x0fnot protobuf", timeout=20))
    assert code is grpc.StatusCode.INTERNAL
    _still_serving(channel)
    # well-formed protobuf carrying nonsense: a clear INVALID_ARGUMENT
    stub = pb_grpc.APIStub(channel)
    code, details = _code(lambda: stub.NewDB(pb.NewDBRequest(dbID=b"\x01\x02"), timeout=20))
    assert code is grpc.StatusCode.INVALID_ARGUMENT and details
    code, details = _code(lambda: stub.GetDBInfo(pb.GetDBInfoRequest(), timeout=20))
    assert code is grpc.StatusCode.INVALID_ARGUMENT and "dbID" in details
    _still_serving(channel)


def test_unknown_method(channel: grpc.Channel) -> None:
    for path in ("/threads.pb.API/NoSuchMethod", "/no.such.Service/Call"):
        code, _ = _code(lambda p=path: channel.unary_unary(p)(b"", timeout=20))
        assert code is grpc.StatusCode.UNIMPLEMENTED
    _still_serving(channel)


def test_missing_forged_and_foreign_tokens(channel: grpc.Channel, client: tk.Client) -> None:
    stub = pb_grpc.APIStub(channel)
    request = pb.ListDBsRequest()
    other_host = TokenIssuer(tk.Identity.generate())
    foreign = other_host.issue_for(tk.Identity.generate().public)
    good = client.get_token(tk.Identity.generate())
    header, payload, _ = good.split(".")
    forged = f"{header}.{payload}.{'A' * 86}"
    for value in (f"bearer {foreign}", f"bearer {forged}", "bearer garbage", "Basic abc", "bearer"):
        code, details = _code(
            lambda v=value: stub.ListDBs(request, metadata=[("authorization", v)], timeout=20)
        )
        assert code is grpc.StatusCode.UNAUTHENTICATED, (value, details)
    # and the token flow refuses a signature by another key
    claimed, signer = tk.Identity.generate(), tk.Identity.generate()
    requests: queue.Queue[pb.GetTokenRequest | None] = queue.Queue()
    requests.put(pb.GetTokenRequest(key=str(claimed.public)))

    def outgoing() -> Iterator[pb.GetTokenRequest]:
        while (item := requests.get()) is not None:
            yield item

    def flow() -> None:
        for reply in stub.GetToken(outgoing(), timeout=20):
            requests.put(pb.GetTokenRequest(signature=signer.sign(reply.challenge)))
            requests.put(None)

    code, _ = _code(flow)
    requests.put(None)
    assert code is grpc.StatusCode.UNAUTHENTICATED
    # no token: the host's identity; a good token works
    stub.ListDBs(request, timeout=20)
    stub.ListDBs(request, metadata=[("authorization", f"bearer {good}")], timeout=20)


def test_bad_stream_openings(channel: grpc.Channel) -> None:
    stub = pb_grpc.APIStub(channel)
    code, _ = _code(
        lambda: list(stub.GetToken(iter([pb.GetTokenRequest(signature=b"x")]), timeout=20))
    )
    assert code is grpc.StatusCode.INVALID_ARGUMENT
    create = pb.WriteTransactionRequest(createRequest=pb.CreateRequest())
    code, _ = _code(lambda: list(stub.WriteTransaction(iter([create]), timeout=20)))
    assert code is grpc.StatusCode.INVALID_ARGUMENT
    code, _ = _code(lambda: list(stub.ReadTransaction(iter([]), timeout=20)))
    assert code is grpc.StatusCode.INVALID_ARGUMENT
    _still_serving(channel)


def test_bad_query_and_documents(client: tk.Client, channel: grpc.Channel) -> None:
    db = client.new_db("badq")
    db.new_collection("C")
    stub = pb_grpc.APIStub(channel)
    raw_id = db.id.to_bytes()
    for query in (b"{not json", b'{"ands": 5}', b'{"ands":[{"fieldPath":"a","operation":9}]}'):
        code, details = _code(
            lambda q=query: stub.Find(
                pb.FindRequest(dbID=raw_id, collectionName="C", queryJSON=q), timeout=20
            )
        )
        assert code is grpc.StatusCode.INVALID_ARGUMENT, details
    for instance in (b"\xff", b"[1, 2]", b"{"):
        code, _ = _code(
            lambda i=instance: stub.Create(
                pb.CreateRequest(dbID=raw_id, collectionName="C", instances=[i]), timeout=20
            )
        )
        assert code is grpc.StatusCode.INVALID_ARGUMENT
    code, details = _code(
        lambda: stub.Create(pb.CreateRequest(dbID=raw_id, collectionName="Nope"), timeout=20)
    )
    assert code is grpc.StatusCode.NOT_FOUND and details.startswith("collection not found")
    assert db["C"].find() == []
    client.delete_db(db.id)


def test_oversized_message(client: tk.Client, channel: grpc.Channel) -> None:
    db = client.new_db("big")
    db.new_collection("C")
    stub = pb_grpc.APIStub(channel)
    huge = json.dumps({"blob": "x" * (17 * 1024 * 1024)}).encode()
    code, _ = _code(
        lambda: stub.Create(
            pb.CreateRequest(dbID=db.id.to_bytes(), collectionName="C", instances=[huge]),
            timeout=60,
        )
    )
    assert code is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert db["C"].find() == []
    _still_serving(channel)
    client.delete_db(db.id)


def test_cancelled_transaction_is_discarded(client: tk.Client, channel: grpc.Channel) -> None:
    db = client.new_db("cancel")
    coll = db.new_collection("C")
    txn = coll.write_txn().__enter__()
    txn.create({"_id": "lost", "v": 1})
    assert txn._stream is not None
    txn._stream.cancel()  # the client goes away without half-closing
    time.sleep(0.5)
    assert not coll.has("lost")
    coll.create({"_id": "kept"})
    assert coll.has("kept")
    client.delete_db(db.id)


_VANISHING = textwrap.dedent(
    """
    import sys, time
    import threadkit as tk
    client = tk.Client(sys.argv[1])
    coll = client.get_db(sys.argv[2])["C"]
    txn = coll.write_txn().__enter__()
    txn.create({"_id": "ghost"})
    print("ready", flush=True)
    time.sleep(60)
    """
)


def test_client_killed_mid_transaction(client: tk.Client, daemon: Daemon) -> None:
    db = client.new_db("vanish")
    coll = db.new_collection("C")
    child = subprocess.Popen(
        [sys.executable, "-c", _VANISHING, daemon.target, str(db.id)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
    finally:
        child.kill()
        child.wait(10)
    time.sleep(1.0)
    assert not coll.has("ghost")
    coll.create({"_id": "after"})
    assert [d["_id"] for d in coll.find()] == ["after"]
    client.delete_db(db.id)
