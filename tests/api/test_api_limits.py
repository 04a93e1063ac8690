"""The daemon's stream budget under attack: real daemons, real gRPC on 127.0.0.1.

Idle streams opened without a token must not take the workers unary calls need; a
stream beyond the budget is refused at once with RESOURCE_EXHAUSTED; a transaction or
GetToken whose client goes silent is ended (and a write transaction discarded).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from api_procs import Daemon

import threadkit as tk
from tests.e2e.waits import poll_until, wait_for_docs
from threadkit.api.proto import threads_pb2 as pb
from threadkit.api.proto import threads_pb2_grpc as pb_grpc
from threadkit.api.proto import threadsnet_pb2 as netpb
from threadkit.api.proto import threadsnet_pb2_grpc as netpb_grpc

pytestmark = pytest.mark.slow

RSS_BUDGET = 400 << 20
"""docs/daemon.md: the daemon's resident memory stays under this with every budget full."""


def rss(daemon: Daemon) -> int:
    """The daemon's resident memory in bytes."""
    for line in Path(f"/proc/{daemon.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def until(check: Any, timeout: float = 30.0, what: str = "condition") -> None:
    """For the daemon's stream slots, which no event announces (tests/e2e/waits.py)."""
    if not poll_until(check, timeout, interval=0.1):
        raise AssertionError(f"{what} not met in {timeout}s")


def arrives(db: Any, check: Any, what: str, timeout: float = 30.0) -> None:
    """Wait for ``check()`` on the daemon's database ``db``, woken by its Listen feed."""
    if not wait_for_docs(db, check, timeout):
        raise AssertionError(f"{what} not met in {timeout}s")


def settle(count: Any, quiet: float = 1.0, timeout: float = 15.0) -> None:
    """Wait until ``count()`` has not changed for ``quiet`` seconds (at most ``timeout``)."""
    deadline = time.monotonic() + timeout
    last, since = count(), time.monotonic()
    while time.monotonic() < deadline and time.monotonic() - since < quiet:
        time.sleep(0.1)
        now = count()
        if now != last:
            last, since = now, time.monotonic()


CLIENT_DEADLINE = 60.0
"""Seconds a test's own gRPC stream may last (the daemon's limits under test are shorter)."""


def silent(hold: threading.Event, *first: Any) -> Iterator[Any]:
    """A request stream that sends ``first`` and then nothing until ``hold`` is set."""
    yield from first
    hold.wait()


def outcome(call: Any) -> grpc.StatusCode | None:
    """A finished call's status code; None while it runs."""
    return call.code() if call.done() else None


def start_txn(dbid: bytes, coll: str) -> pb.WriteTransactionRequest:
    return pb.WriteTransactionRequest(
        startTransactionRequest=pb.StartTransactionRequest(dbID=dbid, collectionName=coll)
    )


def test_idle_streams_leave_unary_calls_and_replication_served(tmp_path: Path) -> None:
    """Issue #10 item 4: 40 idle Listen and 40 idle WriteTransaction streams, no token."""
    a = Daemon(tmp_path / "a").wait_ready()
    b = Daemon(tmp_path / "b").wait_ready()
    hold = threading.Event()
    channels: list[grpc.Channel] = []
    calls: list[Any] = []
    try:
        ca, cb = tk.Client(a.target, timeout=30), tk.Client(b.target, timeout=30)
        db = ca.new_db("shared")
        notes = db.new_collection("Notes")
        notes.create({"_id": "before", "text": "written before the attack"})
        info = db.info()
        joined = cb.new_db_from_addr(info.addrs[0], info.key, timeout=30)
        arrives(joined, lambda: joined["Notes"].has("before"), "b has the first note")
        rss_before = rss(a)

        # the stranger: no token, a handful of connections, 80 streams that send nothing
        channels = [grpc.insecure_channel(a.target) for _ in range(4)]
        stubs = [pb_grpc.APIStub(ch) for ch in channels]
        dbid = db.id.to_bytes()
        for i in range(40):
            stub = stubs[i % len(stubs)]
            calls.append(stub.Listen(pb.ListenRequest(dbID=dbid)))
            calls.append(stub.WriteTransaction(silent(hold)))
        settle(lambda: sum(outcome(c) is not None for c in calls))

        # a normal client is served at once: unary calls, a write reaching the other daemon
        with tk.Client(a.target, timeout=10) as fresh:
            assert [d.id for d in fresh.list_dbs()] == [db.id]
            fresh.get_db(db.id)["Notes"].create({"_id": "during", "text": "under attack"})
        arrives(joined, lambda: joined["Notes"].has("during"), "b has the note written during")

        # the default budget: 32 streams per client address; the rest were refused at once
        ended = [c for c in calls if c.done()]
        assert len(ended) == len(calls) - 32
        assert {c.code() for c in ended} == {grpc.StatusCode.RESOURCE_EXHAUSTED}
        assert "too many open streams from 127.0.0.1 (limit 32, apiMaxClientStreams)" in (
            ended[0].details()
        )
        assert dict(ended[0].trailing_metadata())["x-threadkit-error"] == "LimitExceeded"
        with pytest.raises(tk.errors.LimitExceeded, match="apiMaxClientStreams"):
            ca.get_db(db.id).listen().get(timeout=10)
        assert rss(a) < RSS_BUDGET, (rss_before, rss(a))

        # the stranger leaves: every slot comes back
        hold.set()
        for call in calls:
            call.cancel()
        for ch in channels:
            ch.close()
        with ca.get_db(db.id).listen(collection="Notes") as feed:
            notes.create({"_id": "after", "text": "after the attack"})
            assert feed.get(timeout=10).instance_id == "after"
        assert sorted(d["_id"] for d in notes.find()) == ["after", "before", "during"]
        ca.close()
        cb.close()
    finally:
        hold.set()
        for ch in channels:
            ch.close()
        assert a.stop() == 0, a.log()
        assert b.stop() == 0, b.log()


def test_silent_clients_are_ended_and_their_slots_come_back(tmp_path: Path) -> None:
    daemon = Daemon(
        tmp_path / "repo",
        "--apiMaxStreams",
        "3",
        "--apiMaxClientStreams",
        "3",
        "--apiStreamIdleTimeout",
        "1s",
    ).wait_ready()
    hold = threading.Event()
    try:
        with tk.Client(daemon.target, timeout=30) as client:
            coll = client.new_db("idle").new_collection("Items")
            dbid = coll.db.id.to_bytes()
        channel = grpc.insecure_channel(daemon.target)
        api, net = pb_grpc.APIStub(channel), netpb_grpc.APIStub(channel)
        write_req = pb.WriteTransactionRequest(
            createRequest=pb.CreateRequest(instances=[b'{"_id": "lost", "n": 1}'])
        )
        # the client's own deadline (60 s) is far past the daemon's idle limit (1 s): should the
        # daemon fail to end a stream, the test fails on a different message instead of hanging
        txn = api.WriteTransaction(
            silent(hold, start_txn(dbid, "Items"), write_req), timeout=CLIENT_DEADLINE
        )
        assert next(txn).createReply.instanceIDs == ["lost"]  # then the client goes silent
        token = net.GetToken(silent(hold), timeout=CLIENT_DEADLINE)  # never sends its key
        unstarted = api.ReadTransaction(silent(hold), timeout=CLIENT_DEADLINE)  # nor its start
        # the budget is full: a fourth stream is refused
        extra = api.Listen(pb.ListenRequest(dbID=dbid), timeout=CLIENT_DEADLINE)
        with pytest.raises(grpc.RpcError) as refused:
            next(extra)
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "limit 3, apiMax" in (refused.value.details() or "")
        for call in (txn, token, unstarted):
            with pytest.raises(grpc.RpcError) as ended:
                list(call)
            assert ended.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
            assert "stream idle: no message from the client for 1s" in ended.value.details()
        # the silent transaction was discarded, and the slots are free again
        with tk.Client(daemon.target, timeout=30) as client:
            items = client.get_db(coll.db.id)["Items"]
            assert items.find() == []
            with items.write_txn() as write:
                write.create({"_id": "kept", "n": 2})
            assert [d["_id"] for d in items.find()] == ["kept"]
            with client.get_db(coll.db.id).listen() as feed:
                items.save({"_id": "kept", "n": 3})
                assert feed.get(timeout=10).instance_id == "kept"
        channel.close()
    finally:
        hold.set()
        assert daemon.stop() == 0, daemon.log()


def test_subscribe_and_read_transactions_share_the_budget(tmp_path: Path) -> None:
    """Net API Subscribe and ReadTransaction streams count like Listen."""
    daemon = Daemon(
        tmp_path / "repo", "--apiMaxStreams", "4", "--apiMaxClientStreams", "2"
    ).wait_ready()
    hold = threading.Event()
    try:
        with tk.Client(daemon.target, timeout=30) as client:
            coll = client.new_db("subs").new_collection("Items")
            dbid = coll.db.id.to_bytes()
        channel = grpc.insecure_channel(daemon.target)
        api, net = pb_grpc.APIStub(channel), netpb_grpc.APIStub(channel)
        sub = net.Subscribe(netpb.SubscribeRequest())
        sub.initial_metadata()
        read = api.ReadTransaction(
            silent(
                hold,
                pb.ReadTransactionRequest(
                    startTransactionRequest=pb.StartTransactionRequest(
                        dbID=dbid, collectionName="Items"
                    )
                ),
                pb.ReadTransactionRequest(
                    hasRequest=pb.HasRequest(instanceIDs=[str(uuid.uuid4())])
                ),
            )
        )
        assert next(read).hasReply.exists is False
        again = net.Subscribe(netpb.SubscribeRequest())
        with pytest.raises(grpc.RpcError) as refused:
            next(again)
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "limit 2, apiMaxClientStreams" in (refused.value.details() or "")
        sub.cancel()
        hold.set()
        list(read)  # ends when the client half-closes
        until(lambda: _subscribe_opens(net), what="a slot freed by the cancelled Subscribe")
        channel.close()
    finally:
        hold.set()
        assert daemon.stop() == 0, daemon.log()


def _subscribe_opens(net: Any) -> bool:
    call = net.Subscribe(netpb.SubscribeRequest())
    try:
        call.initial_metadata()
        return not call.done()
    finally:
        call.cancel()


def test_limits_are_checked_before_the_repo_is_opened(tmp_path: Path) -> None:
    from threadkit.cli import main

    repo = tmp_path / "r"
    for flags in (
        ["--apiMaxStreams", "0"],
        ["--apiMaxStreams", "many"],
        ["--apiMaxStreams", "8", "--apiMaxClientStreams", "9"],
        ["--apiStreamIdleTimeout", "30"],
        ["--proxyHeaderTimeout", "0s"],
        ["--proxyMaxConns", "4", "--proxyMaxClientConns", "5"],
        ["--replicatorAllow", "not-a-peer-id"],
    ):
        assert main(["daemon", "--repo", str(repo), *flags]) == 2, flags
    assert not repo.exists()


def test_calls_waiting_for_other_peers_leave_unary_calls_served(tmp_path: Path) -> None:
    """NewDBFromAddr to a peer that never answers holds a worker until it times out."""
    import socket
    from concurrent.futures import ThreadPoolExecutor

    from threadkit.core.addr import addr_to_bytes

    daemon = Daemon(tmp_path / "repo").wait_ready()
    blackhole = socket.socket()
    blackhole.bind(("127.0.0.1", 0))
    blackhole.listen(256)  # connections complete in the kernel; nothing ever answers
    port = blackhole.getsockname()[1]
    stranger = tk.Identity.generate().public.peer_id
    try:
        channel = grpc.insecure_channel(daemon.target)
        api = pb_grpc.APIStub(channel)

        def join() -> grpc.StatusCode:
            addr = f"/ip4/127.0.0.1/tcp/{port}/p2p/{stranger}/thread/{tk.ThreadID.new()}"
            request = pb.NewDBFromAddrRequest(
                addr=addr_to_bytes(addr), key=tk.ThreadKey.new().to_bytes()
            )
            try:
                api.NewDBFromAddr(request, timeout=8)
            except grpc.RpcError as exc:
                return exc.code()
            return grpc.StatusCode.OK

        with ThreadPoolExecutor(90) as pool:
            joins = [pool.submit(join) for _ in range(90)]  # more than the 80 workers
            settle(lambda: sum(j.done() for j in joins))
            with tk.Client(daemon.target, timeout=10) as fresh:
                assert fresh.list_dbs() == []
            refused = [j.result() for j in joins if j.done()]
            # half the unary reserve (8) may wait for peers; the rest are refused at once
            assert refused.count(grpc.StatusCode.RESOURCE_EXHAUSTED) == 90 - 8, refused
        channel.close()
    finally:
        blackhole.close()
        assert daemon.stop() == 0, daemon.log()
