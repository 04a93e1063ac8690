"""Logs that do not start at their first record: started at a snapshot, or trimmed.

A peer that bootstraps a database from a snapshot (``threadkit/db/snapshots.py``) holds
each log from the snapshot's head on: the log's head is set to the record the snapshot
was taken at, which the peer never holds, and the records after it chain on as usual
(:func:`threadkit.store.chain.accept` links them to the head by ``prev``). Compaction
(``threadkit/db/compaction.py``) drops a log's records up to a counter. Either way the
log's **start** — the counter of its first held record — is kept in the ``meta`` table
under ``logstart/<log prefix hex>``, so reads begin there and every other gap in a log is
still a damaged repo (:mod:`.reads`).

LMDB does not give pages back to the file system: the freed pages are reused by later
writes; :func:`threadkit.store.reclaim.reclaim` swaps the repo's file for a copy without
them, and :func:`compact_copy` writes such a copy elsewhere (``env.copy(compact=True)``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from threadkit.core.ids import ThreadID
from threadkit.errors import ChainError, InvalidInput
from threadkit.store import codec, layout
from threadkit.store.logs import read_head
from threadkit.store.tables import Tables
from threadkit.store.txntypes import StoreTxn, StoreWriteTxn

if TYPE_CHECKING:
    from threadkit.store.repo import Repo

__all__ = ["compact_copy", "drop_through", "log_start", "start_at"]


def _start_key(prefix: bytes) -> bytes:
    return b"logstart/" + prefix.hex().encode()


def log_start(txn: StoreTxn, tables: Tables, prefix: bytes) -> int:
    """The counter of the first record a log holds (or would hold): 1 unless trimmed.

    Parameters
    ----------
    txn : lmdb.Transaction
        A transaction.
    tables : Tables
        The store's tables.
    prefix : bytes
        The log's :func:`~threadkit.store.layout.log_prefix`.
    """
    raw = txn.get(_start_key(prefix), db=tables.meta)
    return int.from_bytes(raw, "big") if raw else 1


def start_at(
    txn: StoreWriteTxn,
    tables: Tables,
    thread_id: ThreadID,
    log_id: str,
    head: bytes | None,
    counter: int,
) -> None:
    """Make an empty log start after record ``head`` at ``counter``, which it does not hold.

    Parameters
    ----------
    txn : lmdb.Transaction
        A write transaction.
    tables : Tables
        The store's tables.
    thread_id : ThreadID
        The thread.
    log_id : str
        The log (it must exist and hold no record).
    head : bytes or None
        The CID of the log's record at ``counter`` (None only with ``counter`` 0).
    counter : int
        That record's counter.

    Raises
    ------
    ChainError
        When the log already holds records.
    InvalidInput
        When ``counter`` and ``head`` disagree (a head needs a counter ≥ 1).
    """
    if isinstance(counter, bool) or not isinstance(counter, int) or counter < 0:
        raise InvalidInput(f"a log counter is a whole number >= 0, got {counter!r}")
    if (head is None) != (counter == 0):
        raise InvalidInput("a log starts after a head record exactly when its counter is >= 1")
    current = read_head(txn, tables, thread_id, log_id)
    if current.counter:
        raise ChainError(f"log {log_id} already holds records: it cannot start at a snapshot")
    if not counter:
        return
    prefix = layout.log_prefix(thread_id, log_id)
    txn.put(prefix, codec.encode_head(head, counter), db=tables.heads)
    txn.put(_start_key(prefix), (counter + 1).to_bytes(8, "big"), db=tables.meta)


def drop_through(
    txn: StoreWriteTxn, tables: Tables, thread_id: ThreadID, log_id: str, counter: int
) -> tuple[int, int]:
    """Drop a log's records with counters up to ``counter`` (its head stays).

    Returns
    -------
    (int, int)
        Records dropped and the bytes their stored values took.
    """
    prefix = layout.log_prefix(thread_id, log_id)
    head = read_head(txn, tables, thread_id, log_id)
    through = min(counter, head.counter)
    first = log_start(txn, tables, prefix)
    dropped = size = 0
    for number in range(first, through + 1):
        locator = layout.index_key(prefix, number)
        cid = txn.get(locator, db=tables.index)
        if cid is None:
            continue
        value = txn.get(bytes(cid), db=tables.records)
        size += len(value) if value is not None else 0
        txn.delete(bytes(cid), db=tables.records)
        txn.delete(locator, db=tables.index)
        dropped += 1
    if through >= first:
        txn.put(_start_key(prefix), (through + 1).to_bytes(8, "big"), db=tables.meta)
    return dropped, size


def compact_copy(repo: Repo, destination: str | os.PathLike[str]) -> int:
    """Write a copy of the repo's LMDB file without its free pages; return its size in bytes.

    ``destination`` is a directory that must not hold an LMDB file yet (it is created).
    """
    target = Path(destination)
    target.mkdir(parents=True, exist_ok=True)
    if (target / "data.mdb").exists():
        raise InvalidInput(f"{target} already holds an LMDB file")
    repo._live_env().copy(str(target), compact=True)
    return (target / "data.mdb").stat().st_size
