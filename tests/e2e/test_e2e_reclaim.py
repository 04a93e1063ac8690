"""Reclaiming disk after a compaction, across processes (``peer.reclaim()``).

A peer on disk compacts at a snapshot and swaps in the compacted LMDB file while its
network runs (paused and restarted); ``data.mdb`` shrinks, later writes replicate both
ways, a peer joining afterwards bootstraps from the snapshot, and the repo reopened by a
new process after a kill -9 holds the same state.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.e2e_helpers import assert_converged
from tests.e2e.procs import PeerProcess

pytestmark = pytest.mark.slow


def test_reclaim_shrinks_the_file_and_replication_goes_on(tmp_path: Path) -> None:
    path = tmp_path / "a"
    with PeerProcess(path) as a, PeerProcess() as b, PeerProcess() as d:
        db = a.call("new_db", name="reclaim")
        a.call("new_collection", db=db["id"], name="Items", indexes=[{"path": "n"}])
        pad = "x" * 500
        ids = a.call("create", db=db["id"], coll="Items", docs=[{"n": 0, "p": pad}] * 300)["ids"]
        for n in range(1, 10):
            docs = [{"_id": i, "n": n, "p": pad} for i in ids]
            a.call("save", db=db["id"], coll="Items", docs=docs)
        b.call("join", addr=db["addrs"][0], key=db["key"])
        assert_converged([a, b], db["id"])
        snap = a.call("db_snapshot", db=db["id"])
        assert_converged([a, b], db["id"])
        b.call("save", db=db["id"], coll="Items", docs=[{"_id": ids[1], "n": 100}])
        assert_converged([a, b], db["id"])
        a.call("compact", db=db["id"], cid=snap["cid"])
        before = (path / "data.mdb").stat().st_size
        done = a.call("reclaim")
        after = (path / "data.mdb").stat().st_size
        assert done["before"] == before and done["after"] == after
        assert after < before / 3
        assert done["addrs"], "the network did not start again"
        # later writes replicate both ways
        a.call("save", db=db["id"], coll="Items", docs=[{"_id": ids[2], "n": 200}])
        b.call("save", db=db["id"], coll="Items", docs=[{"_id": ids[3], "n": 300}])
        assert_converged([a, b], db["id"])
        # a peer joining after the compaction bootstraps from the snapshot A kept
        identity = a.call("identity")["identity"]
        addr = a.call("info", db=db["id"])["addrs"][0]
        d.call("join", addr=addr, key=db["key"], trust=[identity])
        assert d.call("lifecycle", db=db["id"])["base"] is not None
        d.call("save", db=db["id"], coll="Items", docs=[{"_id": ids[4], "n": 400}])
        state = assert_converged([a, b, d], db["id"])
        docs = {doc["_id"]: doc for doc in state["docs"]["Items"]}
        assert [docs[ids[k]]["n"] for k in range(5)] == [9, 100, 200, 300, 400]
        digest = a.call("lifecycle", db=db["id"])["digest"]
        a.kill()
    with PeerProcess(path, network=False) as again:
        assert again.call("lifecycle", db=db["id"])["digest"] == digest
        found = again.call("find", db=db["id"], coll="Items")["docs"]
        assert {doc["_id"]: doc for doc in found} == docs
