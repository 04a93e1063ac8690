"""Checking the snapshot a database bootstrapped from, against records fetched elsewhere
(threadkit.db.backfill): a wrong one is marked bad and the state rebuilt, a good one verified,
and a snapshot whose records no peer holds is unverifiable."""

from __future__ import annotations

import logging
from typing import Any

import cbor2
import pytest
from snapshot_helpers import exchange, members_cast, state

import threadkit as tk
from threadkit.core.records import Record, create_record
from threadkit.core.writerproof import delegate
from threadkit.db import backfill, bootstrap, dockeys
from threadkit.db.events import Action, RecordEvent, encode_body
from threadkit.db.handoff import handoff, log_records, replica
from threadkit.errors import InvalidSnapshot


def _write(db: Any) -> list[str]:
    items = db.new_collection("Items", indexes=[tk.Index("n")])
    ids: list[str] = items.create(*({"n": i} for i in range(30)))
    items.save({"_id": ids[1], "n": 100})
    items.delete(ids[2])
    return ids


def _tamper(db: Any, instance_id: str) -> None:
    """What modified code would do: a stored document changed behind the engine's back."""
    key = dockeys.doc_key(db.engine.coll_key("Items"), instance_id)
    with db._repo.transaction(write=True) as txn:
        txn.put(key, cbor2.dumps({"_id": instance_id, "forged": True}), db=db._tables.docs)


def _history(db: Any, snap: Any) -> dict[str, list[Record]]:
    """What a peer holding every record serves: each log up to the snapshot's heads."""
    return {log_id: log_records(db, log_id)[:counter] for log_id, counter in snap.heads.items()}


