"""The state a bootstrapped database started from: rebuilding on it, and what it cannot rebuild.

A database with members rebuilds its document state when a record already applied is
rejected after all (a revoke that arrived late cut it, :mod:`.gate`): it drops the
state and applies every accepted record again. A database bootstrapped from a
snapshot (:mod:`.bootstrap`) holds no record up to the snapshot's heads, so it rebuilds
from the snapshot instead: :func:`restore` puts the snapshot's rows back (every table
but ``access``, whose entries are current) and the gate then applies the accepted
records after the heads.

That is the full-replay state as long as the records before the heads keep the
verdicts the snapshot folded them with. A membership record the snapshot's author had
not seen can change one — a concurrent revoke cutting a write the snapshot holds, or a
concurrent grant admitting one it rejected. Such a write's events are not held here, so
the gate records its position as **stale** in the ``base`` mark (:func:`note_stale`,
:func:`stale`), logs a warning, and judges everything else as before: the verdicts and
roles stay those of a full replay, the documents that record touched may not. Pulling
the records before the snapshot and replaying them repairs it (docs/lifecycle.md).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING

from threadkit.core.symmetric import SymmetricKey
from threadkit.db import snapshots
from threadkit.db.colls import CollHistory
from threadkit.errors import StoreError
from threadkit.store.txntypes import StoreTxn, StoreWriteTxn

if TYPE_CHECKING:
    from threadkit.db.database import Database
    from threadkit.db.members import Entry

__all__ = ["before_base", "heads", "note_stale", "restore", "stale"]

log = logging.getLogger("threadkit.db")


def heads(txn: StoreTxn, db: Database) -> dict[str, int]:
    """The heads of the snapshot ``db`` was bootstrapped from (empty when it was not)."""
    base = snapshots.mark_in(txn, db._tables, db.prefix, "base")
    return dict(base["heads"]) if base else {}


def before_base(base: dict[str, int], entries: Iterable[Entry]) -> list[Entry]:
    """The entries at or before ``base`` (:func:`heads`)."""
    return [e for e in entries if e.counter <= base.get(e.log, 0)]


def restore(txn: StoreWriteTxn, db: Database) -> None:
    """Put the rows of ``db``'s base snapshot back, after ``Engine.reset`` (in its write).

    Does nothing for a database that was not bootstrapped.
    """
    base = snapshots.mark_in(txn, db._tables, db.prefix, "base")
    if base is None:
        return
    staged = db.engine.staged_for(txn)
    if staged is None:
        raise StoreError("basestate.restore outside Engine.write (a bug)")
    raw = base.get("key")
    key = SymmetricKey(raw) if raw else None
    for _, block in snapshots.held_blocks(txn, db, base["root"], "chunks"):
        name, rows = snapshots.read_chunk(block, key)
        if name == "access":
            continue
        table = getattr(db._tables, name)
        values = db.prefix if name in snapshots.PREFIXED_VALUES else b""
        for i in range(0, len(rows), 2):
            txn.put(db.prefix + rows[i], values + rows[i + 1], db=table)
            if name == "colls":
                coll = rows[i][:-1].decode()
                staged[coll] = CollHistory.decode(coll, rows[i + 1])


def note_stale(txn: StoreWriteTxn, db: Database, entries: list[Entry]) -> None:
    """Record that these records before the base changed verdict (module docstring)."""
    base = snapshots.mark_in(txn, db._tables, db.prefix, "base")
    if base is None or not entries:
        return
    known = {tuple(p) for p in base.get("stale", [])}
    new = sorted({(e.log, e.counter) for e in entries} - known)
    if not new:
        return
    log.warning(
        "%s: %d record(s) before the snapshot it started from changed verdict (first %s:%d);"
        " their documents need the records before the snapshot",
        db.name, len(new), *new[0],
    )  # fmt: skip
    base["stale"] = sorted([*known, *new])
    snapshots.put_mark(txn, db._tables, db.prefix, "base", base)


def stale(db: Database) -> list[tuple[str, int]]:
    """Records before ``db``'s base snapshot whose verdict changed after it: ``(log,
    counter)``. Empty for a database whose state is that of a full replay."""
    base = snapshots.mark(db, "base")
    return [(p[0], p[1]) for p in (base or {}).get("stale", [])]
