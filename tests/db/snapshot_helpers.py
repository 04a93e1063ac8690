"""Test helpers for snapshots and compaction: the state tables, and replicas exchanging logs."""

from __future__ import annotations

from typing import Any

from threadkit.core.records import open_record
from threadkit.db.snapshots import STATE_TABLES

__all__ = ["exchange", "state"]


def state(db: Any) -> dict[str, dict[bytes, bytes]]:
    """Every table a snapshot holds, under the database's prefix, prefix stripped."""
    out = {}
    with db.read_txn() as txn:
        for name in STATE_TABLES:
            cursor = txn.cursor(db=getattr(db._tables, name))
            rows: dict[bytes, bytes] = {}
            if cursor.set_range(db.prefix):
                for key, value in cursor:
                    if not bytes(key).startswith(db.prefix):
                        break
                    rows[bytes(key)[len(db.prefix) :]] = bytes(value)
            out[name] = rows
    return out


def exchange(*dbs: Any) -> None:
    """Every replica hands every log it holds to every other (twice: relays included)."""
    for _ in range(2):
        for source in dbs:
            for target in dbs:
                if source is target:
                    continue
                for info in source._repo.list_logs(source.id):
                    _forward(source, target, info.id)


def _forward(source: Any, target: Any, log_id: str) -> None:
    if not any(i.id == log_id for i in target._repo.list_logs(target.id)):
        target._repo.add_log(target.id, source._repo.get_log(source.id, log_id).public)
    have = target._repo.get_head(target.id, log_id).counter
    public = source._repo.get_log(source.id, log_id).public
    stored = source._repo.read_log(source.id, log_id, after=have)
    if stored:
        target.apply_records(
            log_id,
            [open_record(s.blocks, service_key=source.key, log_key=public) for s in stored],
        )
