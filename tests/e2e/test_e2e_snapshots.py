"""Snapshots and compaction across processes.

A joiner that trusts a snapshot's author starts from it and converges, byte for byte, with
peers that replayed every record; a forged snapshot is found out by a peer holding the
records, and a joiner that does not trust its author ignores it; after a compaction,
later writes replicate and a peer joining later bootstraps from the snapshot.
"""

from __future__ import annotations

import pytest

from tests.e2e.e2e_helpers import assert_converged
from tests.e2e.procs import PeerProcess

pytestmark = pytest.mark.slow


def _write(proc: PeerProcess, db: str, n: int, tag: str) -> list[str]:
    docs = [{"n": i, "tag": tag} for i in range(n)]
    ids: list[str] = proc.call("create", db=db, coll="Items", docs=docs)["ids"]
    proc.call("save", db=db, coll="Items", docs=[{"_id": ids[0], "n": -1}])
    return ids


def test_joiner_from_a_snapshot_converges_with_full_replicas() -> None:
    with PeerProcess() as a, PeerProcess() as b, PeerProcess() as c:
        for proc in (a, b, c):
            proc.call("open")
        db = a.call("new_db", name="snaps")
        a.call("new_collection", db=db["id"], name="Items", indexes=[{"path": "n"}])
        _write(a, db["id"], 50, "first")
        b.call("join", addr=db["addrs"][0], key=db["key"])
        _write(b, db["id"], 20, "from-b")
        assert_converged([a, b], db["id"])
        snap = a.call("db_snapshot", db=db["id"])
        _write(a, db["id"], 10, "after")
        identity = a.call("identity")["identity"]
        c.call("join", addr=db["addrs"][0], key=db["key"], trust=[identity])
        state_c = c.call("lifecycle", db=db["id"])
        assert state_c["base"] is not None, "the joiner did not start from the snapshot"
        assert snap["cid"] in [s["cid"] for s in state_c["snapshots"]]
        _write(c, db["id"], 5, "from-c")
        assert_converged([a, b, c], db["id"])
        digests = {p.call("lifecycle", db=db["id"])["digest"] for p in (a, b, c)}
        assert len(digests) == 1, "the bootstrapped peer's tables differ from full replays"


def test_a_forged_snapshot_is_found_out_and_ignored() -> None:
    with PeerProcess() as a, PeerProcess() as b, PeerProcess() as c:
        for proc in (a, b, c):
            proc.call("open")
        db = a.call("new_db", name="forged")
        a.call("new_collection", db=db["id"], name="Items")
        ids = _write(a, db["id"], 20, "x")
        b.call("join", addr=db["addrs"][0], key=db["key"])
        assert_converged([a, b], db["id"])
        a.call("tamper", db=db["id"], coll="Items", id=ids[3])
        snap = a.call("db_snapshot", db=db["id"])
        # A peer holding the records finds it out once it has the blocks: here A itself.
        assert a.call("verify_snapshot", db=db["id"], cid=snap["cid"])["good"] is False
        # A joiner that trusts someone else ignores it and pulls every record.
        b_identity = b.call("identity")["identity"]
        c.call("join", addr=db["addrs"][0], key=db["key"], trust=[b_identity])
        assert c.call("lifecycle", db=db["id"])["base"] is None
        assert_converged([b, c], db["id"])
        docs = {d["_id"]: d for d in c.call("find", db=db["id"], coll="Items")["docs"]}
        assert "forged" not in docs[ids[3]]


def test_compaction_then_a_later_joiner() -> None:
    with PeerProcess() as a, PeerProcess() as b, PeerProcess() as d:
        for proc in (a, b, d):
            proc.call("open")
        db = a.call("new_db", name="compact")
        a.call("new_collection", db=db["id"], name="Items")
        ids = _write(a, db["id"], 30, "x")
        for n in range(5):
            a.call("save", db=db["id"], coll="Items", docs=[{"_id": i, "n": n} for i in ids])
        b.call("join", addr=db["addrs"][0], key=db["key"])
        assert_converged([a, b], db["id"])
        snap = a.call("db_snapshot", db=db["id"])
        assert_converged([a, b], db["id"])
        b.call("save", db=db["id"], coll="Items", docs=[{"_id": ids[1], "n": 100}])
        assert_converged([a, b], db["id"])
        done = a.call("compact", db=db["id"], cid=snap["cid"])
        assert done["records"] == sum(snap["heads"].values()) and done["events"] > 0
        assert a.call("lifecycle", db=db["id"])["held"] == 1  # the snapshot record only
        # later writes replicate both ways
        a.call("save", db=db["id"], coll="Items", docs=[{"_id": ids[2], "n": 200}])
        b.call("save", db=db["id"], coll="Items", docs=[{"_id": ids[3], "n": 300}])
        assert_converged([a, b], db["id"])
        # a peer joining after the compaction bootstraps from the snapshot A kept
        identity = a.call("identity")["identity"]
        d.call("join", addr=db["addrs"][0], key=db["key"], trust=[identity])
        assert d.call("lifecycle", db=db["id"])["base"] is not None
        state = assert_converged([a, b, d], db["id"])
        docs = {doc["_id"]: doc for doc in state["docs"]["Items"]}
        assert docs[ids[1]]["n"] == 100 and docs[ids[2]]["n"] == 200 and docs[ids[3]]["n"] == 300
