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

When the check of the snapshot (:mod:`.backfill`) finds it wrong, the replay's rows become
the base instead (:func:`replace`): they are kept locally, under ``prefix ‖ "r" ‖ u32be``
in the snapshots table, never served, and :func:`restore` reads them rather than the
snapshot's chunks, so a later rebuild cannot bring the wrong rows back.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Iterable
from typing import TYPE_CHECKING

import cbor2

from threadkit.core.symmetric import SymmetricKey
from threadkit.db import snapshots
from threadkit.db.colls import CollHistory
from threadkit.db.doctables import delete_prefix
from threadkit.errors import StoreError
from threadkit.store.txntypes import StoreTxn, StoreWriteTxn

if TYPE_CHECKING:
    from threadkit.db.database import Database
    from threadkit.db.members import Entry

__all__ = ["before_base", "heads", "note_stale", "replace", "restore", "stale"]

log = logging.getLogger("threadkit.db")

ROWS = b"r"
"""Key of the replayed base rows in the snapshots table: ``prefix ‖ "r" ‖ u32be``."""


def heads(txn: StoreTxn, db: Database) -> dict[str, int]:
    """The heads of the snapshot ``db`` was bootstrapped from (empty when it was not)."""
    base = snapshots.mark_in(txn, db._tables, db.prefix, "base")
    return dict(base["heads"]) if base else {}


def before_base(base: dict[str, int], entries: Iterable[Entry]) -> list[Entry]:
    """The entries at or before ``base`` (:func:`heads`)."""
    return [e for e in entries if e.counter <= base.get(e.log, 0)]


def restore(txn: StoreWriteTxn, db: Database) -> None:
    """Put the rows of ``db``'s base back, after ``Engine.reset`` (in its write): the
    replayed rows when the snapshot was found wrong (:func:`replace`), else the
    snapshot's. Does nothing for a database that was not bootstrapped.
    """
    base = snapshots.mark_in(txn, db._tables, db.prefix, "base")
    if base is None:
        return
    staged = db.engine.staged_for(txn)
    if staged is None:
        raise StoreError("basestate.restore outside Engine.write (a bug)")
    if base.get("replayed"):
        key, blocks = None, _replayed(txn, db)
    else:
        raw = base.get("key")
        key = SymmetricKey(raw) if raw else None
        blocks = [b for _, b in snapshots.held_blocks(txn, db, base["root"], "chunks")]
    for block in blocks:
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


def replace(txn: StoreWriteTxn, db: Database, rows: list[tuple[str, list[bytes]]]) -> None:
    """Make a replay's ``rows`` at the base's heads (:func:`.snapshots.state_rows`) the
    base that :func:`restore` puts back, in place of the snapshot's (which was wrong).

    The rows are kept here only, as unsealed chunks like a snapshot's; the ``base`` mark
    keeps naming the snapshot (its heads and members blocks are right: the check
    replayed the records up to those heads) and records ``replayed``.
    """
    base = snapshots.mark_in(txn, db._tables, db.prefix, "base")
    if base is None:
        raise StoreError(f"database {db.name!r} has no base to replace (a bug)")
    start = db.prefix + ROWS
    delete_prefix(txn, db._tables.snaps, start)
    for i, (name, chunk) in enumerate(rows):
        packed = zlib.compress(cbor2.dumps(chunk), 1)
        block = cbor2.dumps({"t": name, "z": packed}, canonical=True)
        txn.put(start + i.to_bytes(4, "big"), block, db=db._tables.snaps)
    base["replayed"] = True
    snapshots.put_mark(txn, db._tables, db.prefix, "base", base)


def _replayed(txn: StoreTxn, db: Database) -> list[bytes]:
    """The chunks :func:`replace` kept, in order."""
    start = db.prefix + ROWS
    out = []
    cursor = txn.cursor(db._tables.snaps)
    if cursor.set_range(start):
        for key, value in cursor.iternext():
            if not bytes(key).startswith(start) or len(key) != len(start) + 4:
                break
            out.append(bytes(value))
    return out


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
