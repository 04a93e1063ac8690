"""Members enforced by every receiver, with one peer running modified code (its own process).

Owner A creates a database with members and a collection guarded by a write validator;
C (a writer) and M (a reader) join. M builds records by hand with its own keys
(``forger.py``): a reader's write, a non-admin's collection change stripping the
validator, and a write claiming A's identity. A and C reject all three, apply none, show
the same rejections, and end with identical state. Then read revocation: after A revokes
a writer, the read key rotates, and the revoked peer writes nothing that counts and reads
nothing written after the rotation (its own disk checked with the read key it held).
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


def test_after_a_revoke_the_revoked_peer_writes_nothing_and_reads_nothing_new() -> None:
    """A revokes M (a writer): the read key rotates. M's later writes — one made before it
    heard of the revoke, one forged after — are rejected by A and C; M cannot read what
    A and C write after the rotation, checked on its own disk with the read key it held;
    A and C converge; a replicator (service key only) keeps every record across epochs."""
    with Cluster() as cluster:
        a, c, m, r = cluster.start_each([{}, {}, {}, {"replicator": True}])
        db = a.call("new_db", name="club", open=False)
        dbid = db["id"]
        a.call("new_collection", db=dbid, name="Notes")
        ids = {p: p.call("identity")["identity"] for p in (a, c, m)}
        for peer in (c, m):
            a.call("grant", db=dbid, identity=ids[peer], role="writer")
        addr = a.call("info", db=dbid)["addrs"][0]
        for peer in (c, m):
            peer.call("join", addr=addr, key=db["key"])
        m.call("create", db=dbid, coll="Notes", docs=[{"_id": "m-before"}])
        for peer in (m, c, a):
            peer.call("sync", db=dbid, timeout=20)
        assert a.call("add_replicator", db=dbid, addr=r.addrs[0])["peer_id"] == r.peer_id

        a.call("revoke", db=dbid, identity=ids[m])
        # M writes as if it had not heard of the revoke (A's push may have reached it:
        # then its own peer refuses, and modified code writes it all the same)
        late = m.call("try_create", db=dbid, coll="Notes", docs=[{"_id": "m-late"}])
        if late["error"] is not None:
            assert late["error"] == "PermissionDenied"
            m.call("forge", db=dbid, what="write", coll="Notes", id="m-late", doc={})
        a.call("create", db=dbid, coll="Notes", docs=[{"_id": "a-after"}])
        c.call("sync", db=dbid, timeout=20)
        c.call("create", db=dbid, coll="Notes", docs=[{"_id": "c-after"}])
        for peer in (m, c, a, c, m):
            peer.call("sync", db=dbid, timeout=20)
        # modified code on M writes anyway, with the keys it holds
        m.call("forge", db=dbid, what="write", coll="Notes", id="m-forged", doc={})
        for peer in (m, c, a):
            peer.call("sync", db=dbid, timeout=20)

        heads = {}
        for peer in (a, c, m):
            for log, counter in peer.call("heads", db=dbid)["heads"].items():
                heads[log] = max(counter, heads.get(log, 0))
        for peer in (a, c, m):
            assert peer.call("wait_heads", db=dbid, heads=heads, timeout=20)["reached"]
        snaps = [snapshot(p, dbid) for p in (a, c)]
        assert snaps[0] == snaps[1]
        assert [d["_id"] for d in snaps[0]["docs"]["Notes"]] == ["a-after", "c-after", "m-before"]
        access = [p.call("access", db=dbid) for p in (a, c)]
        assert access[0] == access[1]
        assert [x["writer"] for x in access[0]["rejected"]] == [ids[m], ids[m]]
        roles = {x["identity"]: x["role"] for x in access[0]["members"]}
        assert roles == {ids[a]: "owner", ids[c]: "writer"}

        # M keeps what it had and reads nothing written after the rotation
        assert [d["_id"] for d in snapshot(m, dbid)["docs"]["Notes"]] == ["m-before"]
        disk = m.call("read_disk", db=dbid)["records"]
        assert {x["log"] for x in disk} == set(heads)  # every log, every record
        assert len(disk) == sum(heads.values())
        later = [x for x in disk if x["epoch"] > 0]
        assert len(later) == 2  # a-after and c-after, stored on M's disk, sealed
        assert not any(x["readable"] for x in later)
        assert all(x["readable"] for x in disk if x["epoch"] == 0)

        # the replicator holds A's log across epochs, without any read key
        a_logs = dict(a.call("heads", db=dbid)["heads"].items())
        assert r.call("wait_heads", db=dbid, heads=a_logs, timeout=20)["reached"]
        assert r.call("dbs")["dbs"] == []
