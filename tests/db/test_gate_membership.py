"""The gate's membership entries kept in memory: never those of an aborted transaction."""

from __future__ import annotations

import pytest

import threadkit as tk
from threadkit.db import members
from threadkit.errors import PermissionDenied


class _Abort(Exception):
    pass


def test_a_grant_in_an_aborted_transaction_is_forgotten() -> None:
    with tk.Peer(memory=True, network=False) as a, tk.Peer(memory=True, network=False) as b:
        db = a.new_db("club", open=False)
        notes = db.new_collection("Notes")
        notes.create({"n": 1})
        other = str(b.identity.public)
        with a._repo.transaction() as txn:
            before = [(e.log, e.counter) for e in db.gate.membership(txn)]
        grant = members.Entry(
            db.log_id, 99, "grant", 1 << 62, str(a.identity.public),
            {"target": other, "role": 2, "heads": {}}, ok=True,
        )  # fmt: skip
        with pytest.raises(_Abort), db.engine.write(db._repo) as txn:
            db.gate._put(txn, grant)
            assert (db.log_id, 99) in [(e.log, e.counter) for e in db.gate.membership(txn)]
            raise _Abort
        with a._repo.transaction() as txn:
            assert [(e.log, e.counter) for e in db.gate.membership(txn)] == before
        with pytest.raises(PermissionDenied):
            notes.create({"n": 2}, identity=b.identity)
        assert notes.count() == 1


def test_a_store_without_a_mark_is_read_once() -> None:
    with tk.Peer(memory=True, network=False) as a:
        db = a.new_db("club", open=False)
        db.new_collection("Notes").create({"n": 1})
        with db.engine.write(db._repo) as txn:  # as a store written before marks
            txn.delete(db.prefix + b"\xff", db=db._tables.applied)
        with a._repo.transaction() as txn:
            assert members.membership_mark(txn, db._tables.applied, db.prefix) is None
            assert [e.kind for e in db.gate.membership(txn)] == ["genesis"]
        db["Notes"].create({"n": 2})
        assert db["Notes"].count() == 2