def test_a_wrong_snapshot_is_found_out_and_the_state_rebuilt(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with tk.Peer(memory=True) as a, tk.Peer(memory=True) as b, tk.Peer(memory=True) as c:
        db = a.new_db("s")
        ids = _write(db)
        full = replica(c, db)
        handoff(db, full)
        _tamper(db, ids[3])
        snap = db.snapshot()
        db["Items"].save({"_id": ids[4], "n": -4})  # a record after the snapshot
        handoff(db, full)
        joined = bootstrap.install(b.manager, bootstrap.offer(db), db.key, db.id, "s", [a.identity])
        handoff(db, joined)
        assert joined["Items"].find_by_id(ids[3]).get("forged") is True  # it was believed
        feed = joined.listen("Items")
        joined.history_source = lambda _db, s: _history(db, s)
        with caplog.at_level(logging.WARNING, logger="threadkit"):
            assert joined.verify_snapshot(snap) is False
        assert "WRONG" in caplog.text
        assert [s.status for s in joined.snapshots() if s.cid == snap.cid] == ["bad"]
        assert state(joined) == state(full)
        assert joined["Items"].find_by_id(ids[3]) == full["Items"].find_by_id(ids[3])
        assert joined["Items"].find_by_id(ids[4])["n"] == -4
        seen = []
        while (event := feed.get_nowait()) is not None:
            seen.append(event)
        assert any(getattr(e, "instance_id", None) == ids[3] for e in seen), "not told"
        # later records apply on the rebuilt state, and the snapshot is not offered again
        db["Items"].save({"_id": ids[5], "n": -5})
        handoff(db, joined)
        handoff(db, full)
        assert state(joined) == state(full)
        assert bootstrap.offer(joined) is None


def test_a_good_snapshot_is_verified_and_the_records_dropped() -> None:
    with tk.Peer(memory=True) as a, tk.Peer(memory=True) as b:
        db = a.new_db("s")
        _write(db)
        snap = db.snapshot()
        joined = bootstrap.install(b.manager, bootstrap.offer(db), db.key, db.id, "s", [a.identity])
        before = state(joined)
        joined.history_source = lambda _db, s: _history(db, s)
        assert joined.verify_snapshot(snap) is True
        assert [s.status for s in joined.snapshots() if s.cid == snap.cid] == ["verified"]
        assert state(joined) == before
        # the records before the snapshot were only checked, not kept
        assert len(joined._repo.read_log(db.id, db.log_id)) == 1  # the snapshot record


def test_records_that_do_not_reach_the_head_are_refused() -> None:
    with tk.Peer(memory=True) as a, tk.Peer(memory=True) as b:
        db = a.new_db("s")
        _write(db)
        snap = db.snapshot()
        joined = bootstrap.install(b.manager, bootstrap.offer(db), db.key, db.id, "s", [a.identity])
        short = {log_id: records[:-1] for log_id, records in _history(db, snap).items()}
        with pytest.raises(InvalidSnapshot, match="do not reach"):
            backfill.check_bootstrap(joined, backfill.base_snapshot(joined), short)  # type: ignore[arg-type]
        assert [s.status for s in joined.snapshots()] == ["received"]


def test_no_peer_with_the_records_makes_it_unverifiable() -> None:
    with tk.Peer(memory=True) as a, tk.Peer(memory=True) as b:
        db = a.new_db("s")
        _write(db)
        snap = db.snapshot()
        joined = bootstrap.install(b.manager, bootstrap.offer(db), db.key, db.id, "s", [a.identity])
        joined.history_source = lambda _db, s: None
        with pytest.raises(InvalidSnapshot, match="no peer serves"):
            joined.verify_snapshot(snap)
        assert [s.status for s in joined.snapshots()] == ["unverifiable"]
        assert bootstrap.offer(joined) is not None  # still in use: it may well be right


def test_a_head_its_log_does_not_end_at_marks_it_bad() -> None:
    """The log's owner signed another record at the head's counter (a fork): the records
    chain from the first, but not to the head the manifest names."""
    with tk.Peer(memory=True) as a, tk.Peer(memory=True) as b:
        db = a.new_db("s")
        _write(db)
        snap = db.snapshot()
        joined = bootstrap.install(b.manager, bootstrap.offer(db), db.key, db.id, "s", [a.identity])
        before = state(joined)
        history = _history(db, snap)
        records = history[db.log_id]
        stamp = db.hlc.now()
        event = RecordEvent(stamp, Action.CREATE, "Items", "fork", {"n": 1})
        proof = delegate(db.identity, thread_id=db.id, log=db.log_key.public).to_node()
        fork = create_record(
            encode_body([event], proof),
            log_key=db.log_key,
            key=db.key,
            prev=records[-2].cid,
            author=db.identity.public,
        )
        history[db.log_id] = [*records[:-1], fork]
        assert backfill.check_bootstrap(joined, backfill.base_snapshot(joined), history) is False  # type: ignore[arg-type]
        assert [s.status for s in joined.snapshots() if s.cid == snap.cid] == ["bad"]
        assert state(joined) == before  # nothing to rebuild from


@pytest.mark.parametrize("wrong", [False, True])
def test_a_members_snapshot_is_checked_too(wrong: bool) -> None:
    """A database with members (a writer granted, a revoke rotating the read key): the
    joiner's check replays the records with the key epochs sealed to it; a right snapshot
    is verified, a wrong one found out and the state rebuilt to a full replay's bytes."""
    with members_cast("Items") as (o, w, j, f, db, wdb):
        ids = wdb["Items"].create(*({"n": i} for i in range(5)))
        exchange(db, wdb)
        db.revoke(w.identity.public)
        db["Items"].create({"_id": "rotated", "n": 9})
        if wrong:
            _tamper(db, ids[2])
        snap = db.snapshot()
        db["Items"].save({"_id": "rotated", "n": 10})
        joined = bootstrap.install(j.manager, bootstrap.offer(db), db.key, db.id, "m", [o.identity])
        full = replica(f, db)
        exchange(db, joined, full)
        assert (state(joined) != state(full)) is wrong
        joined.history_source = lambda _db, s: _history(db, s)
        assert joined.verify_snapshot(snap) is (not wrong)
        status = [s.status for s in joined.snapshots() if s.cid == snap.cid]
        assert status == ["bad" if wrong else "verified"]
        assert state(joined) == state(full)
