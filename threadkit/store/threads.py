"""Threads in the repo: add, look up, list and delete (inside a caller's transaction).

Deleting a thread removes everything stored under it: its logs, heads, index
entries and records.
"""

from __future__ import annotations

import time
from typing import Any

from threadkit.core.ids import ThreadID
from threadkit.core.keys import ThreadKey
from threadkit.errors import InvalidInput, InvalidThreadKey, ThreadExists, ThreadNotFound
from threadkit.store import codec, layout
from threadkit.store.models import ThreadInfo
from threadkit.store.tables import Tables
from threadkit.store.txntypes import StoreTxn, StoreWriteTxn

__all__ = ["add_thread", "delete_thread", "get_thread", "has_thread", "list_threads"]


def add_thread(
    txn: StoreWriteTxn, tables: Tables, thread_id: ThreadID, key: ThreadKey, name: str | None
) -> ThreadInfo:
    """Add a thread with its key.

    Parameters
    ----------
    txn : lmdb.Transaction
        A write transaction.
    tables : Tables
        The store's tables.
    thread_id : ThreadID
        The new thread's id.
    key : ThreadKey
        Its key (service key, and read key when this peer may read).
    name : str | None
        A local name.

    Raises
    ------
    ThreadExists
        When the repo already holds the thread.
    InvalidThreadKey, InvalidInput
        For a key that is not a ThreadKey, or a name that is not a string.
    """
    layout.thread_prefix(thread_id)  # type and length check
    if not isinstance(key, ThreadKey):
        raise InvalidThreadKey(f"expected a ThreadKey, got {type(key).__name__}")
    if name is not None and not isinstance(name, str):
        raise InvalidInput(f"thread name must be a string, got {type(name).__name__}")
    created_us = time.time_ns() // 1000
    value = codec.encode_thread(key, name, created_us)
    if not txn.put(thread_id.to_bytes(), value, db=tables.threads, overwrite=False):
        raise ThreadExists(f"thread {thread_id} is already in the repo")
    return codec.decode_thread(thread_id, value)


def set_thread_key(
    txn: StoreWriteTxn, tables: Tables, thread_id: ThreadID, key: ThreadKey, name: str | None = None
) -> ThreadInfo:
    """Give a held thread a key with the same service key (a replicator given the read key).

    Raises
    ------
    ThreadNotFound
        When the repo does not hold the thread.
    InvalidThreadKey
        When the service key differs from the one the thread has.
    """
    current = get_thread(txn, tables, thread_id)
    if not isinstance(key, ThreadKey) or key.service != current.key.service:
        raise InvalidThreadKey(f"thread {thread_id} is held under another service key")
    created_us = int(current.created.timestamp() * 1_000_000)
    value = codec.encode_thread(key, name if name is not None else current.name, created_us)
    txn.put(thread_id.to_bytes(), value, db=tables.threads)
    return codec.decode_thread(thread_id, value)


def get_thread(txn: StoreTxn, tables: Tables, thread_id: ThreadID) -> ThreadInfo:
    """The thread's info.

    Raises
    ------
    ThreadNotFound
        When the repo does not hold the thread.
    """
    layout.thread_prefix(thread_id)
    value = txn.get(thread_id.to_bytes(), db=tables.threads)
    if value is None:
        raise thread_not_found(thread_id)
    return codec.decode_thread(thread_id, value)


def has_thread(txn: StoreTxn, tables: Tables, thread_id: ThreadID) -> bool:
    """True when the repo holds the thread."""
    layout.thread_prefix(thread_id)
    return txn.get(thread_id.to_bytes(), db=tables.threads) is not None


def list_threads(txn: StoreTxn, tables: Tables) -> list[ThreadInfo]:
    """Every thread in the repo, in thread id byte order."""
    with txn.cursor(db=tables.threads) as cursor:
        return [
            codec.decode_thread(layout.thread_id_from_bytes(bytes(key)), value)
            for key, value in cursor
        ]


def delete_thread(txn: StoreWriteTxn, tables: Tables, thread_id: ThreadID) -> None:
    """Remove a thread with its logs, heads, index entries and records.

    Raises
    ------
    ThreadNotFound
        When the repo does not hold the thread.
    """
    prefix = layout.thread_prefix(thread_id)
    if not txn.delete(thread_id.to_bytes(), db=tables.threads):
        raise thread_not_found(thread_id)
    for cid in _delete_prefix(txn, tables.index, prefix):
        txn.delete(cid, db=tables.records)
    _delete_prefix(txn, tables.logs, prefix)
    _delete_prefix(txn, tables.heads, prefix)
    # where its logs start, when they start later than their first record (trim.py)
    _delete_prefix(txn, tables.meta, b"logstart/" + prefix.hex().encode())


def thread_not_found(thread_id: ThreadID) -> ThreadNotFound:
    """The error for a thread the repo does not hold."""
    return ThreadNotFound(f"no thread {thread_id} in the repo")


def _delete_prefix(txn: StoreWriteTxn, db: Any, prefix: bytes) -> list[bytes]:
    """Delete every entry whose key starts with ``prefix``; return their values."""
    values: list[bytes] = []
    with txn.cursor(db=db) as cursor:
        if not cursor.set_range(prefix):
            return values
        while bytes(cursor.key()[: len(prefix)]) == prefix:
            values.append(bytes(cursor.value()))
            if not cursor.delete():  # moves to the next entry; False at the end
                break
    return values
