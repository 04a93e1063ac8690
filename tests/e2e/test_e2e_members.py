"""Members enforced by every receiver, with one peer running modified code (its own process).

Owner A creates a database with members and a collection guarded by a write validator;
C (a writer) and M (a reader) join. M builds records by hand with its own keys
(``forger.py``): a reader's write, a non-admin's collection change stripping the
validator, and a write claiming A's identity. A and C reject all three, apply none, show
the same rejections, and end with identical state.
"""

from __future__ import annotations

from e2e_helpers import Cluster, snapshot

ONLY_OWNER = "return !instance || instance.owner === writer;"


def test_a_modified_peers_records_are_rejected_by_every_other_peer() -> None:
    with Cluster() as cluster:
        a, c, m = cluster.start(3)
        db = a.call("new_db", name="club", open=False)
        a.call("new_collection", db=db["id"], name="Notes", write_validator=ONLY_OWNER)
        ids = {p: p.call("identity")["identity"] for p in (a, c, m)}
        a.call("grant", db=db["id"], identity=ids[c], role="writer")
        a.call("grant", db=db["id"], identity=ids[m], role="reader")
        addr = a.call("info", db=db["id"])["addrs"][0]
        for peer in (c, m):
            peer.call("join", addr=addr, key=db["key"])
        c.call("create", db=db["id"], coll="Notes", docs=[{"_id": "c1", "owner": ids[c]}])

        m.call("forge", db=db["id"], what="write", coll="Notes", id="m1", doc={"owner": ids[m]})
        m.call("forge", db=db["id"], what="strip", coll="Notes")
        m.call(
            "forge", db=db["id"], what="impersonate", coll="Notes", id="a1",
            doc={"owner": ids[a]}, **{"as": ids[a]},
        )  # fmt: skip
        for peer in (m, c, a, c):
            peer.call("sync", db=db["id"], timeout=20)

        heads = a.call("heads", db=db["id"])["heads"]
        assert c.call("wait_heads", db=db["id"], heads=heads, timeout=20)["reached"]
        assert sorted(heads.values()) == [1, 3, 4]  # c: 1 write; m: 3 forged; a: 4
        snaps = [snapshot(p, db["id"]) for p in (a, c)]
        assert snaps[0] == snaps[1]
        assert [d["_id"] for d in snaps[0]["docs"]["Notes"]] == ["c1"]
        access = [p.call("access", db=db["id"]) for p in (a, c)]
        assert access[0] == access[1]
        rejected = access[0]["rejected"]
        assert [r["writer"] for r in rejected] == [ids[m], ids[m], ids[a]]
        assert "reader: may not write documents" in rejected[0]["reason"]
        assert "not admin" in rejected[1]["reason"] or "collections" in rejected[1]["reason"]
        assert (
            rejected[2]["reason"].startswith("writer proof")
            and "names writer" in rejected[2]["reason"]
        )
        roles = {r["identity"]: r["role"] for r in access[0]["members"]}
        assert roles == {ids[a]: "owner", ids[c]: "writer", ids[m]: "reader"}
        for peer in (a, c):
            info = peer.call("collection_info", db=db["id"])["collections"]
            assert info["Notes"]["write_validator"] == ONLY_OWNER
