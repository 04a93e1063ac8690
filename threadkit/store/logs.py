"""Logs of a thread: their keys, addresses and heads (inside a caller's transaction).

A log's keys and addresses live in ``logs``; its head and counter live in
``heads``, fixed width, so that appending a record never decodes or rewrites
the keys.

A thread keeps at most :data:`MAX_LOGS` logs (so that a ``get_logs`` reply listing them
all stays far below the 32 MiB frame limit) and a log at most :data:`MAX_ADDRS`
addresses: when more come, those not mentioned for the longest time are dropped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from threadkit.core.addr import addr_from_bytes, addr_to_bytes
from threadkit.core.identity import Identity, PublicKey
from threadkit.core.ids import ThreadID
from threadkit.errors import (
    InvalidAddress,
    InvalidKey,
    LogExists,
    LogNotFound,
    NotFound,
    StoreError,
    TooManyLogs,
)
from threadkit.store import codec, layout
from threadkit.store.models import Head, LogInfo
from threadkit.store.tables import Tables
from threadkit.store.threads import thread_not_found
from threadkit.store.txntypes import StoreTxn, StoreWriteTxn

__all__ = [
    "MAX_ADDRS",
    "MAX_LOGS",
    "add_addrs",
    "add_log",
    "count_logs",
    "get_log",
    "list_logs",
    "log_missing",
    "read_head",
]

MAX_LOGS = 256
"""Logs a thread may have; another is refused with ``TooManyLogs`` before anything is written."""

MAX_ADDRS = 64
"""Addresses a log keeps; beyond that, those not mentioned for the longest time are dropped."""


def add_log(
    txn: StoreWriteTxn,
    tables: Tables,
    thread_id: ThreadID,
    public: PublicKey,
    private: Identity | None,
    addrs: Iterable[str | bytes],
) -> LogInfo:
    """Add an empty log to a thread; its id is ``public.peer_id``.

    Parameters
    ----------
    txn : lmdb.Transaction
        A write transaction.
    tables : Tables
        The store's tables.
    thread_id : ThreadID
        The thread.
    public : PublicKey
        The log key.
    private : Identity | None
        The private log key, for this peer's own log.
    addrs : Iterable[str | bytes]
        Multiaddrs (strings or binary) where the log can be fetched.

    Raises
    ------
    ThreadNotFound
        When the repo does not hold the thread.
    LogExists
        When the thread already has this log.
    TooManyLogs
        When the thread already has :data:`MAX_LOGS` logs.
    InvalidKey
        When ``private`` does not belong to ``public``.
    InvalidAddress
        For a malformed multiaddr.
    """
    if not isinstance(public, PublicKey):
        raise InvalidKey(f"log key must be a PublicKey, got {type(public).__name__}")
    if private is not None and (not isinstance(private, Identity) or private.public != public):
        raise InvalidKey(f"the private key given is not the private half of log {public.peer_id}")
    addr_bytes = _merge([], addrs)
    log_id = public.peer_id
    prefix = layout.log_prefix(thread_id, log_id)
    if txn.get(thread_id.to_bytes(), db=tables.threads) is None:
        raise thread_not_found(thread_id)
    if txn.get(prefix, db=tables.heads) is not None:
        raise LogExists(f"thread {thread_id} already has log {log_id}")
    if count_logs(txn, tables, thread_id) >= MAX_LOGS:
        raise TooManyLogs(
            f"thread {thread_id} already has {MAX_LOGS} logs, the most a thread may have; "
            f"log {log_id} is refused"
        )
    txn.put(prefix, codec.encode_head(None, 0), db=tables.heads)
    txn.put(prefix, codec.encode_log(public, private, addr_bytes), db=tables.logs)
    return _info(log_id, public, private, addr_bytes, Head(None, 0))


def get_log(txn: StoreTxn, tables: Tables, thread_id: ThreadID, log_id: str) -> LogInfo:
    """The log's keys, addresses and head.

    Raises
    ------
    ThreadNotFound, LogNotFound
        When the thread, or the log in it, is not there.
    """
    prefix = layout.log_prefix(thread_id, log_id)
    value = txn.get(prefix, db=tables.logs)
    if value is None:
        raise log_missing(txn, tables, thread_id, log_id)
    public, private, addrs = codec.decode_log(value)
    return _info(log_id, public, private, addrs, read_head(txn, tables, thread_id, log_id))


def count_logs(txn: StoreTxn, tables: Tables, thread_id: ThreadID) -> int:
    """How many logs a thread has (0 for a thread not in the repo)."""
    prefix = layout.thread_prefix(thread_id)
    count = 0
    with txn.cursor(db=tables.logs) as cursor:
        found = cursor.set_range(prefix)
        while found and bytes(cursor.key()[: len(prefix)]) == prefix:
            count += 1
            found = cursor.next()
    return count


def list_logs(txn: StoreTxn, tables: Tables, thread_id: ThreadID) -> list[LogInfo]:
    """Every log of a thread, in log id byte order.

    Raises
    ------
    ThreadNotFound
        When the repo does not hold the thread.
    """
    prefix = layout.thread_prefix(thread_id)
    if txn.get(thread_id.to_bytes(), db=tables.threads) is None:
        raise thread_not_found(thread_id)
    logs = []
    with txn.cursor(db=tables.logs) as cursor:
        found = cursor.set_range(prefix)
        while found and bytes(cursor.key()[: len(prefix)]) == prefix:
            key = bytes(cursor.key())
            log_id = layout.log_id_from_bytes(key[len(prefix) + 1 :])
            public, private, addrs = codec.decode_log(cursor.value())
            stored = txn.get(key, db=tables.heads)
            if stored is None:  # written with its log, in the same transaction
                raise StoreError(f"log {log_id} of thread {thread_id} has no head")
            head, counter = codec.decode_head(stored)
            logs.append(_info(log_id, public, private, addrs, Head(head, counter)))
            found = cursor.next()
    return logs


def add_addrs(
    txn: StoreTxn, tables: Tables, thread_id: ThreadID, log_id: str, addrs: Iterable[str | bytes]
) -> LogInfo:
    """Add addresses to a log (those it has are kept once, in their first place).

    Raises
    ------
    ThreadNotFound, LogNotFound
        When the thread, or the log in it, is not there.
    InvalidAddress
        For a malformed multiaddr.
    """
    return _rewrite_addrs(txn, tables, thread_id, log_id, lambda current: _merge(current, addrs))


def set_addrs(
    txn: StoreTxn, tables: Tables, thread_id: ThreadID, log_id: str, addrs: Iterable[str | bytes]
) -> LogInfo:
    """Replace a log's addresses (a peer's own log, when its listen addresses change).

    Raises
    ------
    ThreadNotFound, LogNotFound
        When the thread, or the log in it, is not there.
    InvalidAddress
        For a malformed multiaddr.
    """
    return _rewrite_addrs(txn, tables, thread_id, log_id, lambda current: _merge([], addrs))


def _rewrite_addrs(
    txn: StoreWriteTxn,
    tables: Tables,
    thread_id: ThreadID,
    log_id: str,
    rewrite: Callable[[list[bytes]], list[bytes]],
) -> LogInfo:
    prefix = layout.log_prefix(thread_id, log_id)
    value = txn.get(prefix, db=tables.logs)
    if value is None:
        raise log_missing(txn, tables, thread_id, log_id)
    public, private, current = codec.decode_log(value)
    addrs = rewrite(current)
    if addrs != current:
        txn.put(prefix, codec.encode_log(public, private, addrs), db=tables.logs)
    return _info(log_id, public, private, addrs, read_head(txn, tables, thread_id, log_id))


def read_head(txn: StoreTxn, tables: Tables, thread_id: ThreadID, log_id: str) -> Head:
    """The log's head and counter.

    Raises
    ------
    ThreadNotFound, LogNotFound
        When the thread, or the log in it, is not there.
    """
    value = txn.get(layout.log_prefix(thread_id, log_id), db=tables.heads)
    if value is None:
        raise log_missing(txn, tables, thread_id, log_id)
    cid, counter = codec.decode_head(value)
    return Head(cid, counter)


def log_missing(txn: StoreTxn, tables: Tables, thread_id: ThreadID, log_id: str) -> NotFound:
    """The error for a log that is not there: ThreadNotFound or LogNotFound."""
    if txn.get(thread_id.to_bytes(), db=tables.threads) is None:
        return thread_not_found(thread_id)
    return LogNotFound(f"thread {thread_id} has no log {log_id}")


def _merge(current: list[bytes], addrs: Iterable[str | bytes]) -> list[bytes]:
    if isinstance(addrs, str | bytes):
        raise InvalidAddress("addrs must be a list of multiaddrs, not a single one")
    merged = list(current)
    given: list[bytes] = []
    for addr in addrs:
        if isinstance(addr, str):
            raw = addr_to_bytes(addr)
        elif isinstance(addr, bytes | bytearray | memoryview):
            raw = bytes(addr)
            addr_from_bytes(raw)  # validates
        else:
            raise InvalidAddress(f"a multiaddr must be str or bytes, got {type(addr).__name__}")
        given.append(raw)
        if raw not in merged:
            merged.append(raw)
    if len(merged) > MAX_ADDRS:  # keep the given ones, then the most recently added others
        fresh = set(given)
        if len(fresh) >= MAX_ADDRS:
            return [raw for raw in merged if raw in fresh][-MAX_ADDRS:]
        others = [raw for raw in merged if raw not in fresh]
        kept = fresh | set(others[len(merged) - MAX_ADDRS :])
        merged = [raw for raw in merged if raw in kept]
    return merged


def _info(
    log_id: str, public: PublicKey, private: Identity | None, addrs: list[bytes], head: Head
) -> LogInfo:
    return LogInfo(
        log_id, public, private, tuple(addr_from_bytes(a) for a in addrs), head.cid, head.counter
    )
