"""A joiner stopped before the check of the snapshot it bootstrapped from finished checks it
when it opens the database again with the network on (threadkit.net.backfill.resume).

The joiner's process holds its check (the records before the snapshot never arrive) and is
killed; the database reopens in a new process, whose check runs, finds the snapshot wrong
and rebuilds: the state ends byte-identical with a peer that replayed every record.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.e2e.e2e_helpers import assert_converged, heads
from tests.e2e.procs import PeerProcess
from tests.e2e.waits import poll_until

pytestmark = pytest.mark.slow


def _status(proc: PeerProcess, db: str, cid: str) -> str | None:
    snaps: list[dict[str, Any]] = proc.call("lifecycle", db=db)["snapshots"]
    return next((s["status"] for s in snaps if s["cid"] == cid), None)


def _docs(proc: PeerProcess, db: str) -> dict[str, dict[str, Any]]:
    return {d["_id"]: d for d in proc.call("find", db=db, coll="Items")["docs"]}


def test_a_check_cut_short_by_a_kill_resumes_when_the_database_opens_again(
    tmp_path: Path,
) -> None:
    path = tmp_path / "c"
    with PeerProcess() as a, PeerProcess() as b:
        db = a.call("new_db", name="resume")
        dbid = db["id"]
        a.call("new_collection", db=dbid, name="Items", indexes=[{"path": "n"}])
        ids: list[str] = a.call(
            "create", db=dbid, coll="Items", docs=[{"n": i} for i in range(30)]
        )["ids"]
        b.call("join", addr=db["addrs"][0], key=db["key"])
        a.call("tamper", db=dbid, coll="Items", id=ids[3])  # A's code is wrong
        snap = a.call("db_snapshot", db=dbid)
        a.call("save", db=dbid, coll="Items", docs=[{"_id": ids[4], "n": 44}])
        trust = [a.call("identity")["identity"]]
        c = PeerProcess(path)
        try:
            c.call("join", addr=db["addrs"][0], key=db["key"], trust=trust, stall_check=True)
            assert c.call("lifecycle", db=dbid)["base"] is not None, "not bootstrapped"
            assert _docs(c, dbid)[ids[3]].get("forged") is True  # believed, not checked yet
            assert _status(c, dbid, snap["cid"]) == "received"
        finally:
            c.kill()
        # opened without the network, nothing checks it: it is still unchecked on disk
        with PeerProcess(path, network=False) as offline:
            assert _status(offline, dbid, snap["cid"]) == "received"
        with PeerProcess(path) as c:
            poll_until(lambda: _status(c, dbid, snap["cid"]) != "received", 30.0, interval=0.1)
            assert _status(c, dbid, snap["cid"]) == "bad"
            assert "was wrong" in " ".join(c.call("status")["status"]["errors"])
            a.call("save", db=dbid, coll="Items", docs=[{"_id": ids[5], "n": 55}])
            wanted = heads(a, dbid)  # A's save must reach both before their states compare
            for proc in (b, c):
                assert proc.call("wait_heads", db=dbid, heads=wanted, timeout=20)["reached"]
            assert_converged([b, c], dbid)  # A holds its forged document
            digests = {p.call("lifecycle", db=dbid)["digest"] for p in (b, c)}
            assert len(digests) == 1, "the rebuilt state differs from a full replay"
            docs = _docs(c, dbid)
            assert "forged" not in docs[ids[3]] and docs[ids[4]]["n"] == 44
