"""A replicator keeps and serves a thread's records with the service key only."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from e2e_helpers import Cluster, assert_converged, new_shared_db, snapshot
from procs import PeerProcess

import threadkit as tk


def _counters(proc: PeerProcess, dbid: str) -> dict[str, int]:
    return {log["id"]: log["counter"] for log in proc.call("logs", db=dbid)["logs"]}


def _gets(proc: PeerProcess, dbid: str, want: dict[str, int]) -> bool:
    """``proc`` comes to hold exactly the log counters ``want`` (woken by each record)."""
    reached = proc.call("wait_heads", db=dbid, heads=want, timeout=10)["reached"]
    return bool(reached) and _counters(proc, dbid) == want


def _repo_bytes(path: Path) -> list[tuple[Path, bytes]]:
    return [(f, f.read_bytes()) for f in sorted(path.rglob("*")) if f.is_file()]


@pytest.mark.slow
def test_replicator_stores_and_serves_records_it_can_never_read(tmp_path: Path) -> None:
    r_path = tmp_path / "replicator"
    marker = f"PLAINTEXT-{uuid.uuid4().hex}"
    with Cluster() as cluster:
        a, r, d = cluster.start_each([{}, {"path": r_path, "replicator": True}, {}])
        db = new_shared_db(a, "replicated")
        dbid = db["id"]
        key = tk.ThreadKey.from_string(db["key"])
        assert key.read is not None
        markers = [f"{marker}-{i:03d}" for i in range(40)]
        a.call(
            "create_each",
            db=dbid,
            coll="Items",
            docs=[{"name": m, "note": f"secret note {m}", "owner": "a"} for m in markers[:30]],
        )

        # R holds no database: it is handed the thread (service key only) by A
        assert r.call("dbs")["dbs"] == []
        assert a.call("add_replicator", db=dbid, addr=r.addrs[0])["peer_id"] == r.peer_id
        want = _counters(a, dbid)
        assert _gets(r, dbid, want), (_counters(r, dbid), want)
        assert r.call("threads")["threads"] == [dbid]
        assert r.call("dbs")["dbs"] == []  # still no database: it cannot read

        # writes on A after R was added reach R too (pushed)
        a.call(
            "create_each",
            db=dbid,
            coll="Items",
            docs=[{"name": m, "note": f"secret note {m}", "owner": "a"} for m in markers[30:]],
        )
        want = _counters(a, dbid)
        assert _gets(r, dbid, want), (_counters(r, dbid), want)
        expected = snapshot(a, dbid)

        # A goes away; D joins from R's address alone, with the full key, and reads it all
        a.close()
        thread_addr = f"{r.addrs[0]}/thread/{dbid}"
        d.call("join", addr=thread_addr, key=db["key"])
        assert d.call("wait_count", db=dbid, coll="Items", n=40, timeout=10)["reached"]
        assert snapshot(d, dbid) == expected

        # D's own writes go to R, which relays what it cannot read
        d.call("create", db=dbid, coll="Items", docs=[{"name": f"{marker}-from-d"}])
        (d_log,) = set(_counters(d, dbid)) - set(want)  # D's own log, new to the thread
        assert r.call("wait_heads", db=dbid, heads={d_log: 1}, timeout=10)["reached"]
        assert _counters(r, dbid)[d_log] == 1

        # R can never decrypt: no plaintext value and no read key anywhere in its repo
        r.close()
    files = _repo_bytes(r_path)
    assert files, "the replicator's repo is empty"
    secrets = {
        "marker": marker.encode(),
        "note": b"secret note",
        "read key": key.read,
        "key string": db["key"].encode(),
        "read key hex": key.read.hex().encode(),
    }
    leaks = [
        (str(f.relative_to(r_path)), what)
        for f, data in files
        for what, secret in secrets.items()
        if secret in data
    ]
    assert not leaks, f"the replicator's repo holds plaintext or the read key: {leaks}"
    # ... while the encrypted records are really there (a sanity check of the scan)
    assert sum(len(data) for _, data in files) > 40 * 100


def test_replicator_that_later_gets_the_read_key_becomes_a_member(tmp_path: Path) -> None:
    """docs/seam.md, Recovery: "a replicator that later receives the read key" applies
    the records it stored. Joining with the full key on the replicator must work."""
    with Cluster() as cluster:
        a, r = cluster.start_each([{}, {"path": tmp_path / "r", "replicator": True}])
        db = new_shared_db(a, "promoted")
        dbid = db["id"]
        a.call("create", db=dbid, coll="Items", docs=[{"name": "x"}, {"name": "y"}])
        a.call("add_replicator", db=dbid, addr=r.addrs[0])
        want = _counters(a, dbid)
        assert _gets(r, dbid, want)

        r.call("join", addr=db["addrs"][0], key=db["key"])
        assert r.call("wait_count", db=dbid, coll="Items", n=2, timeout=10)["reached"]
        assert_converged([a, r], dbid, timeout=10)
