"""Peers that go away and come back: offline catch-up, and a split that heals."""

from __future__ import annotations

from pathlib import Path

import pytest
from e2e_helpers import Cluster, assert_converged, doc_count, new_shared_db, snapshot


def _items(start: int, n: int, owner: str) -> list[dict[str, object]]:
    return [{"name": f"{owner}-{i}", "owner": owner, "seq": i} for i in range(start, start + n)]


@pytest.mark.slow
def test_offline_peer_catches_up_after_restart_on_its_repo(tmp_path: Path) -> None:
    c_path = tmp_path / "c"
    with Cluster() as cluster:
        a, b, c = cluster.start_each(
            [{"pull_interval": 1.0}, {"pull_interval": 1.0}, {"path": c_path}]
        )
        db = new_shared_db(a, "offline")
        dbid = db["id"]
        a.call("create_each", db=dbid, coll="Items", docs=_items(0, 10, "a"))
        b.call("join", addr=db["addrs"][0], key=db["key"])
        c.call("join", addr=db["addrs"][0], key=db["key"])
        c.call("create", db=dbid, coll="Items", docs=[{"name": "c-before", "owner": "c"}])
        assert_converged([a, b, c], dbid, timeout=10)

        # C goes away cleanly; A and B keep writing
        c.close()
        a_ids = a.call("create_each", db=dbid, coll="Items", docs=_items(10, 40, "a"))["ids"]
        b.call("create_each", db=dbid, coll="Items", docs=_items(0, 40, "b"))
        b.call("save", db=dbid, coll="Items", docs=[{"_id": a_ids[0], "name": "a-10-by-b"}])
        expected = assert_converged([a, b], dbid, timeout=10)
        assert doc_count(expected, "Items") == 91

        # C restarts on the same repo, periodic pull off: an explicit pull catches it up
        c = cluster.start_one(c_path, pull_interval=0)
        before = snapshot(c, dbid)
        assert doc_count(before, "Items") == 11  # what it had when it closed
        pulled = c.call("pull", db=dbid, timeout=20)["records"]
        # the pull brings what the startup announcement has not already brought back
        received = c.call("stats")["received"]
        assert received >= 81 and 0 <= pulled <= received, (pulled, received)
        assert snapshot(c, dbid) == expected

        # after catching up, writes flow both ways with the restarted C (new port)
        c.call("create", db=dbid, coll="Items", docs=[{"name": "c-after", "owner": "c"}])
        a.call("create", db=dbid, coll="Items", docs=[{"name": "a-after", "owner": "a"}])
        for proc in (a, b, c):
            assert proc.call("wait_count", db=dbid, coll="Items", n=93, timeout=10)["reached"], (
                proc.peer_id,
                proc.call("stats"),
            )
        assert_converged([a, b, c], dbid, timeout=10)

        # C goes away again; this time it relies on the periodic pull when it is back
        c.close()
        a.call("create_each", db=dbid, coll="Items", docs=_items(50, 30, "a"))
        b.call("delete", db=dbid, coll="Items", ids=[a_ids[1]])
        expected = assert_converged([a, b], dbid, timeout=10)
        c = cluster.start_one(c_path, pull_interval=1.0)
        assert c.call("wait_count", db=dbid, coll="Items", n=122, timeout=15)["reached"]
        assert assert_converged([a, b, c], dbid, timeout=15) == expected


