"""A replica whose disk fills up while records arrive gets them again once there is room.

The replica's repo lives on a small tmpfs the test mounts and fills (``small_disk`` in
tests/conftest.py: root only, skipped elsewhere). Its commits of the writer's records
fail; it must not count them as applied: once space is freed it pulls them again and
converges with the writer, and still holds everything after a restart.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from e2e_helpers import Cluster, assert_converged, new_shared_db, snapshot
from procs import PeerProcess, PeerProcessError
from waits import poll_until

MiB = 1024**2
DOCS = 175
BIG_SCHEMA = {"description": "x" * (2 * MiB)}
"""The schema of the collection the writer makes while the replica's disk is full."""


def _listen_addr(addrs: list[str]) -> str:
    return addrs[0].split("/p2p/")[0]


@pytest.mark.slow
def test_replica_on_a_full_disk_pulls_again_once_there_is_room(
    small_disk: Callable[[int], Any],
) -> None:
    disk = small_disk(32 * MiB)
    b_path = disk.path / "b"
    with Cluster() as cluster:
        a, b = cluster.start_each([{"pull_interval": 1.0}, {"path": b_path, "pull_interval": 1.0}])
        db = new_shared_db(a, "full-disk")
        dbid = db["id"]
        b.call("join", addr=db["addrs"][0], key=db["key"])
        a.call("create", db=dbid, coll="Items", docs=[{"name": "before"}])
        assert b.call("wait_count", db=dbid, coll="Items", n=1, timeout=20)["reached"]

        disk.fill()
        a.call("new_collection", db=dbid, name="Big", schema=BIG_SCHEMA, indexes=["n"])
        a.call("create", db=dbid, coll="Big", docs=[{"n": i} for i in range(DOCS)])
        a.call("create", db=dbid, coll="Items", docs=[{"name": "during"}])

        def reports_disk_full(proc: PeerProcess) -> bool:
            return any("disk is full" in e for e in proc.call("stats")["errors"])

        # the replica's pulls fail, and its pushed-to answer tells the writer why
        assert poll_until(lambda: reports_disk_full(b), timeout=30, interval=0.1), b.call("stats")
        assert poll_until(lambda: reports_disk_full(a), timeout=30, interval=0.1), a.call("stats")
        assert b.call("collections", db=dbid)["names"] == ["Items"]
        with pytest.raises(PeerProcessError) as caught:
            many = [{"name": f"b-{i}", "pad": "p" * 1000} for i in range(500)]
            b.call("create", db=dbid, coll="Items", docs=many)
        assert caught.value.error == "DiskFull"

        disk.make_room()
        b.call("create", db=dbid, coll="Items", docs=[{"name": "b-small"}])
        state = assert_converged([a, b], dbid, timeout=60)
        assert len(state["docs"]["Big"]) == DOCS
        assert {d["name"] for d in state["docs"]["Items"]} == {"before", "during", "b-small"}

        listen = _listen_addr(b.addrs)
        b.close()
        b = cluster.start_one(b_path, pull_interval=1.0, listen=[listen])
        assert snapshot(b, dbid) == state
        info = b.call("collection_info", db=dbid)["collections"]["Big"]
        assert info["indexes"] == [{"path": "n", "unique": False}]
