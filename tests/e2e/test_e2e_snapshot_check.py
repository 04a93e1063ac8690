"""A joiner checks the trusted snapshot it bootstrapped from, across processes.

A peer signs a wrong snapshot with its real keys (its code changed a document behind the
engine's back); a joiner that trusts it starts from it, then fetches the records before it
from the peers, finds it out, marks it bad and rebuilds its state: it ends byte-identical
with a peer that replayed every record. A right snapshot is verified; a snapshot whose
records no peer holds any more is reported unverifiable.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.e2e_helpers import assert_converged
from tests.e2e.procs import PeerProcess
from tests.e2e.waits import poll_until

pytestmark = pytest.mark.slow


def _write(proc: PeerProcess, db: str, n: int, tag: str) -> list[str]:
    docs = [{"n": i, "tag": tag} for i in range(n)]
    ids: list[str] = proc.call("create", db=db, coll="Items", docs=docs)["ids"]
    proc.call("save", db=db, coll="Items", docs=[{"_id": ids[0], "n": -1}])
    return ids


def _status(proc: PeerProcess, db: str, cid: str) -> str | None:
    snaps: list[dict[str, Any]] = proc.call("lifecycle", db=db)["snapshots"]
    return next((s["status"] for s in snaps if s["cid"] == cid), None)


def _settled(proc: PeerProcess, db: str, cid: str, timeout: float = 30.0) -> str | None:
    """The snapshot's status once the joiner's background check has given its verdict."""
    poll_until(lambda: _status(proc, db, cid) != "received", timeout, interval=0.1)
    return _status(proc, db, cid)


def test_a_trusted_wrong_snapshot_is_found_out_and_the_state_rebuilt() -> None:
    with PeerProcess() as a, PeerProcess() as b, PeerProcess() as c:
        for proc in (a, b, c):
            proc.call("open")
        db = a.call("new_db", name="wrong")
        a.call("new_collection", db=db["id"], name="Items", indexes=[{"path": "n"}])
        ids = _write(a, db["id"], 40, "x")
        b.call("join", addr=db["addrs"][0], key=db["key"])
        assert_converged([a, b], db["id"])
        # A's code is wrong: its snapshot, signed with its real keys, holds a forged document
        a.call("tamper", db=db["id"], coll="Items", id=ids[3])
        snap = a.call("db_snapshot", db=db["id"])
        a.call("save", db=db["id"], coll="Items", docs=[{"_id": ids[4], "n": 44}])
        c.call("join", addr=db["addrs"][0], key=db["key"], trust=[a.call("identity")["identity"]])
        assert c.call("lifecycle", db=db["id"])["base"] is not None, "not bootstrapped"
        assert _settled(c, db["id"], snap["cid"]) == "bad"
        errors = " ".join(c.call("status")["status"]["errors"])
        assert "was wrong" in errors, errors
        # its state is the records', not the snapshot's: the same bytes as B's full replay
        _write(b, db["id"], 3, "later")
        assert_converged([b, c], db["id"])
        digests = {p.call("lifecycle", db=db["id"])["digest"] for p in (b, c)}
        assert len(digests) == 1, "the rebuilt state differs from a full replay"
        docs = {d["_id"]: d for d in c.call("find", db=db["id"], coll="Items")["docs"]}
        assert "forged" not in docs[ids[3]] and docs[ids[4]]["n"] == 44


def test_a_right_snapshot_is_verified() -> None:
    with PeerProcess() as a, PeerProcess() as c:
        for proc in (a, c):
            proc.call("open")
        db = a.call("new_db", name="right")
        a.call("new_collection", db=db["id"], name="Items")
        _write(a, db["id"], 30, "x")
        snap = a.call("db_snapshot", db=db["id"])
        before = a.call("lifecycle", db=db["id"])["digest"]
        c.call("join", addr=db["addrs"][0], key=db["key"], trust=[a.call("identity")["identity"]])
        assert _settled(c, db["id"], snap["cid"]) == "verified"
        assert c.call("lifecycle", db=db["id"])["digest"] == before
        assert c.call("lifecycle", db=db["id"])["held"] == 0  # the records were not kept


def test_no_history_anywhere_is_unverifiable() -> None:
    with PeerProcess() as a, PeerProcess() as c:
        for proc in (a, c):
            proc.call("open")
        db = a.call("new_db", name="gone")
        a.call("new_collection", db=db["id"], name="Items")
        ids = _write(a, db["id"], 20, "x")
        snap = a.call("db_snapshot", db=db["id"])
        a.call("save", db=db["id"], coll="Items", docs=[{"_id": ids[1], "n": 5}])
        a.call("compact", db=db["id"], cid=snap["cid"])
        c.call("join", addr=db["addrs"][0], key=db["key"], trust=[a.call("identity")["identity"]])
        assert _settled(c, db["id"], snap["cid"]) == "unverifiable"
        errors = " ".join(c.call("status")["status"]["errors"])
        assert "unverifiable" in errors, errors
        assert_converged([a, c], db["id"])
