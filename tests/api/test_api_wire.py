"""The daemon driven with raw gRPC stubs, sending what ThreadDB's JS client sends."""

from __future__ import annotations

import contextlib
import json
import queue
import threading
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from api_procs import Daemon

import threadkit as tk
from threadkit.api.proto import threads_pb2 as pb
from threadkit.api.proto import threads_pb2_grpc as pb_grpc
from threadkit.api.proto import threadsnet_pb2 as netpb
from threadkit.api.proto import threadsnet_pb2_grpc as netpb_grpc
from threadkit.core.addr import addr_from_bytes

pytestmark = pytest.mark.slow


@pytest.fixture
def channel(daemon: Daemon) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(daemon.target) as ch:
        yield ch


def _token(stub: Any, identity: tk.Identity) -> str:
    requests: queue.Queue[Any] = queue.Queue()
    requests.put(pb.GetTokenRequest(key=str(identity.public)))

    def outgoing() -> Iterator[Any]:
        while (item := requests.get()) is not None:
            yield item

    token = ""
    for reply in stub.GetToken(outgoing(), timeout=20):
        if reply.WhichOneof("payload") == "challenge":
            requests.put(pb.GetTokenRequest(signature=identity.sign(reply.challenge)))
            requests.put(None)
        else:
            token = reply.token
    requests.put(None)
    return token


def _crit(path: str, op: int, value: Any) -> dict[str, Any]:
    kind = "string" if isinstance(value, str) else "float"
    return {"fieldPath": path, "operation": op, "value": {kind: value}}


