"""Test helpers for snapshots and compaction: the state tables, and replicas exchanging logs."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, NamedTuple

import threadkit as tk
from threadkit.core.identity import Identity
from threadkit.core.records import open_record
from threadkit.db.handoff import replica
from threadkit.db.snapshots import STATE_TABLES

__all__ = ["FOLDED_TABLES", "Cast", "exchange", "members_cast", "state"]


FOLDED_TABLES = ("colls", "docs", "inst", "events", "index", "lost", "losers")
"""The tables a fold of the records writes (what an import must give byte for byte)."""


def state(db: Any, tables: Sequence[str] = STATE_TABLES) -> dict[str, dict[bytes, bytes]]:
    """Every table a snapshot holds (or ``tables``), under the database's prefix, prefix
    stripped."""
    out = {}
    with db.read_txn() as txn:
        for name in tables:
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


class Cast(NamedTuple):
    """The peers of :func:`members_cast` and the database on its owner and writer."""

    o: tk.Peer  # the owner
    w: tk.Peer  # a writer
    j: tk.Peer  # the reader (to join from a snapshot)
    f: tk.Peer  # the reader again (to replay every record)
    db: Any  # the owner's database
    wdb: Any  # the writer's replica of it


@contextmanager
def members_cast(collection: str) -> Iterator[Cast]:
    """An owner's database with members (``collection`` in it): a writer granted and holding
    a replica that has exchanged logs with the owner, a reader granted, and two peers of
    that reader's identity."""
    reader = Identity.generate()
    with (
        tk.Peer(memory=True) as o,
        tk.Peer(memory=True) as w,
        tk.Peer(memory=True, identity=reader) as j,
        tk.Peer(memory=True, identity=reader) as f,
    ):
        db = o.new_db("m", open=False)
        db.new_collection(collection)
        db.grant(w.identity.public, "writer")
        db.grant(reader.public, "reader")
        wdb = replica(w, db)
        exchange(db, wdb)
        yield Cast(o, w, j, f, db, wdb)
