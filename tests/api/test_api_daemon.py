"""``threadkit daemon`` as a process: configuration, repo lock, signals, replication."""

from __future__ import annotations

import asyncio
import filecmp
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from api_procs import Daemon

import threadkit as tk
from tests.e2e.waits import wait_for_docs

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


async def _pings_in_a_second(proxy: str) -> int:
    """Websocket pings the proxy sends to an idle Listen call within one second."""
    import aiohttp

    url = f"ws://{proxy}/threads.pb.API/Listen"
    pings = 0
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(url, protocols=("grpc-websockets",), autoping=False) as ws,
    ):
        await ws.send_bytes(b"content-type: application/grpc-web+proto\r\n")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 1.0
        while (left := deadline - loop.time()) > 0:
            try:
                msg = await ws.receive(left)
            except TimeoutError:
                break
            if msg.type == aiohttp.WSMsgType.PING:
                pings += 1
                await ws.pong(msg.data)
    return pings


def test_environment_configuration_and_sigint(tmp_path: Path) -> None:
    repo = tmp_path / "envrepo"
    env = {
        "THRDS_REPO": str(repo),
        "THRDS_APIPROXYADDR": "/ip4/127.0.0.1/tcp/0",
        "THRDS_CONNLOWWATER": "7",
        "THRDS_CONNHIGHWATER": "9",
        "THRDS_DEBUG": "true",
        "THRDS_KEEPALIVEINTERVAL": "200ms",
        "THRDS_APIMAXSTREAMS": "10",
        "THRDS_APIMAXCLIENTSTREAMS": "5",
        "THRDS_PROXYHEADERTIMEOUT": "3s",
        "THRDS_REPLICATORALLOW": "*",
    }
    daemon = Daemon(None, env=env).wait_ready()
    try:
        with tk.Client(f"/ip4/127.0.0.1/tcp/{daemon.target.rsplit(':', 1)[1]}") as client:
            assert client.host_id == daemon.peer_id
            assert client.list_dbs() == []
        assert asyncio.run(_pings_in_a_second(daemon.proxy)) >= 3  # keepAliveInterval applied
        log = daemon.log()
        assert f"config repo: {repo}" in log
        assert "config connLowWater: 7" in log and "config connHighWater: 9" in log
        assert "connection manager: low water 7, high water 9, grace period 20s" in log
        assert "not applied" not in log
        assert "API budget: 10 streams (5 per client), 16 more workers" in log
        assert "proxy: 256 connections (64 per client), headers within 3s" in log
        assert "replicates threads for any peer (replicatorAllow '*')" in log
        assert "config debug: True" in log
        assert "config apiProxyAddr: /ip4/127.0.0.1/tcp/0" in log
        assert daemon.proxy and not daemon.proxy.endswith(":0")
        assert f"peer id: {daemon.peer_id}" in log
        assert (repo / "repo.lock").exists()
    finally:
        assert daemon.stop(signal.SIGINT) == 0, daemon.log()
    assert "stopped" in daemon.log()


