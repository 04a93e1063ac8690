"""Records that came from elsewhere, folded into a database (docs/seam.md).

:meth:`threadkit.db.database.Database.apply_records` is the seam to the network
layer: received records, already checked with ``open_record``, are chained into
their log and their events applied, in one transaction. :func:`catch_up` applies,
when a database opens, the records stored in its logs but not yet applied (after a
crash or an import). Both note each record with the database's gate
(:mod:`threadkit.db.gate`: writer proofs and roles), which settles which records count
and hands their events to the engine, judged exactly as a local write.

:func:`apply_records_now` is :func:`apply_records` for a caller that must not wait (the
network's event loop, for a push of a few records): it declines, having written nothing,
when another thread holds a write lock or when the records need a script call.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from threadkit.core.identity import PublicKey, peer_id_bytes
from threadkit.core.keys import ThreadKey
from threadkit.core.records import Record, open_record
from threadkit.db import dockeys
from threadkit.db.scriptcalls import ScriptCalls
from threadkit.store import chain, reads
from threadkit.store.logs import list_logs
from threadkit.store.models import AcceptResult
from threadkit.store.txntypes import StoreWriteTxn

if TYPE_CHECKING:
    from threadkit.db.database import Database
    from threadkit.db.engine import Change

__all__ = ["apply_records", "apply_records_now", "catch_up", "opened_records"]

log = logging.getLogger("threadkit.db")

_opened: ContextVar[dict[bytes, Record] | None] = ContextVar("_opened", default=None)
"""Records already opened from their blocks (an import's), by CID, for :func:`catch_up`."""


class _WouldWait(Exception):
    """An apply that may not wait met a script call (raised before anything is written)."""


class _NoScripts(ScriptCalls):
    """Script calls for an apply that may not wait: the first round's calls are refused.

    The round that noted them is abandoned, nothing written, before they would run.
    """

    def run_missing(self) -> None:
        raise _WouldWait


def apply_records_now(db: Database, log_id: str, records: Iterable[Record]) -> AcceptResult | None:
    """:func:`apply_records` if it can run without waiting, else None (nothing written).

    It declines when another thread holds the database's or the repo's write lock (a
    commit, a compaction, a snapshot install) or when the records need a script call (a
    write validator runs in a worker process): the caller then applies them elsewhere.
    What it applies is applied exactly as :func:`apply_records` does.
    """
    taken: list[Any] = []
    try:
        for lock in (db._write_lock, db._repo._write_lock):
            if not lock.acquire(blocking=False):
                return None
            taken.append(lock)
        try:
            return apply_records(db, log_id, records, _NoScripts())
        except _WouldWait:
            return None
    finally:
        for lock in reversed(taken):
            lock.release()


def apply_records(
    db: Database, log_id: str, records: Iterable[Record], calls: ScriptCalls | None = None
) -> AcceptResult:
    """Chain ``records`` into ``log_id``'s log and apply their events, in one transaction.

    See :meth:`threadkit.db.database.Database.apply_records`; ``calls`` collects the
    script calls (a fresh :class:`~threadkit.db.scriptcalls.ScriptCalls` by default).
    """
    log_bytes = peer_id_bytes(log_id)
    records = list(records)

    def attempt(txn: StoreWriteTxn) -> tuple[AcceptResult, list[Change]]:
        changes: list[Change] = []
        result = chain.accept(txn, db._repo.tables, db.id, log_id, records)
        for appended in result.added:
            db.gate.note(txn, log_id, appended.counter, appended.record)
            db._set_applied(txn, log_bytes, appended.counter)
        if result.added:
            changes.extend(db.gate.settle(txn))
        return result, changes

    result, changes = db._rounds(attempt, calls)
    db._after_commit(changes, None, log_id)
    return result


def catch_up(db: Database) -> None:
    """Apply records stored in ``db``'s logs but not yet applied (after a crash or an import)."""

    def attempt(txn: StoreWriteTxn) -> list[Change]:
        changes: list[Change] = []
        for info in list_logs(txn, db._repo.tables, db.id):
            log_bytes = peer_id_bytes(info.id)
            raw = txn.get(dockeys.applied_key(db.prefix, log_bytes), db=db._tables.applied)
            applied = int.from_bytes(raw, "big") if raw else 0
            if info.counter <= applied:
                continue
            for stored in reads.read_log(txn, db._repo.tables, db.id, info.id, applied):
                record = _reopen(stored, db.key, info.public)
                db.gate.note(txn, info.id, stored.counter, record)
                db._set_applied(txn, log_bytes, stored.counter)
        changes.extend(db.gate.settle(txn))
        return changes

    db._after_commit(db._rounds(attempt), None)


@contextmanager
def opened_records(records: Iterable[Record]) -> Iterator[None]:
    """Let :func:`catch_up`, within the block, use ``records`` instead of opening them again.

    A restore (:func:`threadkit.db.archive.import_db`) opens every record of the archive
    while checking it, then stores them and opens the database, whose catch-up would open
    each stored record again. A record is taken from ``records`` only when its four blocks
    are byte for byte the stored ones, so what is folded is the same either way.
    """
    token = _opened.set({record.cid: record for record in records})
    try:
        yield
    finally:
        _opened.reset(token)


def _reopen(stored: Any, key: ThreadKey, public: PublicKey) -> Record:
    opened = _opened.get()
    record = opened.get(stored.cid) if opened is not None else None
    if record is not None and record.blocks == stored.blocks:
        return record
    return open_record(
        stored.blocks, service_key=key, log_key=public, cid=stored.cid, verify_signature=False
    )
