"""Test harness: replicas of one database in in-process peers (see threadkit.db.handoff)."""

from __future__ import annotations

from collections.abc import Iterable

from threadkit.core.records import Record
from threadkit.db.database import Database
from threadkit.db.handoff import know_log, log_records, replica

__all__ = ["deliver", "know_log", "log_records", "replica", "snapshot", "sync"]


def deliver(target: Database, source: Database, records: Iterable[Record]) -> None:
    """Hand records of ``source``'s own log to ``target``; they must link (no gap)."""
    know_log(target, source)
    result = target.apply_records(source.log_id, list(records))
    assert result.gap is None, result


def sync(*dbs: Database) -> None:
    """Deliver every log to every replica, in order."""
    for target in dbs:
        for source in dbs:
            if source is not target:
                deliver(target, source, log_records(source))


def snapshot(db: Database) -> dict[str, list[dict[str, object]]]:
    """Every collection's documents, for comparing replicas."""
    return {c.name: c.find() for c in db.list_collections()}
