"""Reading records back: by counter range, by walking back from a head, by CID.

Nothing is decrypted: records come back as stored blocks with their place in
their log. A log is read through ``log_index``, whose keys sort by counter, so
a range is one cursor walk.
"""

from __future__ import annotations

from typing import Any

from threadkit.core.cid import cid_to_string
from threadkit.core.ids import ThreadID
from threadkit.errors import BlockNotFound, InvalidInput, StoreError
from threadkit.store import codec, layout
from threadkit.store.logs import read_head
from threadkit.store.models import StoredRecord
from threadkit.store.tables import Tables
from threadkit.store.trim import log_start
from threadkit.store.txntypes import StoreTxn

__all__ = ["get_record", "has_record", "locate", "read_back", "read_log"]

_MAX_KEY = 511  # LMDB's longest key; nothing longer can be stored


def read_log(
    txn: StoreTxn,
    tables: Tables,
    thread_id: ThreadID,
    log_id: str,
    after: int = 0,
    limit: int | None = None,
) -> list[StoredRecord]:
    """Records of a log with counters in ``(after, head]``, oldest-first, at most ``limit``.

    Parameters
    ----------
    txn : lmdb.Transaction
        A transaction.
    tables : Tables
        The store's tables.
    thread_id : ThreadID
        The thread.
    log_id : str
        The log.
    after : int
        Counter of the last record the caller has (0 for none).
    limit : int | None
        Most records to return; None for all.

    Raises
    ------
    ThreadNotFound, LogNotFound
        When the thread, or the log in it, is not there.
    InvalidInput
        For a negative ``after`` or ``limit``.
    """
    _check_count(after, "after")
    if limit is not None:
        _check_count(limit, "limit")
    counter = read_head(txn, tables, thread_id, log_id).counter
    stop = counter if limit is None else min(counter, after + limit)
    return _read_range(txn, tables, thread_id, log_id, after, stop)


def read_back(
    txn: StoreTxn,
    tables: Tables,
    thread_id: ThreadID,
    log_id: str,
    head_cid: bytes | None = None,
    offset_cid: bytes | None = None,
    limit: int | None = None,
) -> list[StoredRecord]:
    """Walk a log back from ``head_cid`` to ``offset_cid`` (exclusive); return oldest-first.

    This is the shape of ThreadDB's ``GetRecords``: the caller names the newest
    record it wants and the newest it already has; at most ``limit`` records
    nearest the head are returned.

    Parameters
    ----------
    head_cid : bytes | None
        Where to start; None for the log's head.
    offset_cid : bytes | None
        Where to stop (not included). None, or a record not in this log, walks
        to the log's first record, as ThreadDB does.
    limit : int | None
        Most records to return; None for all.

    Raises
    ------
    ThreadNotFound, LogNotFound
        When the thread, or the log in it, is not there.
    BlockNotFound
        When ``head_cid`` is not a record of this log.
    InvalidInput
        For a negative ``limit``.
    """
    if limit is not None:
        _check_count(limit, "limit")
    prefix = layout.log_prefix(thread_id, log_id)
    top = read_head(txn, tables, thread_id, log_id).counter
    if head_cid is not None:
        found = _counter_in_log(txn, tables, prefix, head_cid)
        if found is None:
            raise BlockNotFound(f"record {_name(head_cid)} is not in log {log_id}")
        top = found
    bottom = 0
    if offset_cid is not None:
        bottom = _counter_in_log(txn, tables, prefix, offset_cid) or 0
    if limit is not None:
        bottom = max(bottom, top - limit)
    return _read_range(txn, tables, thread_id, log_id, bottom, top)


def get_record(txn: StoreTxn, tables: Tables, cid: bytes) -> StoredRecord:
    """A stored record by CID, with its thread, log and counter.

    Raises
    ------
    BlockNotFound
        When the repo does not hold the record.
    """
    value = _lookup(txn, tables, cid)
    if value is None:
        raise BlockNotFound(f"no record {_name(cid)} in the repo")
    locator, prev, blocks = codec.decode_record(value)
    thread_id, log_id, counter = layout.split_locator(locator)
    return StoredRecord(bytes(cid), prev, blocks, thread_id, log_id, counter)


def has_record(txn: StoreTxn, tables: Tables, cid: bytes) -> bool:
    """True when the repo holds the record."""
    return _lookup(txn, tables, cid) is not None


def _read_range(
    txn: StoreTxn, tables: Tables, thread_id: ThreadID, log_id: str, after: int, stop: int
) -> list[StoredRecord]:
    """Records with counters in ``(after, stop]``, walking the index with one cursor."""
    out: list[StoredRecord] = []
    if stop <= after:
        return out
    prefix = layout.log_prefix(thread_id, log_id)
    get, records_db = txn.get, tables.records
    with txn.cursor(db=tables.index) as cursor:
        # a log started at a snapshot, or whose older records were dropped, starts later
        start = max(after + 1, log_start(txn, tables, prefix))
        found = cursor.set_key(layout.index_key(prefix, start))
        for counter in range(start, stop + 1):
            if not found or bytes(cursor.key()) != layout.index_key(prefix, counter):
                raise StoreError(f"log {log_id} of thread {thread_id}: index entry {counter} lost")
            cid = bytes(cursor.value())
            value = get(cid, db=records_db)
            if value is None:
                raise StoreError(f"log {log_id}: record {_name(cid)} is indexed but not stored")
            _, prev, blocks = codec.decode_record(value)
            out.append(StoredRecord(cid, prev, blocks, thread_id, log_id, counter))
            found = cursor.next()
    return out


def locate(txn: StoreTxn, tables: Tables, cid: bytes) -> bytes | None:
    """The locator of a held record (its thread, log and counter), or None.

    Raises
    ------
    InvalidInput
        When ``cid`` is not bytes.
    """
    value = _lookup(txn, tables, cid)
    return None if value is None else codec.record_locator(value)


def _counter_in_log(txn: StoreTxn, tables: Tables, prefix: bytes, cid: bytes) -> int | None:
    """The counter of a record held in the log with key ``prefix``, or None."""
    locator = locate(txn, tables, cid)
    if locator is None or not layout.in_log(locator, prefix):
        return None
    return layout.locator_counter(locator)


def _lookup(txn: StoreTxn, tables: Tables, cid: bytes) -> Any:
    """The stored value of a record (a buffer, valid until the next write), or None."""
    if not isinstance(cid, bytes | bytearray | memoryview) or not cid:
        raise InvalidInput(f"a record CID must be non-empty bytes, got {type(cid).__name__}")
    if len(cid) > _MAX_KEY:
        return None
    return txn.get(bytes(cid), db=tables.records)


def _check_count(value: int, what: str) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise InvalidInput(f"{what} must be a non-negative integer, got {value!r}")


def _name(cid: bytes) -> str:
    return cid_to_string(bytes(cid))