def test_repo_in_use_is_refused(daemon: Daemon) -> None:
    second = subprocess.run(
        [sys.executable, "-m", "threadkit.cli", "daemon", "--repo", str(daemon.repo_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert second.returncode == 1
    assert "in use" in second.stderr
    with tk.Client(daemon.target) as client:
        client.list_dbs()  # the first one still serves


def test_bad_api_address(tmp_path: Path) -> None:
    from threadkit.cli import main

    assert main(["daemon", "--repo", str(tmp_path / "r"), "--apiAddr", "localhost:6006"]) == 2


def test_generated_code_is_current(tmp_path: Path) -> None:
    protoc = pytest.importorskip("grpc_tools.protoc")
    protos = [
        "threadkit/api/proto/threads.proto",
        "threadkit/api/proto/threadsnet.proto",
        "threadkit/api/proto/members.proto",
        "threadkit/api/proto/lifecycle.proto",
    ]
    for proto in protos:
        (tmp_path / proto).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / proto).write_bytes((ROOT / proto).read_bytes())
    args = ["protoc", f"-I{tmp_path}", f"--python_out={tmp_path}", f"--grpc_python_out={tmp_path}"]
    assert protoc.main([*args, *(str(tmp_path / p) for p in protos)]) == 0
    for name in ("threads_pb2", "threads_pb2_grpc", "threadsnet_pb2", "threadsnet_pb2_grpc",
                 "members_pb2", "members_pb2_grpc",
                 "lifecycle_pb2", "lifecycle_pb2_grpc"):  # fmt: skip
        fresh = tmp_path / "threadkit/api/proto" / f"{name}.py"
        committed = ROOT / "threadkit/api/proto" / f"{name}.py"
        assert filecmp.cmp(fresh, committed, shallow=False), f"{name}.py is stale: regenerate"


def _until(db: Any, check: Callable[[], bool], timeout: float = 30.0) -> None:
    """Wait for ``check()`` on the daemon's database ``db``, woken by its Listen feed."""
    if not wait_for_docs(db, check, timeout):
        raise AssertionError("condition not met in time")


def test_two_daemons_replicate(tmp_path: Path) -> None:
    first = Daemon(tmp_path / "a").wait_ready()
    second = Daemon(tmp_path / "b").wait_ready()
    try:
        a, b = tk.Client(first.target, timeout=30), tk.Client(second.target, timeout=30)
        db = a.new_db("shared")
        coll = db.new_collection("Notes", indexes=["text"])
        coll.create({"_id": "n1", "text": "hello"}, {"_id": "n2", "text": "world"})
        info = db.info()
        joined = b.new_db_from_addr(info.addrs[0], info.key, timeout=30)
        assert joined.id == db.id
        _until(joined, lambda: len(joined["Notes"].find()) == 2)
        coll.save({"_id": "n1", "text": "hello again"})
        _until(joined, lambda: joined["Notes"].find_by_id("n1")["text"] == "hello again")
        joined["Notes"].create({"_id": "n3", "text": "from b"})
        _until(db, lambda: coll.has("n3"))
        assert a.get_db(db.id).info().key == b.get_db(db.id).info().key
        a.close()
        b.close()
    finally:
        assert first.stop() == 0, first.log()
        assert second.stop() == 0, second.log()


def test_add_record_on_one_daemon_reaches_subscribe_on_the_other(tmp_path: Path) -> None:
    """The Net API across two daemons: CreateThread, AddThread, AddRecord, Subscribe."""
    import grpc

    from threadkit.api.proto import threadsnet_pb2 as netpb
    from threadkit.api.proto import threadsnet_pb2_grpc as netpb_grpc
    from threadkit.core import dagcbor
    from threadkit.core.identity import peer_id_bytes
    from threadkit.core.records import create_record

    first = Daemon(tmp_path / "a").wait_ready()
    second = Daemon(tmp_path / "b").wait_ready()
    try:
        a = netpb_grpc.APIStub(grpc.insecure_channel(first.target))
        b = netpb_grpc.APIStub(grpc.insecure_channel(second.target))
        thread = a.CreateThread(netpb.CreateThreadRequest(), timeout=30)
        key = tk.ThreadKey.from_bytes(thread.threadKey)
        b.AddThread(
            netpb.AddThreadRequest(
                addr=thread.addrs[0], keys=netpb.Keys(threadKey=thread.threadKey)
            ),
            timeout=30,
        )
        feed = b.Subscribe(netpb.SubscribeRequest(threadIDs=[thread.threadID]), timeout=60)
        feed.initial_metadata()
        author = tk.Identity.generate()  # a log key neither daemon holds
        record = create_record(dagcbor.encode({"made": "locally"}), log_key=author, key=key)
        blocks = record.blocks
        a.AddRecord(
            netpb.AddRecordRequest(
                threadID=thread.threadID,
                logID=peer_id_bytes(author.public.peer_id),
                record=netpb.Record(
                    recordNode=blocks.record,
                    eventNode=blocks.event,
                    headerNode=blocks.header,
                    bodyNode=blocks.body,
                ),
            ),
            timeout=30,
        )
        received = next(iter(feed))
        assert received.logID == peer_id_bytes(author.public.peer_id)
        assert received.record.recordNode == blocks.record
        feed.cancel()
    finally:
        first.stop()
        second.stop()
