"""Compacting a migrated collection (threadkit.db.compaction, the fold's *folded* creates).

A compacted peer must behave exactly as an uncompacted twin holding the same records:
its documents, indexes and lost writes, time travel after the snapshot, later migrations,
and writes from peers that had not seen a migration (rewritten on arrival, event ``s``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, suppress
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from replicas import sync
from snapshot_helpers import exchange
from test_db_convergence import COLL, PHASES, World, dump, push, run_txn
from test_migrations import STEP, TRANSFORMS

import threadkit as tk
from threadkit.db.compaction import frontier
from threadkit.db.database import Database
from threadkit.db.handoff import handoff, replica
from threadkit.errors import InstanceNotFound, WriteRejected


@pytest.fixture
def world() -> Iterator[World]:
    with ExitStack() as stack:
        yield World(stack)


def behaviour(db: Database, compacted: Database) -> dict[str, Any]:
    """What a peer shows: documents, index entries, config, the present, and the lost
    writes of events after the frontier ``compacted`` compacted at (those of events before
    it go when their instance is folded again: docs/lifecycle.md)."""
    found = frontier(compacted)
    front = found[0] if found else b""
    return {
        "docs": db[COLL].find(),
        "index": dump(db, "index"),
        "inst": dump(db, "inst"),
        "lost": [w for w in db.lost_writes() if w["loser"] > front],
        "config": db.collection_info(COLL),
        "now": db[COLL].at(db.heads()).to_dict("records"),
    }


def later_events(db: Database, compacted: Database) -> list[tuple[bytes, bytes]]:
    """The event index entries after the frontier ``compacted`` compacted at."""
    found = frontier(compacted)
    assert found is not None
    front = found[0]
    return [(k, v) for k, v in dump(db, "events") if k[-len(front) :] > front]


def test_a_migrated_collection_compacts_and_later_writes_behave_as_on_a_full_peer() -> None:
    with tk.Peer(memory=True) as a, tk.Peer(memory=True) as b, tk.Peer(memory=True) as c:
        db = a.new_db("k")
        items = db.new_collection(COLL)
        items.create(*[{"_id": f"d{i}", "name": "p", "n": i} for i in range(5)])
        items.save({"_id": "d1", "name": "q", "n": 10})
        db.migrate(COLL, TRANSFORMS[0])
        items.save({"_id": "d2", "label": "r", "n": "20"})
        offline = replica(c, db)
        handoff(db, offline)  # has seen the first migration, not the second
        db.migrate(COLL, TRANSFORMS[1])
        snap = db.snapshot()
        items.save({"_id": "d3", "title": "s"})
        twin = replica(b, db)
        handoff(db, twin)
        done = db.compact(snap, force=True)
        assert done.events > 0
        assert db[COLL].find_by_id("d1")["title"] == "q"
        assert behaviour(db, db) == behaviour(twin, db)
        # a write from a peer that had not seen the second migration is rewritten on arrival
        offline[COLL].save({"_id": "d4", "label": "old shape", "kind": "x"})
        db.migrate(COLL, [{"default": "v", "value": 1}])
        exchange(db, offline, twin)
        assert db[COLL].find_by_id("d4") == twin[COLL].find_by_id("d4")
        assert "label" not in db[COLL].find_by_id("d4") and db[COLL].find_by_id("d4")["v"] == 1
        assert behaviour(db, db) == behaviour(twin, db) == behaviour(offline, db)
        assert later_events(db, db) == later_events(twin, db)


def _play(writers: list[Database], steps: list[Any]) -> None:
    for step in steps:
        db = writers[step[1]]
        if step[0] == "txn":
            run_txn(db, step[2])
        elif step[0] == "migrate":
            db.migrate(COLL, TRANSFORMS[step[2]])
        elif step[0] == "purge":
            with suppress(WriteRejected, InstanceNotFound):
                db[COLL].purge(step[2])
        elif step[1] != step[2]:
            push(db, writers[step[2]])


@pytest.mark.slow
@settings(
    max_examples=40,
    phases=PHASES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    before=st.lists(STEP, min_size=1, max_size=10),
    after=st.lists(STEP, min_size=0, max_size=10),
)
# two concurrent migrations; time travel over the compacted create ran the one sorted
# first a second time (threadkit.db.replay applies a folded create after them now)
@example(
    before=[
        ("txn", 2, [("create", None, {}), ("save", "b", [("set", "name", "blue")])]),
        ("migrate", 0, 1),
        ("migrate", 1, 0),
    ],
    after=[],
)
def test_property_a_compacted_peer_behaves_as_its_uncompacted_twin(
    before: list[Any], after: list[Any]
) -> None:
    """Three writers write, migrate, purge and exchange in part; writer 0 snapshots once all
    have met, and compacts when each has written since; more of the same follows (writes
    against schemas their writers had not seen included). Writer 0 and a twin that kept
    every record (and writes nothing) show the same documents, indexes, lost writes,
    config and present, and hold the same events after the frontier."""
    with ExitStack() as stack:
        world = World(stack)
        writers = world.writers()
        _play(writers, before)
        sync(*writers)
        snap = writers[0].snapshot()
        for w in writers[1:]:  # every writer's clock passes the snapshot
            run_txn(w, [("create", None, {"n": 1})])
        sync(*writers)
        twin = world.fresh(writers[0], writers)
        sync(*writers, twin)
        writers[0].compact(snap)
        assert behaviour(writers[0], writers[0]) == behaviour(twin, writers[0])
        _play(writers, after)
        exchange(*writers, twin)
        assert behaviour(writers[0], writers[0]) == behaviour(twin, writers[0])
        assert later_events(writers[0], writers[0]) == later_events(twin, writers[0])
