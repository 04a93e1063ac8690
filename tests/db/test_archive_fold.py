"""An import folds the records it opened while checking the archive (db.received.opened_records).

The fold must store the same bytes as a fold that opens every stored record again
(the path before the hand-over, and what a crash between storing and folding takes),
and a handed record whose blocks are not the stored ones is never used.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import pytest
from snapshot_helpers import FOLDED_TABLES, state

import threadkit as tk
from threadkit.core.records import RecordBlocks
from threadkit.db import archive, received
from threadkit.store import reads
from threadkit.store.logs import list_logs


def _state(db: Any) -> dict[str, dict[bytes, bytes]]:
    """Every folded table's entries under the database's prefix, prefix stripped."""
    return state(db, FOLDED_TABLES)


@pytest.fixture
def exported(tmp_path: Path) -> Path:
    with tk.Peer(tmp_path / "src", network=False) as peer:
        db = peer.new_db("fold")
        people = db.new_collection("people", indexes=[{"path": "age"}])
        people.create(*({"_id": f"p{i}", "age": i} for i in range(30)))
        for i in range(5):
            people.create({"_id": f"q{i}", "age": 100 + i})
        people.save({"_id": "p1", "age": 41})
        people.delete("p2")
        out = tmp_path / "db.car"
        db.export(out, keys="full")
    return out


def _counting_opens(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    real = received.open_record

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(received, "open_record", counted)
    return calls


def test_the_fold_of_handed_records_equals_the_fold_that_reopens(
    exported: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    opens = _counting_opens(monkeypatch)
    with tk.Peer(tmp_path / "fast", network=False) as peer:
        fast = peer.import_db(exported)
        fast_state, fast_docs = _state(fast), list(fast["people"].find())
    assert opens == []  # every record came from the archive's check
    monkeypatch.setattr(received, "opened_records", lambda records: contextlib.nullcontext())
    with tk.Peer(tmp_path / "slow", network=False) as peer:
        slow = peer.import_db(exported)
        assert _state(slow) == fast_state
        assert list(slow["people"].find()) == fast_docs
    assert len(opens) == archive.read_archive(exported)[4].records  # each opened again


def test_a_handed_record_with_other_blocks_is_not_used(exported: Path, tmp_path: Path) -> None:
    with tk.Peer(tmp_path / "dst", network=False) as peer:
        db = peer.import_db(exported)
        with db._repo.transaction() as txn:
            info = next(i for i in list_logs(txn, db._repo.tables, db.id) if i.id != db.log_id)
            stored = reads.read_log(txn, db._repo.tables, db.id, info.id)[0]
        record = received._reopen(stored, db.key, info.public)
        odd = record._replace(blocks=RecordBlocks(*stored.blocks[:3], stored.blocks[3] + b"x"))
        with received.opened_records([odd]):
            again = received._reopen(stored, db.key, info.public)
        assert again is not odd and again == record
        with received.opened_records([record]):
            assert received._reopen(stored, db.key, info.public) is record
        assert received._reopen(stored, db.key, info.public) is not record  # only within
