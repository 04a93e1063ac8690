"""Received records in an open database: each entry stored once, with the verdict it was
applied with, whichever way the records arrive (the gate defers the entry's write to
settle); a genesis arriving late still re-judges every entry."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack

import pytest
from members_helpers import NO_PROOF, assert_settled, forge, forged_create, forged_grant, state
from replicas import know_log, log_records, replica

import threadkit as tk
from threadkit.db import members
from threadkit.db.database import Database
from threadkit.db.members import member_node


@pytest.fixture
def stack() -> Iterator[ExitStack]:
    with ExitStack() as s:
        yield s


def _entries(db: Database) -> dict[tuple[str, int], tuple[str, bool]]:
    with db._repo.transaction() as txn:
        return {
            (e.log, e.counter): (e.kind, e.ok)
            for e in members.iter_entries(txn, db._tables.access, db.prefix)
        }


def _deliver(target: Database, source: Database, step: int) -> None:
    know_log(target, source)
    records = log_records(source)
    for k in range(0, len(records), step):
        result = target.apply_records(source.log_id, records[k : k + step])
        assert result.gap is None


def _open_writer(stack: ExitStack) -> tuple[Database, list[Database]]:
    peers = [stack.enter_context(tk.Peer(memory=True)) for _ in range(3)]
    origin = peers[0].new_db("open")
    origin.new_collection("Notes")
    origin["Notes"].create({"_id": "a", "n": 1})
    origin["Notes"].save({"_id": "a", "n": 2})
    forged_create(origin, "Notes", "unproven", proof=NO_PROOF)
    forged_grant(origin, tk.Identity.generate().public, "writer")  # open: it does not count
    origin["Notes"].create([{"_id": "b"}, {"_id": "c"}])
    return origin, [replica(p, origin) for p in peers[1:]]


def test_each_received_entry_is_stored_once_with_its_verdict(stack: ExitStack) -> None:
    origin, (whole, one_by_one) = _open_writer(stack)
    _deliver(whole, origin, step=100)
    _deliver(one_by_one, origin, step=1)
    for db in (whole, one_by_one):
        assert_settled(db)
        assert _entries(db) == _entries(origin)
        assert state(db) == state(origin)
    kinds = sorted(_entries(whole).values())
    assert ("unproven", False) in kinds and ("grant", False) in kinds
    assert sum(ok for _, ok in kinds) == len(kinds) - 2
    assert sorted(d["_id"] for d in whole["Notes"].find()) == ["a", "b", "c"]


def test_a_late_genesis_re_judges_entries_noted_with_it(stack: ExitStack) -> None:
    origin, (whole, one_by_one) = _open_writer(stack)
    with origin._repo.transaction() as txn:
        heads = origin.gate.heads(txn)
    forge(origin, [], member=member_node("genesis", origin.hlc.now(), heads, open=False))
    assert origin.access == "members"
    cut = [ok for kind, ok in _entries(origin).values() if kind in ("write", "config")]
    assert cut and not any(cut)  # every write sorts before the genesis: all cut, state rebuilt
    _deliver(whole, origin, step=100)  # writes and the genesis settle in one batch
    _deliver(one_by_one, origin, step=1)
    for db in (whole, one_by_one):
        assert_settled(db)
        assert _entries(db) == _entries(origin)
        assert state(db) == state(origin)
