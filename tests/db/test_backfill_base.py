"""After a wrong snapshot is found out (threadkit.db.backfill), the replay's rows are the base
a later rebuild starts from (threadkit.db.basestate.replace): a late revoke in a database with
members never brings the wrong rows back."""

from __future__ import annotations

from typing import Any

import cbor2
from members_helpers import state as member_state
from snapshot_helpers import exchange, members_cast, state

from threadkit.core.records import Record
from threadkit.db import basestate, bootstrap, dockeys, snapshots
from threadkit.db.handoff import log_records, replica


def _tamper(db: Any, coll: str, instance_id: str) -> None:
    """What modified code would do: a stored document changed behind the engine's back."""
    key = dockeys.doc_key(db.engine.coll_key(coll), instance_id)
    with db._repo.transaction(write=True) as txn:
        txn.put(key, cbor2.dumps({"_id": instance_id, "forged": True}), db=db._tables.docs)


def _history(db: Any, snap: Any) -> dict[str, list[Record]]:
    return {log_id: log_records(db, log_id)[:counter] for log_id, counter in snap.heads.items()}


def test_a_late_revoke_after_a_wrong_snapshot_rebuilds_from_the_replayed_rows() -> None:
    """Owner O, writer W, reader R. O's snapshot holds a forged document; R's joiner starts
    from it, its check finds it out and rebuilds. W then writes without having heard of
    the revoke O makes concurrently: the revoke reaches the joiner last, cuts W's write
    and makes the joiner rebuild from its base, which must be the replay's rows."""
    with members_cast("c") as (o, w, j, f, db, wdb):
        wdb["c"].create(*({"_id": f"w{i}", "n": i} for i in range(3)))
        db["c"].create({"_id": "o", "n": 1})
        exchange(db, wdb)
        _tamper(db, "c", "w1")
        snap = db.snapshot()
        joined = bootstrap.install(j.manager, bootstrap.offer(db), db.key, db.id, "m", [o.identity])
        assert joined["c"].find_by_id("w1").get("forged") is True  # it was believed
        full = replica(f, db)
        exchange(db, joined, full)
        joined.history_source = lambda _db, s: _history(db, s)
        assert joined.verify_snapshot(snap) is False
        assert [s.status for s in joined.snapshots() if s.cid == snap.cid] == ["bad"]
        assert state(joined) == state(full)
        assert snapshots.mark(joined, "base")["replayed"] is True
        # W writes, not having heard of the revoke O makes at the same time
        wdb["c"].create({"_id": "late", "n": 9})
        exchange(wdb, joined, full)
        assert joined["c"].find_by_id("late")["n"] == 9
        db.revoke(w.identity.public)  # O has not seen "late"
        exchange(db, wdb, joined, full)
        assert full["c"].find(), "the full replica lost its documents"
        assert "late" not in {d["_id"] for d in full["c"].find()}  # the revoke cut it
        assert "forged" not in joined["c"].find_by_id("w1")  # the wrong rows did not come back
        assert state(joined) == state(full)  # every table, byte for byte
        assert member_state(joined) == member_state(full)
        assert basestate.stale(joined) == []
        # and once more: another late write cut by a second revoke rebuilds again
        db.grant(w.identity.public, "writer")
        exchange(db, wdb, joined, full)
        wdb["c"].create({"_id": "later", "n": 10})
        exchange(wdb, joined, full)
        db.revoke(w.identity.public)
        exchange(db, wdb, joined, full)
        assert state(joined) == state(full)
