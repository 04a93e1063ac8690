"""Compacting a database with members (threadkit.db.membercompact, threadkit.db.compaction).

After ``db.compact(before=snap)`` a database with members stands where a joiner from that
snapshot stands: a ``base`` mark, the membership records in the snapshot's members blocks,
a rebuild after a late revoke that restores the snapshot's rows. Its verdicts, members and
roles stay those of an uncompacted twin through later grants, revokes and writes; its
documents too, unless a late revoke cut a write inside the snapshot (``basestate.stale``).
"""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from members_helpers import assert_settled
from members_helpers import state as member_state
from snapshot_helpers import _forward, exchange, state

import threadkit as tk
from threadkit import errors
from threadkit.core.identity import Identity
from threadkit.db import basestate, bootstrap, snapshots
from threadkit.db.handoff import replica

LIVE = ("colls", "docs", "inst", "index", "losers", "access")
"""The tables a compaction leaves as they were (it folds events and their order)."""


def _live(db: Any) -> dict[str, dict[bytes, bytes]]:
    """The LIVE tables, byte for byte."""
    return {name: rows for name, rows in state(db).items() if name in LIVE}


def _ids(db: Any) -> list[str]:
    return sorted(d["_id"] for d in db["c"].find())


def _members_db(o: Any) -> Any:
    db = o.new_db("m", open=False)
    db.new_collection("c")
    return db


def test_a_compacted_members_database_rebuilds_on_its_snapshot_after_a_late_revoke() -> None:
    """A compacts at its snapshot; O's revoke of B, which had not seen B's write after
    the snapshot, arrives afterwards: the rebuild restores the snapshot's rows and drops
    that write, as the uncompacted twin does by replaying every record."""
    ida = Identity.generate()
    with (
        tk.Peer(memory=True) as o,
        tk.Peer(memory=True, identity=ida) as a,
        tk.Peer(memory=True) as b,
        tk.Peer(memory=True, identity=ida) as t,
    ):
        db = _members_db(o)
        db.grant(ida.public, "admin")
        db.grant(b.identity.public, "writer")
        adb, bdb = replica(a, db), replica(b, db)
        exchange(db, adb, bdb)
        for n in range(5):
            bdb["c"].save({"_id": "x", "n": n})
        adb["c"].create({"_id": "y"})
        exchange(db, adb, bdb)
        snap = adb.snapshot()
        exchange(db, adb, bdb)
        db["c"].create({"_id": "o-past"})
        bdb["c"].create({"_id": "b-past"})
        exchange(db, adb, bdb)
        twin = replica(t, db)
        exchange(db, adb, bdb, twin)
        done = adb.compact(snap)
        assert done.records > 0 and done.events == 4  # x's five saves fold into one create
        assert snapshots.mark(adb, "base")["root"] == snap.cid
        assert [s.counter for s in adb._repo.read_log(adb.id, bdb.log_id)] == [6]
        bdb["c"].save({"_id": "x", "n": 99})  # O has not seen it when it revokes B
        exchange(adb, bdb)
        db.revoke(b.identity.public)
        exchange(db, adb, twin)
        exchange(db, adb, bdb, twin)
        assert adb["c"].find_by_id("x")["n"] == 4 == twin["c"].find_by_id("x")["n"]
        assert _live(adb) == _live(twin)
        assert member_state(adb) == member_state(twin)
        assert basestate.stale(adb) == []
        assert_settled(adb)
        with pytest.raises(errors.HistoryCompacted, match=str(snap)):
            adb["c"].at(0)
        second = adb.snapshot()  # its membership records come from the base's members blocks
        exchange(db, adb, bdb, twin)
        db["c"].create({"_id": "o-past-2"})
        exchange(db, adb, bdb, twin)
        adb.compact(
            second, force=True
        )  # B, revoked, cannot write past it; all its records are here
        assert snapshots.mark(adb, "base")["root"] == second.cid
        db.grant(b.identity.public, "writer")
        exchange(db, adb, bdb, twin)
        bdb["c"].save({"_id": "x", "n": 100})
        exchange(db, adb, bdb, twin)
        assert adb["c"].find_by_id("x")["n"] == 100
        assert _live(adb) == _live(twin)
        assert member_state(adb) == member_state(twin)


