"""Peers killed (SIGKILL) in the middle of a large transfer lose nothing and corrupt nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from e2e_helpers import Cluster, assert_converged, new_shared_db, seqs, snapshot
from procs import PeerProcess

BATCH = 2000  # one transaction each, with padding: pushes travel in big batches
PAD = 512


def _listen_addr(proc: PeerProcess) -> str:
    """The TCP multiaddr ``proc`` listens on, to restart a peer on the same port."""
    return proc.addrs[0].split("/p2p/")[0]


def _assert_prefix(values: list[int], what: str) -> None:
    """A log applied in order holds documents 0..n-1 of a sequential writer, no holes."""
    assert values == list(range(len(values))), (
        f"{what}: not a consistent prefix: {len(values)} documents, first hole at "
        f"{next((i for i, v in enumerate(values) if v != i), None)}"
    )


@pytest.mark.slow
def test_pusher_killed_mid_batch_leaves_receiver_consistent_then_converges(
    tmp_path: Path,
) -> None:
    a_path, b_path = tmp_path / "a", tmp_path / "b"
    with Cluster() as cluster:
        a, b = cluster.start_each(
            [{"path": a_path, "pull_interval": 1.0}, {"path": b_path, "pull_interval": 1.0}]
        )
        db = new_shared_db(a, "crash")
        dbid = db["id"]
        b.call("join", addr=db["addrs"][0], key=db["key"])

        a.call("create_bg", db=dbid, coll="Items", n=BATCH, pad=PAD, prefix="a")
        # kill the pusher while its records are on the way
        # 300 of a's documents plus b's own
        assert b.call("wait_count", db=dbid, coll="Items", n=301, timeout=30)["reached"]
        a.kill()
        # a batch b read in full before the kill is still applied: wait for that first
        assert b.call("wait_idle", peer=a.peer_id, timeout=10)["idle"]

        received = snapshot(b, dbid)
        got = seqs(received)
        assert 300 <= len(got) < BATCH, len(got)
        _assert_prefix(got, "receiver after the pusher died")

        # the receiver keeps working, and its repo reopens with the same state
        b.call("create", db=dbid, coll="Items", docs=[{"name": "b-alive", "owner": "b"}])
        received = snapshot(b, dbid)
        b.close()
        b = cluster.start_one(b_path, pull_interval=1.0, listen=[_listen_addr(b)])
        assert snapshot(b, dbid) == received

        # the pusher reopens (on a new port) with every committed transaction, as a prefix
        a = cluster.start_one(a_path, pull_interval=1.0)
        written = seqs(snapshot(a, dbid), prefix="a")
        _assert_prefix(written, "pusher after SIGKILL")
        assert len(written) >= len(got)

        # ... and both converge: everything A committed reaches B, B's write reaches A
        state = assert_converged([a, b], dbid, timeout=30)
        assert seqs(state, prefix="a") == written
        assert any(d["name"] == "b-alive" for d in state["docs"]["Items"])


@pytest.mark.slow
def test_receiver_killed_mid_batch_reopens_intact_then_converges(tmp_path: Path) -> None:
    b_path = tmp_path / "b"
    with Cluster() as cluster:
        a, b = cluster.start_each([{"pull_interval": 1.0}, {"path": b_path, "pull_interval": 1.0}])
        db = new_shared_db(a, "crash-receiver")
        dbid = db["id"]
        b.call("join", addr=db["addrs"][0], key=db["key"])
        b.call("create", db=dbid, coll="Items", docs=[{"name": "b-first", "owner": "b"}])
        assert a.call("wait_count", db=dbid, coll="Items", n=1, timeout=10)["reached"]

        a.call("create_bg", db=dbid, coll="Items", n=BATCH, pad=PAD, prefix="a")
        # 300 of a's documents plus b's own
        assert b.call("wait_count", db=dbid, coll="Items", n=301, timeout=30)["reached"]
        b.kill()

        # the receiver's repo reopens (the LMDB lock of the dead process is not in the way)
        b = cluster.start_one(b_path, pull_interval=1.0)
        got = seqs(snapshot(b, dbid), prefix="a")
        _assert_prefix(got, "receiver after SIGKILL")
        assert len(got) >= 300

        status = a.call("wait_bg", n=BATCH, timeout=60)
        assert status["error"] is None and status["done"] == BATCH, status
        state = assert_converged([a, b], dbid, timeout=40)
        assert seqs(state, prefix="a") == list(range(BATCH))
        assert any(d["name"] == "b-first" for d in state["docs"]["Items"])
