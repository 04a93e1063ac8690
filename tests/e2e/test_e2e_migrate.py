"""A schema migration and a purge across peer processes: a migration made while a peer is
offline, that peer's writes against the old schema, and a purge reaching the other peer."""

from __future__ import annotations

from pathlib import Path

import pytest
from e2e_helpers import Cluster, assert_converged
from waits import poll_until

SCHEMA = {
    "properties": {"title": {"type": "string"}, "price": {"type": "integer"}},
    "required": ["title", "price"],
}
TRANSFORM = [
    {"rename": "name", "to": "title"},
    {"retype": "price", "to": "integer"},
    {"default": "price", "value": 0},
]
SECRET = "secret-recipe-7731"


def goods(snap: dict[str, object]) -> dict[str, dict[str, object]]:
    docs = snap["docs"]["Goods"]  # type: ignore[index]
    return {d["_id"]: {k: v for k, v in d.items() if k != "_mod"} for d in docs}


@pytest.mark.slow
def test_migration_while_a_peer_is_offline_then_purge(tmp_path: Path) -> None:
    b_path = tmp_path / "b"
    with Cluster() as cluster:
        a, b = cluster.start_each([{"pull_interval": 1.0}, {"path": b_path, "pull_interval": 1.0}])
        db = a.call("new_db", name="migrate")
        dbid = db["id"]
        a.call("new_collection", db=dbid, name="Goods")
        a.call(
            "create",
            db=dbid,
            coll="Goods",
            docs=[
                {"_id": "pen", "name": "pen", "price": "3"},
                {"_id": "ink", "name": "ink"},
                {"_id": "old", "name": SECRET, "price": "1"},
            ],
        )
        b.call("join", addr=db["addrs"][0], key=db["key"])
        assert_converged([a, b], dbid, timeout=15)

        # B goes offline and keeps writing against the old schema; A migrates meanwhile
        b.close()
        b = cluster.start_one(b_path, network=False)
        b.call("create", db=dbid, coll="Goods", docs=[{"_id": "cup", "name": "cup", "price": "7"}])
        a.call("migrate", db=dbid, coll="Goods", transform=TRANSFORM, schema=SCHEMA)
        a.call("create", db=dbid, coll="Goods", docs=[{"_id": "mug", "title": "mug", "price": 4}])
        b.call(
            "save",
            db=dbid,
            coll="Goods",
            docs=[{"_id": "pen", "name": "fountain pen", "price": "3"}],
        )
        b.call("create", db=dbid, coll="Goods", docs=[{"_id": "jar", "name": "jar", "price": "2"}])
        b.close()

        # they meet again: identical documents, B's old-schema writes carried over
        b = cluster.start_one(b_path, pull_interval=1.0)
        state = assert_converged([a, b], dbid, timeout=30)
        assert goods(state) == {
            "pen": {"_id": "pen", "title": "fountain pen", "price": 3},
            "ink": {"_id": "ink", "title": "ink", "price": 0},
            "old": {"_id": "old", "title": SECRET, "price": 1},
            "cup": {"_id": "cup", "title": "cup", "price": 7},
            "mug": {"_id": "mug", "title": "mug", "price": 4},
            "jar": {"_id": "jar", "title": "jar", "price": 2},
        }
        assert state["lost"] == []
        history = a.call("history", db=dbid)["history"]
        assert '"migrate_collection"' in history

        # a purge on A reaches B: the contents are gone from both stores
        assert b.call("stored_text", db=dbid, text=SECRET)["found"]
        a.call("delete", db=dbid, coll="Goods", ids=["old"])
        a.call("purge", db=dbid, coll="Goods", id="old")
        assert not a.call("stored_text", db=dbid, text=SECRET)["found"]
        assert poll_until(
            lambda: not b.call("stored_text", db=dbid, text=SECRET)["found"], timeout=30
        )
        state = assert_converged([a, b], dbid, timeout=15)
        assert "old" not in goods(state)
