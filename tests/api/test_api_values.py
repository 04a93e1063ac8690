"""The value model through a real daemon: bad values, ids, names, schemas and queries get
INVALID_ARGUMENT and write nothing; documents outside the model in an old repository are
skipped by Find and answered with DATA_LOSS by FindByID, never an INTERNAL for the lot."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import cbor2
import grpc
import pytest
from api_procs import Daemon

import threadkit as tk
from threadkit.api.proto import threads_pb2 as pb
from threadkit.api.proto import threads_pb2_grpc as pb_grpc
from threadkit.db import dockeys

pytestmark = pytest.mark.slow


def _code(call: object) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as caught:
        call()  # type: ignore[operator]
    return caught.value.code(), caught.value.details() or ""


@pytest.fixture
def stub(daemon: Daemon) -> Iterator[pb_grpc.APIStub]:
    with grpc.insecure_channel(daemon.target) as channel:
        yield pb_grpc.APIStub(channel)


def test_bad_values_ids_names_schemas_and_queries(daemon: Daemon, stub: pb_grpc.APIStub) -> None:
    with tk.Client(daemon.target, timeout=20) as client:
        db = client.new_db("values")
        coll = db.new_collection("C")
        coll.create({"_id": "kept"})
        raw_id = db.id.to_bytes()
        deep = '{"a":' * 600 + "1" + "}" * 600
        instances = [
            b'{"v": NaN}',
            b'{"v": Infinity}',
            b'{"v": 1e999}',
            b'{"v": 18446744073709551616}',
            b'{"v": "\\ud800"}',
            deep.encode(),  # was INTERNAL (RecursionError)
            b"[" * 100_000,  # was INTERNAL (RecursionError in the JSON parser)
            b'{"_id": "' + b"x" * 5000 + b'"}',  # was UNKNOWN (MDB_BAD_VALSIZE)
        ]
        for instance in instances:
            for method, request in (
                (stub.Create, pb.CreateRequest),
                (stub.Save, pb.SaveRequest),
            ):
                code, details = _code(
                    lambda m=method, r=request, i=instance: m(
                        r(dbID=raw_id, collectionName="C", instances=[i]), timeout=20
                    )
                )
                assert code is grpc.StatusCode.INVALID_ARGUMENT, (instance[:40], details)
        with pytest.raises(tk.errors.InvalidDocument, match="NaN at v"):
            coll.create({"v": float("nan")})
        # a transaction's error travels as text only (ThreadDB's transactionError)
        with pytest.raises(tk.errors.ThreadkitError, match="NaN at v"), coll.write_txn() as txn:
            txn.create({"v": float("nan")})
        with pytest.raises(tk.errors.InvalidDocument, match="_id"):
            coll.find_by_id("x" * 5000)
        with pytest.raises(tk.errors.InvalidName, match="at most 64"):
            db.new_collection("n" * 600)  # was UNKNOWN (MDB_BAD_VALSIZE)
        config = pb.CollectionConfig(name="S", schema=b"[" * 100_000)
        code, _ = _code(
            lambda: stub.NewCollection(pb.NewCollectionRequest(dbID=raw_id, config=config))
        )
        assert code is grpc.StatusCode.INVALID_ARGUMENT
        code, _ = _code(
            lambda: stub.Find(
                pb.FindRequest(dbID=raw_id, collectionName="C", queryJSON=b"[" * 100_000),
                timeout=20,
            )
        )
        assert code is grpc.StatusCode.INVALID_ARGUMENT
        assert [d["_id"] for d in coll.find()] == ["kept"]
        assert [c.name for c in db.list_collections()] == ["C"]
        client.delete_db(db.id)


def test_old_documents_outside_the_model(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    with tk.Peer(repo) as peer:
        db = peer.new_db("old")
        db.new_collection("C").create({"_id": "good", "v": 1})
        coll = dockeys.coll_key(db.prefix, "C")
        with db._repo.transaction(write=True) as txn:
            for instance_id, value in (("nan", float("nan")), ("set", {1, 2}), ("raw", b"x")):
                doc = cbor2.dumps({"_id": instance_id, "v": value})  # as an old version stored
                txn.put(dockeys.doc_key(coll, instance_id), doc, db=db.engine.tables.docs)
        db_id = db.id
    daemon = Daemon(repo).wait_ready()
    try:
        with tk.Client(daemon.target, timeout=20) as client:
            old = client.get_db(db_id)["C"]
            assert [d["_id"] for d in old.find()] == ["good"]  # was INTERNAL for the lot
            with pytest.raises(tk.errors.UnreadableDocument, match="JSON cannot carry"):
                old.find_by_id("nan")
            with old.read_txn() as txn:
                assert [d["_id"] for d in txn.find()] == ["good"]
            assert old.find_by_id("good")["v"] == 1
            old.create({"_id": "new"})
            assert [d["_id"] for d in old.find()] == ["good", "new"]
        with grpc.insecure_channel(daemon.target) as channel:
            stub = pb_grpc.APIStub(channel)
            code, details = _code(
                lambda: stub.FindByID(
                    pb.FindByIDRequest(dbID=db_id.to_bytes(), collectionName="C", instanceID="set"),
                    timeout=20,
                )
            )
            assert code is grpc.StatusCode.DATA_LOSS, details
    finally:
        assert daemon.stop() == 0, daemon.log()
    assert "skipped in a reply" in daemon.log()
