"""``db.sync()`` between this process and peers in child processes (real libp2p, loopback).

Peers run with ``pull_interval=0``: nothing but ``db.sync`` (and the pushes of new commits
to connected peers) moves records, so what each sync reports is exact.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from e2e_helpers import Cluster
from waits import poll_until

import threadkit as tk
from threadkit.errors import InvalidInput, NetworkError, SyncTimeout, Timeout


def _notes(db: tk.Database) -> list[str]:
    return sorted(d["text"] for d in db["Notes"].find()) if "Notes" in db else []


@pytest.mark.slow
def test_sync_pulls_and_pushes_what_each_side_lacks(tmp_path: Path) -> None:
    with tk.Peer(memory=True, network=True, pull_interval=0) as me, Cluster() as cluster:
        db = me.new_db("shared")
        notes = db.new_collection("Notes")
        notes.create({"text": "first"})
        b_path = tmp_path / "b"
        b = cluster.start_one(b_path, pull_interval=0)
        b.call("join", addr=db.info().addrs[0], key=str(db.key), timeout=20)
        b.kill()
        cluster.procs.remove(b)
        for n in range(4):  # pushes to b fail: it is gone
            notes.create({"text": f"while b was away {n}"})
        # a push still retrying when b is back would deliver them: wait until each has failed
        assert poll_until(lambda: me.sync_stats.pushing == 0, timeout=60)
        assert any(b.peer_id in error for error in me.sync_stats.errors)
        b = cluster.start_one(b_path, pull_interval=0)
        found = b.call("find", db=str(db.id), coll="Notes")["docs"]
        assert len(found) == 1  # nothing pulled b's records over without a sync

        summary = db.sync(timeout=20)
        assert list(summary.peers) == [b.peer_id]
        assert (summary.pulled, summary.pushed) == (0, 4)
        # sync returned once b holds them: no waiting needed
        assert len(b.call("find", db=str(db.id), coll="Notes")["docs"]) == 5

        b.call("create", db=str(db.id), coll="Notes", docs=[{"text": "from b"}])
        reply = b.call("sync", db=str(db.id), timeout=20)
        assert reply["peers"][me.id]["pulled"] == 0
        assert reply["peers"][me.id]["pushed"] <= 1  # 0 when its push on commit came first
        assert "from b" in _notes(db)
        again = db.sync(timeout=20)
        assert (again.pulled, again.pushed) == (0, 0)


@pytest.mark.slow
def test_sync_names_peers_that_do_not_answer() -> None:
    with tk.Peer(memory=True, network=True, pull_interval=0) as me, Cluster() as cluster:
        db = me.new_db("shared")
        db.new_collection("Notes").create({"text": "x"})
        alive, frozen, gone = cluster.start(3, pull_interval=0)
        for proc in (alive, frozen, gone):
            proc.call("join", addr=db.info().addrs[0], key=str(db.key), timeout=20)
        gone.kill()
        cluster.procs.remove(gone)
        os.kill(frozen.proc.pid, signal.SIGSTOP)
        try:
            with pytest.raises(SyncTimeout) as caught:
                db.sync(timeout=3)
        finally:
            os.kill(frozen.proc.pid, signal.SIGCONT)
        err = caught.value
        assert isinstance(err, Timeout)
        assert set(err.unanswered) == {frozen.peer_id, gone.peer_id}
        assert "no answer within 3 s" in err.unanswered[frozen.peer_id]
        assert frozen.peer_id in str(err) and gone.peer_id in str(err)
        assert list(err.summary.peers) == [alive.peer_id]


@pytest.mark.slow
def test_listen_before_the_collection_arrives_sees_the_initial_sync() -> None:
    with tk.Peer(memory=True, network=True, pull_interval=0) as me, Cluster() as cluster:
        (owner,) = cluster.start(1, pull_interval=0)
        made = owner.call("new_db", name="shared")
        owner.call("new_collection", db=made["id"], name="Notes")
        owner.call("create", db=made["id"], coll="Notes", docs=[{"n": i} for i in range(30)])
        key = tk.ThreadKey.from_string(made["key"])
        db = me.new_db_from_addr(made["addrs"][0], key, pull=False)
        feed = db.listen(collection="Notes")  # may not be here yet
        summary = db.sync(timeout=20)
        assert summary.peers[owner.peer_id].pulled >= 1
        seen = set()
        while len(seen) < 30:
            event = feed.get(timeout=10)
            assert isinstance(event, tk.Event)
            seen.add(event.instance_id)
        assert db["Notes"].count() == 30
        feed.close()


def test_sync_alone_and_offline_and_bad_timeout() -> None:
    with tk.Peer(memory=True, network=True) as me:
        db = me.new_db("alone")
        assert db.sync(timeout=5).peers == {}
        for bad in (0, -1, float("nan"), "5", True):
            with pytest.raises(InvalidInput):
                db.sync(timeout=bad)  # type: ignore[arg-type]
    with (
        tk.Peer(memory=True, network=False) as offline,
        pytest.raises(NetworkError, match="without a network"),
    ):
        offline.new_db("x").sync()


def test_join_pull_flag_checked() -> None:
    with tk.Peer(memory=True, network=False) as me, pytest.raises(InvalidInput):
        me.new_db_from_addr(
            "/ip4/127.0.0.1/tcp/1/p2p/12D3KooWM2LhLA8kuKnnSeTovagVZvKUXbwUFJ1Ji3qDCsX47tPN"
            "/thread/bafk63wcnahd5rcif2c6b4dhwi5ochxudpkcyqspt2oaw67kkromjm4i",
            tk.ThreadKey.new(),
            pull="no",  # type: ignore[arg-type]
        )