def test_a_late_revoke_cutting_a_write_inside_the_snapshot_is_listed_as_stale() -> None:
    """L (an admin whose log A never received) revokes B without having seen B's write;
    A compacts at a snapshot holding that write. The revoke arrives after the compaction:
    verdicts and members are the twin's, the write is listed stale."""
    ida = Identity.generate()
    with (
        tk.Peer(memory=True) as o,
        tk.Peer(memory=True, identity=ida) as a,
        tk.Peer(memory=True) as b,
        tk.Peer(memory=True) as late,
        tk.Peer(memory=True, identity=ida) as t,
    ):
        db = _members_db(o)
        db.grant(ida.public, "admin")
        db.grant(b.identity.public, "writer")
        db.grant(late.identity.public, "admin")
        adb, bdb, ldb = replica(a, db), replica(b, db), replica(late, db)
        exchange(db, adb, bdb)
        _forward(db, ldb, db.log_id)
        bdb["c"].create({"_id": "cut"})
        exchange(db, adb, bdb)
        ldb.revoke(b.identity.public)  # L has not seen "cut"
        snap = adb.snapshot()
        exchange(db, adb, bdb)
        for d in (db, adb):
            d["c"].save({"_id": "past-" + d.log_id[-4:]})
        bdb["c"].save({"_id": "past-b"})
        exchange(db, adb, bdb)
        twin = replica(t, db)
        exchange(db, adb, bdb, twin)
        adb.compact(snap)
        exchange(db, adb, bdb, ldb, twin)
        assert "cut" not in _ids(twin) and "cut" in _ids(adb)
        assert state(adb)["access"] == state(twin)["access"]
        assert member_state(adb)[1:] == member_state(twin)[1:]
        assert basestate.stale(adb) == [(bdb.log_id, 1)]


def test_a_peer_joining_after_a_members_compaction_bootstraps_and_replicates() -> None:
    ida, idj = Identity.generate(), Identity.generate()
    with (
        tk.Peer(memory=True) as o,
        tk.Peer(memory=True, identity=ida) as a,
        tk.Peer(memory=True, identity=idj) as j,
    ):
        db = _members_db(o)
        db.grant(ida.public, "admin")
        db.grant(idj.public, "writer")
        adb = replica(a, db)
        exchange(db, adb)
        adb["c"].create({"_id": "before"})
        exchange(db, adb)
        snap = adb.snapshot()
        exchange(db, adb)
        db["c"].create({"_id": "o-past"})
        exchange(db, adb)
        adb.compact(snap)
        joined = bootstrap.install(j.manager, bootstrap.offer(adb), adb.key, adb.id, "m", [ida])
        adb["c"].create({"_id": "after"})
        joined["c"].create({"_id": "from-joiner"})
        exchange(db, adb, joined)
        assert _ids(joined) == _ids(adb) == _ids(db) == ["after", "before", "from-joiner", "o-past"]
        assert member_state(joined) == member_state(adb) == member_state(db)


def test_the_refusals_that_stay_and_a_record_it_cannot_read() -> None:
    with tk.Peer(memory=True) as o, tk.Peer(memory=True) as b:
        db = _members_db(o)
        db.grant(b.identity.public, "writer")
        bdb = replica(b, db)
        exchange(db, bdb)
        bdb["c"].create({"_id": "x"})
        exchange(db, bdb)
        snap = db.snapshot()
        with pytest.raises(errors.InvalidInput, match=bdb.log_id):  # B has not written since
            db.compact(snap)
        exchange(db, bdb)
        with pytest.raises(errors.InvalidSnapshot, match="blocks"):  # B does not hold them
            bdb.compact(snap, force=True)
        with pytest.raises(errors.InvalidInput, match="keep_blocks"):
            db.compact(snap, force=True, keep_blocks=False)
        snapshots.set_status(db, snap, "bad")
        with pytest.raises(errors.InvalidSnapshot, match="bad"):
            db.compact(snap, force=True)
        own = bdb.snapshot()
        db.revoke(b.identity.public)  # the read key rotates past B
        db["c"].create({"_id": "sealed"})
        exchange(db, bdb)
        with pytest.raises(errors.InvalidInput, match="cannot read"):
            bdb.compact(own, force=True)
        assert snapshots.mark(bdb, "base") is None and snapshots.mark(bdb, "compacted") is None


# ------------------------------------------------------------------ property

