"""Compaction (threadkit.db.compaction): db.compact(before=snapshot).

Records and history before the snapshot go from this peer; the documents, indexes and
configs stay exactly those of a peer that kept everything, later writes replicate both
ways, a peer joining afterwards bootstraps from the snapshot, and time travel before it
is a clear error naming the snapshot.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from snapshot_helpers import exchange, state

import threadkit as tk
from threadkit import errors
from threadkit.db import bootstrap
from threadkit.db.handoff import handoff, replica
from threadkit.store.trim import compact_copy

LIVE = ("colls", "docs", "inst", "index", "losers")


def _live(db: Any) -> dict[str, dict[bytes, bytes]]:
    return {name: rows for name, rows in state(db).items() if name in LIVE}


def _edit(db: Any, docs: int, saves: int) -> None:
    coll = db.new_collection("c", indexes=[{"path": "n"}])
    coll.create(*[{"_id": f"d{i}", "n": 0, "text": "x" * 200} for i in range(docs)])
    for n in range(1, saves):
        with coll.write_txn() as txn:
            txn.save(*[{"_id": f"d{i}", "n": n} for i in range(docs)])


def test_compaction_drops_records_and_history_and_keeps_the_state(tmp_path: Path) -> None:
    with tk.Peer(memory=True) as a, tk.Peer(memory=True) as b, tk.Peer(memory=True) as c:
        db = a.new_db("k")
        _edit(db, 30, 10)
        snap = db.snapshot()
        db["c"].save({"_id": "d0", "n": 100})
        full = replica(b, db)
        handoff(db, full)
        before_copy = compact_copy(a.repo, tmp_path / "before")
        done = db.compact(snap)
        # each instance's create and 9 saves: one create of its document stays
        assert done.records == snap.heads[db.log_id] and done.events == 30 * 9
        assert compact_copy(a.repo, tmp_path / "after") < before_copy
        assert _live(db) == _live(full)
        assert len(db._repo.read_log(db.id, db.log_id)) == 2  # the snapshot and the save
        # time travel before the snapshot names it; after it, it works
        with pytest.raises(errors.HistoryCompacted, match=str(snap)):
            db["c"].at(0)
        with pytest.raises(errors.HistoryCompacted, match=str(snap)):
            db["c"].at({db.log_id: 3})
        now = db["c"].at(db.heads())
        assert now.equals(full["c"].at(full.heads()))
        assert sorted(now["n"]) == [9] * 29 + [100]
        assert len(db.history()) < len(full.history())
        # later writes replicate both ways
        db["c"].save({"_id": "d1", "n": 200})
        full["c"].save({"_id": "d2", "n": 300})
        exchange(db, full)
        assert _live(db) == _live(full)
        # a peer joining after the compaction bootstraps from the snapshot it kept
        late = bootstrap.install(c.manager, bootstrap.offer(db), db.key, db.id, "k", [a.identity])
        exchange(db, full, late)
        assert _live(late) == _live(full) == _live(db)
        assert late["c"].find_by_id("d2")["n"] == 300


def test_compaction_waits_for_every_writer_to_pass_the_snapshot() -> None:
    with tk.Peer(memory=True) as a, tk.Peer(memory=True) as b:
        db = a.new_db("k")
        db.new_collection("c").create({"_id": "x", "n": 1})
        other = replica(b, db)
        exchange(db, other)
        other["c"].save({"_id": "x", "n": 2})
        exchange(db, other)
        snap = db.snapshot()
        with pytest.raises(errors.InvalidInput, match=other.log_id):
            db.compact(snap)
        exchange(db, other)
        other["c"].save({"_id": "x", "n": 3})  # its clock has merged the snapshot's stamps
        exchange(db, other)
        assert db.compact(snap).records > 0
        assert _live(db) == _live(other)


def test_force_and_a_snapshot_whose_blocks_are_not_held() -> None:
    with tk.Peer(memory=True) as a, tk.Peer(memory=True) as b:
        db = a.new_db("k")
        db.new_collection("c").create({"_id": "x", "n": 1})
        other = replica(b, db)
        exchange(db, other)
        other["c"].save({"_id": "x", "n": 2})
        snap = db.snapshot()
        exchange(db, other)
        with pytest.raises(errors.InvalidSnapshot, match="blocks"):
            other.compact(snap, force=True)
        assert db.compact(snap, force=True, keep_blocks=False).records == 2
        assert bootstrap.offer(db) is None  # nothing left to start a joiner from
        assert [s.held for s in db.snapshots()] == [False]


steps = st.lists(
    st.tuples(
        st.sampled_from(["create", "save", "delete", "sync"]),
        st.integers(0, 1),
        st.integers(0, 3),
        st.one_of(st.integers(-3, 3), st.text(max_size=3), st.none()),
    ),
    max_size=20,
)


def _apply(dbs: list[Any], plan: list[Any]) -> None:
    for op, writer, n, value in plan:
        coll, doc_id = dbs[writer]["c"], f"d{n}"
        if op == "create" and not coll.has(doc_id):
            coll.create({"_id": doc_id, "v": value})
        elif op == "save" and coll.has(doc_id):
            coll.save({"_id": doc_id, "v": value, "w": [value]})
        elif op == "delete" and coll.has(doc_id):
            coll.delete(doc_id)
        elif op == "sync":
            exchange(*dbs)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps, steps)
def test_property_compaction_keeps_the_state_and_later_writes_converge(
    before: list[Any], after: list[Any]
) -> None:
    """Two writers, concurrent edits; one compacts at a snapshot once both wrote after it:
    its documents, instances, indexes and configs stay those of a replica that kept
    everything, through the writes that follow on both sides."""
    with tk.Peer(memory=True) as a, tk.Peer(memory=True) as b, tk.Peer(memory=True) as c:
        first = a.new_db("p")
        first.new_collection("c", indexes=[{"path": "v"}])
        dbs = [first, replica(b, first)]
        exchange(*dbs)
        _apply(dbs, before)
        exchange(*dbs)
        snap = first.snapshot()
        dbs[1]["c"].create({"v": "past the snapshot"})
        exchange(*dbs)
        keeper = replica(c, first)
        exchange(*dbs, keeper)
        first.compact(snap)
        _apply(dbs, after)
        exchange(*dbs, keeper)
        assert _live(first) == _live(keeper) == _live(dbs[1])


def test_a_deleted_compacted_database_leaves_no_log_start_behind() -> None:
    with tk.Peer(memory=True) as a, tk.Peer(memory=True) as b:
        db = a.new_db("k")
        db.new_collection("c").create({"_id": "x", "n": 1})
        snap = db.snapshot()
        copy = bootstrap.install(b.manager, bootstrap.offer(db), db.key, db.id, "k", [a.identity])
        b.manager.delete_db(copy.id)
        with b.repo.transaction() as txn:
            assert not any(
                bytes(k).startswith(b"logstart/") for k, _ in txn.cursor(b.repo.tables.meta)
            )
        again = replica(b, db)  # the same thread and logs, joined in full this time
        handoff(db, again)
        assert again["c"].find_by_id("x")["n"] == 1
        db.compact(snap)
        assert len(db._repo.read_log(db.id, db.log_id)) == 1


def test_a_purged_document_compacts_with_the_rest() -> None:
    with tk.Peer(memory=True) as a, tk.Peer(memory=True) as b:
        db = a.new_db("k")
        _edit(db, 5, 3)
        db["c"].delete("d0")
        db["c"].purge("d0")
        snap = db.snapshot()
        db["c"].save({"_id": "d1", "n": 100})
        full = replica(b, db)
        handoff(db, full)
        done = db.compact(snap)
        assert done.events > 0
        assert _live(db) == _live(full)
        assert not db["c"].has("d0")


def test_compacting_across_a_migration_keeps_the_migrated_state() -> None:
    """Once refused (a refold would migrate the compacted creates again): now the folded
    creates carry the frontier, and the state stays that of a peer that kept everything
    (tests/db/test_compaction_migrated.py holds the property test)."""
    with tk.Peer(memory=True) as a, tk.Peer(memory=True) as b:
        db = a.new_db("k")
        _edit(db, 5, 3)
        db["c"].create({"_id": "t", "text": "hello"})
        db["c"].save({"_id": "t", "text": "hello", "n": 1})
        db.migrate("c", transform=[{"rename": "text", "to": "body"}])
        snap = db.snapshot()
        db["c"].save({"_id": "d1", "n": 100})
        full = replica(b, db)
        handoff(db, full)
        assert db.compact(snap).events > 0
        db.migrate("c", transform=[{"rename": "body", "to": "words"}])
        exchange(db, full)
        assert _live(db) == _live(full)
        assert db["c"].find_by_id("d1")["n"] == 100
        assert db["c"].find_by_id("t")["words"] == "hello"


def test_a_compacted_database_refuses_to_export_an_archive_that_would_not_import(
    tmp_path: Path,
) -> None:
    with tk.Peer(memory=True) as a:
        db = a.new_db("k")
        _edit(db, 3, 2)
        snap = db.snapshot()
        db["c"].save({"_id": "d1", "n": 100})
        db.export(tmp_path / "before.car")  # before compaction an archive is fine
        db.compact(snap)
        target = tmp_path / "after.car"
        with pytest.raises(errors.InvalidInput, match=f"compacted from snapshot {snap}"):
            db.export(target)
        assert not target.exists()


def test_a_document_a_save_created_keeps_its_bytes_after_compaction() -> None:
    """A save of a new ``_id`` stores the document with ``_id`` where the patch left it;
    the compacted create must hold it the same way when a later save refolds it, or the
    compacted peer's rows differ in bytes from a full peer's (and a snapshot it takes
    later differs from a full peer's replay)."""
    with tk.Peer(memory=True) as a, tk.Peer(memory=True) as b:
        db = a.new_db("k")
        db.new_collection("c").save({"n": 1, "_id": "x", "z": 0})
        other = replica(b, db)
        exchange(db, other)
        snap = db.snapshot()
        exchange(db, other)
        other["c"].save({"_id": "x", "n": 2})  # written before a's next save, arrives after
        db["c"].save({"_id": "x", "z": 3})
        assert db.compact(snap, force=True).records > 0
        exchange(db, other)  # a refolds x from its compacted create
        assert state(db)["docs"] == state(other)["docs"]