def test_js_style_calls(channel: grpc.Channel) -> None:
    stub = pb_grpc.APIStub(channel)
    me = tk.Identity.generate()
    md = [("authorization", f"bearer {_token(stub, me)}")]
    db_id = tk.ThreadID.new().to_bytes()
    stub.NewDB(pb.NewDBRequest(dbID=db_id, name="js"), metadata=md, timeout=20)
    schema = {"properties": {"_id": {"type": "string"}, "n": {"type": "integer"}}}
    config = pb.CollectionConfig(
        name="Things",
        schema=json.dumps(schema).encode(),
        indexes=[pb.Index(path="n", unique=True)],
    )
    stub.NewCollection(pb.NewCollectionRequest(dbID=db_id, config=config), metadata=md)

    got: list[Any] = []
    listen = stub.Listen(
        pb.ListenRequest(
            dbID=db_id,
            filters=[pb.ListenRequest.Filter(collectionName="Things", action=0)],
        ),
        metadata=md,
    )
    listen.initial_metadata()

    def drain() -> None:
        with contextlib.suppress(grpc.RpcError):
            got.extend(listen)

    pump = threading.Thread(target=drain, daemon=True)
    pump.start()

    docs = [json.dumps({"n": i}).encode() for i in range(5)]
    ids = list(
        stub.Create(
            pb.CreateRequest(dbID=db_id, collectionName="Things", instances=docs), metadata=md
        ).instanceIDs
    )
    assert len(ids) == 5

    def find(query: dict[str, Any]) -> list[int]:
        reply = stub.Find(
            pb.FindRequest(
                dbID=db_id, collectionName="Things", queryJSON=json.dumps(query).encode()
            ),
            metadata=md,
        )
        return [json.loads(raw)["n"] for raw in reply.instances]

    assert sorted(find({})) == [0, 1, 2, 3, 4]
    assert find({"ands": [_crit("n", 0, 3.0)], "ors": []}) == [3]
    assert sorted(find({"ands": [_crit("n", 2, 2.0)], "ors": []})) == [3, 4]  # 2 is Gt
    assert sorted(find({"ands": [_crit("n", 1, 2.0)], "ors": []})) == [0, 1, 3, 4]  # 1 is Ne
    ored = {"ands": [_crit("n", 0, 0.0)], "ors": [{"ands": [_crit("n", 0, 4.0)], "ors": []}]}
    assert sorted(find(ored)) == [0, 4]
    page = {"ands": [], "ors": [], "sort": {"fieldPath": "n", "desc": True}, "skip": 1, "limit": 2}
    assert find(page) == [3, 2]
    assert find({"Ands": [_crit("n", 5, 1.0)], "Ors": []}) == [0, 1]  # Go-style keys

    doc = json.loads(
        stub.FindByID(
            pb.FindByIDRequest(dbID=db_id, collectionName="Things", instanceID=ids[0]), metadata=md
        ).instance
    )
    doc["n"] = 10
    stub.Save(
        pb.SaveRequest(dbID=db_id, collectionName="Things", instances=[json.dumps(doc).encode()]),
        metadata=md,
    )
    stub.Delete(
        pb.DeleteRequest(dbID=db_id, collectionName="Things", instanceIDs=[ids[1]]), metadata=md
    )
    has = stub.Has(
        pb.HasRequest(dbID=db_id, collectionName="Things", instanceIDs=[ids[0], ids[1]]),
        metadata=md,
    )
    assert has.exists is False  # true only when all exist

    with pytest.raises(grpc.RpcError) as caught:
        stub.Create(
            pb.CreateRequest(dbID=db_id, collectionName="Things", instances=[b'{"n": 3}']),
            metadata=md,
        )
    assert caught.value.details().startswith("unique constraint violation")
    with pytest.raises(grpc.RpcError) as caught:
        stub.Verify(
            pb.VerifyRequest(dbID=db_id, collectionName="Things", instances=[b'{"n": "x"}']),
            metadata=md,
        )
    assert caught.value.details().startswith("instance doesn't correspond to schema")
    with pytest.raises(grpc.RpcError) as caught:
        stub.NewCollection(pb.NewCollectionRequest(dbID=db_id, config=config), metadata=md)
    assert caught.value.code() is grpc.StatusCode.ALREADY_EXISTS
    assert caught.value.details() == "collection already registered"
    with pytest.raises(grpc.RpcError) as caught:
        stub.NewDB(pb.NewDBRequest(dbID=db_id), metadata=md)
    assert caught.value.details() == "db already exists"

    # a write transaction: one reply per request, errors in transactionError, commit on half-close
    start = pb.StartTransactionRequest(dbID=db_id, collectionName="Things")
    requests: queue.Queue[Any] = queue.Queue()
    requests.put(pb.WriteTransactionRequest(startTransactionRequest=start))

    def outgoing() -> Iterator[Any]:
        while (item := requests.get()) is not None:
            yield item

    replies = iter(stub.WriteTransaction(outgoing(), metadata=md))
    requests.put(
        pb.WriteTransactionRequest(createRequest=pb.CreateRequest(instances=[b'{"n": 20}']))
    )
    created = next(replies).createReply
    assert not created.transactionError and len(created.instanceIDs) == 1
    requests.put(pb.WriteTransactionRequest(findByIDRequest=pb.FindByIDRequest(instanceID="nope")))
    assert next(replies).findByIDReply.transactionError.startswith("instance not found")
    requests.put(
        pb.WriteTransactionRequest(verifyRequest=pb.VerifyRequest(instances=[b'{"n": "x"}']))
    )
    assert next(replies).verifyReply.transactionError.startswith("instance doesn't correspond")
    requests.put(None)
    assert list(replies) == []
    assert 20 in find({})

    # a read transaction
    rrequests: queue.Queue[Any] = queue.Queue()
    rrequests.put(pb.ReadTransactionRequest(startTransactionRequest=start))

    def routgoing() -> Iterator[Any]:
        while (item := rrequests.get()) is not None:
            yield item

    rreplies = iter(stub.ReadTransaction(routgoing(), metadata=md))
    rrequests.put(
        pb.ReadTransactionRequest(hasRequest=pb.HasRequest(instanceIDs=list(created.instanceIDs)))
    )
    assert next(rreplies).hasReply.exists is True
    rrequests.put(pb.ReadTransactionRequest(findRequest=pb.FindRequest(queryJSON=b"{}")))
    assert len(next(rreplies).findReply.instances) == 5
    rrequests.put(None)
    assert list(rreplies) == []

    listen.cancel()
    pump.join(10)
    actions = [(r.action, r.instanceID) for r in got]
    assert actions[:5] == [(0, i) for i in ids]
    assert (1, ids[0]) in actions and (2, ids[1]) in actions
    deleted = next(r for r in got if r.action == 2)
    assert deleted.instance == b""

    # info calls carry what the JS client parses
    info = stub.GetDBInfo(pb.GetDBInfoRequest(dbID=db_id), metadata=md)
    assert len(info.key) == 64 and info.name == "js"
    assert info.addrs and all(
        addr_from_bytes(a).endswith("/thread/" + str(tk.ThreadID.from_bytes(db_id)))
        for a in info.addrs
    )
    listed = stub.ListCollections(pb.ListCollectionsRequest(dbID=db_id), metadata=md)
    assert json.loads(listed.collections[0].schema)["properties"]["n"] == {"type": "integer"}
    indexes = stub.GetCollectionIndexes(
        pb.GetCollectionIndexesRequest(dbID=db_id, name="Things"), metadata=md
    )
    assert [(i.path, i.unique) for i in indexes.indexes] == [("n", True)]
    dbs = stub.ListDBs(pb.ListDBsRequest(), metadata=md)
    assert db_id in [d.dbID for d in dbs.dbs]
    stub.DeleteDB(pb.DeleteDBRequest(dbID=db_id), metadata=md)
    with pytest.raises(grpc.RpcError) as caught:
        stub.GetDBInfo(pb.GetDBInfoRequest(dbID=db_id), metadata=md)
    assert caught.value.code() is grpc.StatusCode.NOT_FOUND
    assert caught.value.details().startswith("db not found")


