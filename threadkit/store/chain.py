"""Growing a log: append one's own records, accept records received from peers.

Both run inside one write transaction of the caller, so a delivery is stored
whole or not at all. Nothing is decrypted or verified here: records arrive as
:class:`~threadkit.core.records.Record` objects, made by ``create_record`` or
checked by ``open_record``. The store checks what it alone can: that each
record links to the log's head by ``prev``.

Accepting received records
--------------------------
A delivery may come in any order, with duplicates, and with parts missing.
:func:`accept` skips records already held, then follows ``prev`` links from the
head through the rest, adds exactly the records that link (oldest-first,
counters following the head's), and reports the others as ``pending`` behind a
``gap``: the CID of a record that some of them link back to and that is neither
held nor received. Nothing is stored past a gap, so the log on disk is always
a single chain from its first record to its head. When received records form
several fragments beyond the head, ``gap`` names the missing predecessor of
the fragment whose record arrived first.

A record conflicts, and the whole delivery is refused with ``ChainError``, when
it would fork the log (its ``prev`` is a held record that already has a
successor, another record of the delivery claims the same ``prev``, or it is a
second first record), or when it, or its ``prev``, is held in another log.
"""

from __future__ import annotations

from collections.abc import Iterable

from threadkit.core.cid import cid_to_string
from threadkit.core.ids import ThreadID
from threadkit.core.records import Record, check_link
from threadkit.errors import ChainError, MalformedRecord
from threadkit.store import codec, layout
from threadkit.store.logs import read_head
from threadkit.store.models import AcceptResult, Appended, Head
from threadkit.store.reads import locate
from threadkit.store.tables import Tables
from threadkit.store.txntypes import StoreTxn, StoreWriteTxn

__all__ = ["accept", "append"]


def append(
    txn: StoreWriteTxn,
    tables: Tables,
    thread_id: ThreadID,
    log_id: str,
    records: Iterable[Record],
    head: Head | None = None,
) -> int:
    """Append records to a log: each must link to the one before, the first to the head.

    Parameters
    ----------
    txn : lmdb.Transaction
        A write transaction.
    tables : Tables
        The store's tables.
    thread_id : ThreadID
        The thread.
    log_id : str
        The log (normally this peer's own).
    records : Iterable[Record]
        The new records, oldest-first.
    head : Head, optional
        The log's head as read in ``txn`` (read here when not given).

    Returns
    -------
    int
        The log's counter after the last record.

    Raises
    ------
    ThreadNotFound, LogNotFound
        When the thread, or the log in it, is not there.
    ChainError
        When a record's ``prev`` is not the record before it, or the record is
        already stored (in any log).
    MalformedRecord
        When an item is not a :class:`Record`.
    """
    prefix = layout.log_prefix(thread_id, log_id)
    if head is None:
        head = read_head(txn, tables, thread_id, log_id)
    cid, counter = head.cid, head.counter
    put, records_db, index_db = txn.put, tables.records, tables.index
    for record in records:
        _check_type(record)
        if record.prev != cid:
            check_link(record, cid)
        counter += 1
        locator = layout.index_key(prefix, counter)
        if not put(
            record.cid, codec.encode_record(locator, record), db=records_db, overwrite=False
        ):
            raise ChainError(f"record {cid_to_string(record.cid)} is already in the repo")
        put(locator, record.cid, db=index_db)
        cid = record.cid
    if counter != head.counter:
        put(prefix, codec.encode_head(cid, counter), db=tables.heads)
    return counter


def accept(
    txn: StoreWriteTxn, tables: Tables, thread_id: ThreadID, log_id: str, records: Iterable[Record]
) -> AcceptResult:
    """Add the received records that link to the log's head; report the rest.

    Parameters
    ----------
    txn : lmdb.Transaction
        A write transaction.
    tables : Tables
        The store's tables.
    thread_id : ThreadID
        The thread.
    log_id : str
        The log the records belong to.
    records : Iterable[Record]
        Received records, already checked with ``open_record``, in any order.

    Returns
    -------
    AcceptResult
        The records added (oldest-first, with counters), the new head, and the
        gap and pending records if some could not be linked.

    Raises
    ------
    ThreadNotFound, LogNotFound
        When the thread, or the log in it, is not there.
    ChainError
        When a record would fork the log or belongs to another log; nothing is stored.
    MalformedRecord
        When an item is not a :class:`Record`.
    """
    prefix = layout.log_prefix(thread_id, log_id)
    head = read_head(txn, tables, thread_id, log_id)
    fresh: dict[bytes, Record] = {}
    for record in records:
        _check_type(record)
        if record.cid in fresh:
            continue
        locator = locate(txn, tables, record.cid)
        if locator is None:
            fresh[record.cid] = record
        elif not layout.in_log(locator, prefix):
            raise ChainError(
                f"record {cid_to_string(record.cid)} is already held in another log, "
                f"not in log {log_id}"
            )
    by_prev = _links(txn, tables, prefix, head, fresh)
    added: list[Appended] = []
    cid, counter = head.cid, head.counter
    put, records_db, index_db = txn.put, tables.records, tables.index
    while cid in by_prev:
        record = by_prev.pop(cid)
        counter += 1
        locator = layout.index_key(prefix, counter)
        put(record.cid, codec.encode_record(locator, record), db=records_db)
        put(locator, record.cid, db=index_db)
        added.append(Appended(record, counter))
        cid = record.cid
    if added:
        put(prefix, codec.encode_head(cid, counter), db=tables.heads)
    unlinked = {record.cid for record in by_prev.values()}
    pending = [record for record in fresh.values() if record.cid in unlinked]
    return AcceptResult(thread_id, log_id, added, Head(cid, counter), _gap(pending, fresh), pending)


def _links(
    txn: StoreTxn, tables: Tables, prefix: bytes, head: Head, fresh: dict[bytes, Record]
) -> dict[bytes | None, Record]:
    """Map each new record's ``prev`` to it, refusing forks and links into other logs."""
    by_prev: dict[bytes | None, Record] = {}
    for record in fresh.values():
        prev = record.prev
        rival = by_prev.get(prev)
        if rival is not None:
            raise ChainError(
                f"fork: records {cid_to_string(rival.cid)} and {cid_to_string(record.cid)} "
                f"both follow {_name(prev)}"
            )
        if prev != head.cid and prev not in fresh:
            if prev is None:
                raise ChainError(
                    f"fork: record {cid_to_string(record.cid)} starts the log, "
                    "which already has a first record"
                )
            locator = locate(txn, tables, prev)
            if locator is not None and layout.in_log(locator, prefix):
                raise ChainError(
                    f"fork: record {cid_to_string(record.cid)} follows {_name(prev)}, "
                    "which already has a successor in the log"
                )
            if locator is not None:
                raise ChainError(
                    f"record {cid_to_string(record.cid)} follows {_name(prev)}, "
                    "a record of another log"
                )
        by_prev[prev] = record
    return by_prev


def _gap(pending: list[Record], fresh: dict[bytes, Record]) -> bytes | None:
    """The missing predecessor of the fragment holding the first pending record."""
    if not pending:
        return None
    root = pending[0]
    while root.prev is not None and root.prev in fresh:
        root = fresh[root.prev]
    return root.prev


def _check_type(record: object) -> None:
    if not isinstance(record, Record):
        raise MalformedRecord(f"expected a Record, got {type(record).__name__}")


def _name(cid: bytes | None) -> str:
    return cid_to_string(cid) if cid is not None else "nothing"