@pytest.mark.slow
def test_split_peers_writing_on_both_sides_heal_to_identical_state(tmp_path: Path) -> None:
    b_path = tmp_path / "b"
    with Cluster() as cluster:
        a, b, c = cluster.start_each(
            [{"pull_interval": 1.0}, {"path": b_path, "pull_interval": 1.0}, {"pull_interval": 1.0}]
        )
        db = new_shared_db(a, "split")
        dbid = db["id"]
        shared = a.call(
            "create",
            db=dbid,
            coll="Items",
            docs=[
                {"name": "shared", "color": "white", "note": "start"},
                {"name": "doomed", "color": "grey"},
            ],
        )["ids"]
        b.call("join", addr=db["addrs"][0], key=db["key"])
        c.call("join", addr=db["addrs"][0], key=db["key"])
        assert_converged([a, b, c], dbid, timeout=10)

        # the split: B goes offline (network off, same repo) and keeps writing
        b.close()
        b = cluster.start_one(b_path, network=False)
        b.call("create_each", db=dbid, coll="Items", docs=_items(0, 30, "b"))
        b.call(
            "save",
            db=dbid,
            coll="Items",
            docs=[{"_id": shared[0], "name": "shared", "color": "blue", "note": "by b"}],
        )
        b.call("delete", db=dbid, coll="Items", ids=[shared[1]])
        assert (
            b.call("try_create", db=dbid, coll="Items", docs=[{"name": "split-race"}])["error"]
            is None
        )
        # ... while C and A keep writing on the other side
        c.call("create_each", db=dbid, coll="Items", docs=_items(0, 30, "c"))
        c.call(
            "save",
            db=dbid,
            coll="Items",
            docs=[{"_id": shared[0], "name": "shared", "color": "red", "note": "by c"}],
        )
        c.call(
            "save",
            db=dbid,
            coll="Items",
            docs=[{"_id": shared[1], "name": "doomed", "color": "black"}],
        )
        assert (
            c.call("try_create", db=dbid, coll="Items", docs=[{"name": "split-race"}])["error"]
            is None
        )
        a.call("create_each", db=dbid, coll="Items", docs=_items(0, 10, "a"))
        offline = snapshot(b, dbid)
        assert doc_count(offline, "Items") == 2 - 1 + 30 + 1

        # heal: B comes back online on its repo (a new port)
        b.close()
        b = cluster.start_one(b_path, pull_interval=1.0)
        state = assert_converged([a, b, c], dbid, timeout=20)
        names = [d["name"] for d in state["docs"]["Items"]]
        assert names.count("split-race") == 1
        for owner, count in (("a", 10), ("b", 30), ("c", 30)):
            assert sum(1 for n in names if n.startswith(f"{owner}-")) == count
        shared_doc = next(d for d in state["docs"]["Items"] if d["name"] == "shared")
        assert (shared_doc["color"], shared_doc["note"]) in {("blue", "by b"), ("red", "by c")}
        assert state["lost"], "the overwritten side of the split is not in lost_writes"


@pytest.mark.slow
def test_two_peers_that_both_restart_find_each_other_again(tmp_path: Path) -> None:
    """Both peers restart (new ephemeral ports): their stored addresses are stale.

    Each knows the other only by the address learnt at join; nothing tells either of
    them the other's new port, so without a fix (reuse the last port, or re-announce
    addresses) they never reconnect and no write ever reaches the other side again.
    """
    a_path, b_path = tmp_path / "a", tmp_path / "b"
    with Cluster() as cluster:
        a, b = cluster.start_each(
            [{"path": a_path, "pull_interval": 1.0}, {"path": b_path, "pull_interval": 1.0}]
        )
        db = new_shared_db(a, "restart-both")
        dbid = db["id"]
        b.call("join", addr=db["addrs"][0], key=db["key"])
        a.call("create", db=dbid, coll="Items", docs=[{"name": "before"}])
        assert b.call("wait_count", db=dbid, coll="Items", n=1, timeout=10)["reached"]
        a.close()
        b.close()

        a, b = cluster.start_each(
            [{"path": a_path, "pull_interval": 1.0}, {"path": b_path, "pull_interval": 1.0}]
        )
        a.call("create", db=dbid, coll="Items", docs=[{"name": "after-a"}])
        b.call("create", db=dbid, coll="Items", docs=[{"name": "after-b"}])
        reached = b.call("wait_count", db=dbid, coll="Items", n=3, timeout=8)["reached"]
        assert reached, (
            "after both peers restarted, A's write never reached B; B's sync errors: "
            f"{b.call('stats')['errors'][-1:]}"
        )
        assert_converged([a, b], dbid, timeout=10)