ROLES = ("reader", "writer", "admin")
step = st.one_of(
    st.tuples(st.just("grant"), st.integers(0, 1), st.integers(2, 3), st.sampled_from(ROLES)),
    st.tuples(st.just("revoke"), st.integers(0, 1), st.integers(2, 3), st.none()),
    st.tuples(st.just("write"), st.integers(0, 2), st.integers(0, 3), st.integers(-3, 3)),
    st.tuples(st.just("snap"), st.just(1), st.none(), st.none()),
    st.tuples(st.just("sync"), st.integers(0, 2), st.integers(0, 2), st.none()),
    st.tuples(st.just("late"), st.just(3), st.integers(2, 2), st.sampled_from(["revoke", *ROLES])),
    st.tuples(st.just("feed"), st.integers(0, 2), st.none(), st.none()),
)


def _run(dbs: list[Any], keys: list[Any], ops: list[Any], late: Any) -> None:
    for op, who, n, value in ops:
        db = dbs[who] if who < len(dbs) else late
        try:
            if op == "grant":
                db.grant(keys[n], value)
            elif op == "revoke":
                db.revoke(keys[n])
            elif op == "write":
                db["c"].save({"_id": f"d{n}", "v": value, "by": who})
            elif op == "snap":
                db.snapshot()
            elif op == "sync":
                exchange(dbs[who], dbs[n])
            elif op == "feed":  # L hears from a peer; nobody hears from L
                for info in db._repo.list_logs(db.id):
                    _forward(db, late, info.id)
            elif value == "revoke":  # L, whose log the others get only at the end
                late.revoke(keys[n])
            else:
                late.grant(keys[n], value)
        except (errors.PermissionDenied, errors.InvalidInput):
            continue  # refused locally, nothing written


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(step, max_size=18), st.lists(step, max_size=12))
def test_property_a_compacted_members_database_behaves_as_its_uncompacted_twin(
    before: list[Any], after: list[Any]
) -> None:
    """Owner O, admin A (who compacts) and B (granted and revoked at random) write, grant,
    revoke and snapshot, syncing pairwise; admin L, fed their logs now and then, grants
    and revokes B concurrently, its log held back until everything else is done — a late
    revoke the compaction never saw. A compacts at a snapshot once every log passed it (or
    with ``force`` when only a revoked writer's log lags: all its records are exchanged). T, with
    A's identity, keeps everything. After all is exchanged: the access table, members(),
    rejected() and roles are T's always; the documents, instances, indexes and configs
    too unless ``basestate.stale`` lists a write inside the snapshot.
    """
    ida = Identity.generate()
    with (
        tk.Peer(memory=True) as p0,
        tk.Peer(memory=True, identity=ida) as p1,
        tk.Peer(memory=True) as p2,
        tk.Peer(memory=True) as pl,
        tk.Peer(memory=True, identity=ida) as pt,
    ):
        first = _members_db(p0)
        keys = [p0.identity.public, ida.public, p2.identity.public, pl.identity.public]
        first.grant(ida.public, "admin")
        first.grant(keys[3], "admin")
        first.grant(keys[2], "writer")  # L knows it: its revoke of B can cut B's writes
        dbs = [first, replica(p1, first), replica(p2, first)]
        late = replica(pl, first)
        exchange(*dbs)
        _forward(first, late, first.log_id)
        _run(dbs, keys, before, late)
        exchange(*dbs)
        compactor = dbs[1]
        try:
            snap = compactor.snapshot()
        except errors.InvalidInput:  # it holds a record it cannot read
            event("no snapshot: a locked record")
            return
        for db in dbs:
            with contextlib.suppress(errors.PermissionDenied):
                db["c"].save({"_id": "past", "by": db.log_id})
        exchange(*dbs)
        twin = replica(pt, first)
        exchange(*dbs, twin)
        assert _live(compactor) == _live(twin)
        try:
            compactor.compact(snap)
        except errors.InvalidInput as exc:
            assert "have not written since" in str(exc)
            event("forced: a revoked writer's log lags")
            compactor.compact(snap, force=True)
        _run(dbs, keys, after, late)
        exchange(*dbs, late, twin)
        mine, theirs = state(compactor), state(twin)
        assert mine["access"] == theirs["access"]
        assert member_state(compactor)[1:] == member_state(twin)[1:]
        for key in keys:
            assert compactor.role_of(key) == twin.role_of(key)
        assert_settled(compactor)
        stale = basestate.stale(compactor)
        event(f"stale: {bool(stale)}")
        if not stale:
            assert _live(compactor) == _live(twin)
            assert member_state(compactor) == member_state(twin)
