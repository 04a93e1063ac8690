"""A database with members, snapshotted and joined from the snapshot, across processes.

Owner A grants W writer and J reader; W writes; A revokes W (the read key rotates),
writes under the new key and takes a snapshot. J joins trusting A: it starts from the
snapshot (its base is set, it holds no record from before it), reads what was written
under the rotated key, and converges, byte for byte in every table a snapshot holds,
with C, a peer that pulled every record. W's later write — made by modified code, as
its own peer refuses it — is rejected by J exactly as by A and C.
"""

from __future__ import annotations

import pytest
from e2e_helpers import Cluster, assert_converged

pytestmark = pytest.mark.slow


def test_a_joiner_from_a_members_snapshot_converges_and_rejects_the_revoked() -> None:
    with Cluster() as cluster:
        a, w, j, c = cluster.start(4)
        db = a.call("new_db", name="club", open=False)
        dbid = db["id"]
        a.call("new_collection", db=dbid, name="Notes")
        ids = {p: p.call("identity")["identity"] for p in (a, w, j, c)}
        a.call("grant", db=dbid, identity=ids[w], role="writer")
        for reader in (j, c):
            a.call("grant", db=dbid, identity=ids[reader], role="reader")
        addr = a.call("info", db=dbid)["addrs"][0]
        w.call("join", addr=addr, key=db["key"])
        w.call("create", db=dbid, coll="Notes", docs=[{"_id": "w-before"}])
        assert_converged([a, w], dbid)
        a.call("revoke", db=dbid, identity=ids[w])
        a.call("create", db=dbid, coll="Notes", docs=[{"_id": "a-rotated"}])
        snap = a.call("db_snapshot", db=dbid)

        j.call("join", addr=addr, key=db["key"], trust=[ids[a]])
        mine = j.call("lifecycle", db=dbid)
        assert mine["base"] is not None, "the joiner did not start from the snapshot"
        assert snap["cid"] in [s["cid"] for s in mine["snapshots"]]
        c.call("join", addr=addr, key=db["key"])  # no trust: every record
        assert c.call("lifecycle", db=dbid)["base"] is None

        # W writes after the revoke: its own peer refuses once it heard of it, so
        # modified code writes it all the same
        late = w.call("try_create", db=dbid, coll="Notes", docs=[{"_id": "w-late"}])
        if late["error"] is not None:
            assert late["error"] == "PermissionDenied"
            w.call("forge", db=dbid, what="write", coll="Notes", id="w-late", doc={})
        a.call("create", db=dbid, coll="Notes", docs=[{"_id": "a-after"}])
        for peer in (w, a, j, c):
            peer.call("sync", db=dbid, timeout=20)

        state = assert_converged([a, j, c], dbid)
        assert sorted(d["_id"] for d in state["docs"]["Notes"]) == [
            "a-after", "a-rotated", "w-before",
        ]  # fmt: skip
        access = [p.call("access", db=dbid) for p in (a, j, c)]
        assert access[0] == access[1] == access[2]
        assert [x["writer"] for x in access[1]["rejected"]] == [ids[w]]
        roles = {x["identity"]: x["role"] for x in access[1]["members"]}
        assert roles == {ids[a]: "owner", ids[j]: "reader", ids[c]: "reader"}
        digests = {p.call("lifecycle", db=dbid)["digest"] for p in (a, j, c)}
        assert len(digests) == 1, "the bootstrapped peer's tables differ from full replays"
