"""Export on one peer, restore in another process, and the restored database rejoins the
original: same thread, logs that continue, and both converge to identical state."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.e2e_helpers import assert_converged, snapshot
from tests.e2e.procs import PeerProcess

pytestmark = pytest.mark.slow


def test_restored_database_rejoins_replication(tmp_path: Path) -> None:
    car = str(tmp_path / "backup.car")
    with PeerProcess() as a, PeerProcess() as b:
        a.call("open")
        b.call("open")
        db = a.call("new_db", name="restore")
        a.call("new_collection", db=db["id"], name="Items")
        ids = a.call("create", db=db["id"], coll="Items", docs=[{"n": i} for i in range(10)])["ids"]
        a.call("save", db=db["id"], coll="Items", docs=[{"_id": ids[0], "n": 100}])
        a.call("delete", db=db["id"], coll="Items", ids=[ids[1]])
        assert a.call("export", db=db["id"], path=car)["records"] == 4

        restored = b.call("import_db", path=car, key=db["key"])
        assert restored["id"] == db["id"]
        assert snapshot(b, db["id"]) == snapshot(a, db["id"])
        assert b.call("history", db=db["id"]) == a.call("history", db=db["id"])

        # both go on writing, then meet: the original's log continues on B
        a.call("create", db=db["id"], coll="Items", docs=[{"n": "after-on-a"}])
        b.call("create", db=db["id"], coll="Items", docs=[{"n": "after-on-b"}])
        b.call("join", addr=db["addrs"][0], key=db["key"])
        state = assert_converged([a, b], db["id"])
        assert len(state["docs"]["Items"]) == 11
        logs_a = {log["id"]: log["counter"] for log in a.call("logs", db=db["id"])["logs"]}
        logs_b = {log["id"]: log["counter"] for log in b.call("logs", db=db["id"])["logs"]}
        assert logs_a == logs_b and len(logs_a) == 2