def test_net_api(channel: grpc.Channel, daemon: Daemon) -> None:
    stub = netpb_grpc.APIStub(channel)
    host = stub.GetHostID(netpb.GetHostIDRequest(), timeout=20)
    client = tk.Client(daemon.target)
    assert client.host_id == daemon.peer_id
    assert host.peerID
    token = _token(stub, tk.Identity.generate())
    assert token.count(".") == 2

    db = client.new_db("net")
    feed = stub.Subscribe(netpb.SubscribeRequest(threadIDs=[db.id.to_bytes()]))
    feed.initial_metadata()
    coll = db.new_collection("Things")
    coll.create({"a": 1})
    first = next(iter(feed))
    assert first.threadID == db.id.to_bytes() and first.record.recordNode
    feed.cancel()

    info = stub.GetThread(netpb.GetThreadRequest(threadID=db.id.to_bytes()))
    assert info.threadID == db.id.to_bytes() and len(info.threadKey) == 64
    assert len(info.logs) == 1 and info.logs[0].head and info.logs[0].counter
    from threadkit.core.cid import cid_to_string

    record = stub.GetRecord(
        netpb.GetRecordRequest(threadID=db.id.to_bytes(), recordID=info.logs[0].head)
    )
    assert record.record.recordNode and cid_to_string(info.logs[0].head)
    stub.PullThread(netpb.PullThreadRequest(threadID=db.id.to_bytes()))
    bare = stub.CreateThread(netpb.CreateThreadRequest(threadID=tk.ThreadID.new().to_bytes()))
    assert len(bare.threadKey) == 64 and len(bare.logs) == 1 and bare.addrs
    made = stub.CreateRecord(netpb.CreateRecordRequest(threadID=bare.threadID, body=b"\xa0"))
    assert made.threadID == bare.threadID and made.record.recordNode
    stub.DeleteThread(netpb.DeleteThreadRequest(threadID=bare.threadID))
    with pytest.raises(grpc.RpcError) as caught:
        stub.GetThread(netpb.GetThreadRequest(threadID=bare.threadID))
    assert caught.value.code() is grpc.StatusCode.NOT_FOUND
    client.delete_db(db.id)
    client.close()
