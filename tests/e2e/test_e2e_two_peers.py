"""Two peers in separate processes: join by address and key, then push both ways."""

from __future__ import annotations

import time
from typing import Any

import pytest
from e2e_helpers import INDEXES, Cluster, assert_converged, new_shared_db, snapshot
from procs import PeerProcessError


def test_join_sees_collections_and_documents_then_pushes_both_ways() -> None:
    with Cluster() as cluster:
        a, b = cluster.start(2)
        db = new_shared_db(a, "field-notes")
        a.call("new_collection", db=db["id"], name="Notes")
        ids = a.call(
            "create",
            db=db["id"],
            coll="Items",
            docs=[{"name": f"item-{i}", "seq": i, "owner": "a"} for i in range(20)],
        )["ids"]
        a.call("create", db=db["id"], coll="Notes", docs=[{"text": "hello"}])

        # the thread address advertised by db.info() points at A's peer
        info = a.call("info", db=db["id"])
        assert info["name"] == "field-notes"
        assert info["key"] == db["key"]
        assert info["addrs"] and all(
            addr.endswith(f"/p2p/{a.peer_id}/thread/{db['id']}") for addr in info["addrs"]
        )

        joined = b.call("join", addr=info["addrs"][0], key=db["key"])
        assert joined == {"ok": True, "id": db["id"], "name": "field-notes"}
        # joining returns with the collections (schema + indexes) and documents there
        assert sorted(b.call("collections", db=db["id"])["names"]) == ["Items", "Notes"]
        b_info = b.call("collection_info", db=db["id"])["collections"]
        a_info = a.call("collection_info", db=db["id"])["collections"]
        assert b_info == a_info
        expected = [{"unique": False} | i for i in INDEXES]
        assert _by_path(b_info["Items"]["indexes"]) == _by_path(expected)
        assert b_info["Items"]["schema"]["properties"]["name"] == {"type": "string"}
        assert snapshot(b, db["id"]) == snapshot(a, db["id"])

        # the unique index replicated: B refuses a duplicate name locally
        with pytest.raises(PeerProcessError) as err:
            b.call("create", db=db["id"], coll="Items", docs=[{"name": "item-3"}])
        assert err.value.error == "UniqueViolation"

        # A -> B by push (no periodic pull: the default interval is 10 s)
        start = time.monotonic()
        a.call("create", db=db["id"], coll="Items", docs=[{"name": "from-a", "owner": "a"}])
        assert b.call("wait_count", db=db["id"], coll="Items", n=21, timeout=5)["reached"]
        assert time.monotonic() - start < 5

        # B -> A by push
        b.call("create", db=db["id"], coll="Items", docs=[{"name": "from-b", "owner": "b"}])
        assert a.call("wait_count", db=db["id"], coll="Items", n=22, timeout=5)["reached"]

        # saves and deletes travel too, both ways
        a.call("save", db=db["id"], coll="Items", docs=[{"_id": ids[0], "name": "renamed"}])
        b.call("delete", db=db["id"], coll="Items", ids=[ids[1]])
        query = '{"ands":[{"fieldPath":"name","operation":0,"value":{"string":"renamed"}}]}'

        def settled() -> bool:
            on_a = a.call("find", db=db["id"], coll="Items", query=query)["docs"]
            on_b = b.call("find", db=db["id"], coll="Items", query=query)["docs"]
            counts = [len(p.call("find", db=db["id"], coll="Items")["docs"]) for p in (a, b)]
            return len(on_a) == len(on_b) == 1 and counts == [21, 21]

        assert_converged([a, b], db["id"], timeout=5)
        assert settled()
        assert snapshot(a, db["id"]) == snapshot(b, db["id"])
        assert b.call("stats")["rejected"] == 0
        assert a.call("stats")["rejected"] == 0


def _by_path(indexes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(indexes, key=lambda i: str(i["path"]))
