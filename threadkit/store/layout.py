"""Key layout of the repo's LMDB sub-databases.

Every key is built here and nowhere else. Thread ids and peer ids have
variable length, so inside composite keys each is written as a **part**: one
length byte followed by the bytes. A part is prefix-free, so a prefix of
whole parts selects exactly one thread or one log, never a neighbour whose id
happens to start with the same bytes.

========== ============================================== ================================
table      key                                            value (see :mod:`.codec`)
========== ============================================== ================================
meta       UTF-8 name                                     bytes owned by the writer
threads    thread id bytes                                CBOR ``{key, name, created}``
logs       part(thread id) ‖ part(log id)                 CBOR ``{pubkey, privkey?, addrs}``
heads      part(thread id) ‖ part(log id)                 u64be counter ‖ head CID (or none)
records    record CID (36 bytes)                          u16be len ‖ locator ‖ CBOR blocks
log_index  part(thread id) ‖ part(log id) ‖ u64be counter record CID
========== ============================================== ================================

The ``log_index`` key of a record is also its **locator**: stored with the
record, it names the thread, the log and the record's counter. Counters are
big-endian, so a cursor walks a log oldest-first.

Examples
--------
>>> from threadkit.core.identity import Identity
>>> from threadkit.core.ids import ThreadID
>>> tid, log_id = ThreadID.new(), Identity.generate().public.peer_id
>>> loc = index_key(log_prefix(tid, log_id), 7)
>>> split_locator(loc) == (tid, log_id, 7)
True
"""

from __future__ import annotations

from functools import lru_cache

from multiformats import multibase

from threadkit.core.identity import peer_id_bytes
from threadkit.core.ids import ThreadID
from threadkit.errors import InvalidKey, InvalidThreadID, StoreError

__all__ = [
    "COUNTER_SIZE",
    "HEADS",
    "LOGS",
    "LOG_INDEX",
    "MAX_PART",
    "META",
    "RECORDS",
    "TABLES",
    "THREADS",
    "in_log",
    "index_key",
    "locator_counter",
    "log_id_from_bytes",
    "log_prefix",
    "part",
    "split_locator",
    "thread_id_from_bytes",
    "thread_prefix",
]

META = b"meta"
"""Repo-level values by name (format version, and later layers' settings)."""
THREADS = b"threads"
"""Thread id → thread key, name and creation time."""
LOGS = b"logs"
"""Thread and log id → the log's keys and addresses."""
HEADS = b"heads"
"""Thread and log id → the log's head CID and counter (fixed width, no CBOR)."""
RECORDS = b"records"
"""Record CID → locator and the record's four blocks."""
LOG_INDEX = b"log_index"
"""Thread id, log id and counter → record CID."""

TABLES = (META, THREADS, LOGS, HEADS, RECORDS, LOG_INDEX)
"""Every sub-database the store owns; later layers must pick other names."""

MAX_PART = 255
"""Longest id a part can hold (its length is one byte)."""

COUNTER_SIZE = 8
"""Bytes of a counter in a key (unsigned, big-endian)."""


def part(data: bytes) -> bytes:
    """``data`` prefixed with its length byte.

    Parameters
    ----------
    data : bytes
        An id of at most :data:`MAX_PART` bytes.

    Returns
    -------
    bytes
        ``len(data) ‖ data``.

    Raises
    ------
    StoreError
        When ``data`` is longer than :data:`MAX_PART`.
    """
    if len(data) > MAX_PART:
        raise StoreError(f"an id of {len(data)} bytes is too long for a key (at most {MAX_PART})")
    return bytes((len(data),)) + data


def thread_prefix(thread_id: ThreadID) -> bytes:
    """``part(thread id)``: the key prefix of every log and index entry of a thread.

    Parameters
    ----------
    thread_id : ThreadID
        The thread.

    Raises
    ------
    InvalidThreadID
        When ``thread_id`` is not a :class:`ThreadID`, or too long to key on.
    """
    if not isinstance(thread_id, ThreadID):
        raise InvalidThreadID(f"expected a ThreadID, got {type(thread_id).__name__}")
    return _thread_prefix(thread_id)


def log_prefix(thread_id: ThreadID, log_id: str) -> bytes:
    """``part(thread id) ‖ part(log id)``: the key of a log and prefix of its index.

    Results are cached, so the peer id is decoded once per log.

    Parameters
    ----------
    thread_id : ThreadID
        The thread.
    log_id : str
        The log's peer id string (``12D3KooW…``).

    Raises
    ------
    InvalidThreadID
        For a bad thread id.
    InvalidKey
        For a log id that is not a base58btc peer id.
    """
    if not isinstance(thread_id, ThreadID):
        raise InvalidThreadID(f"expected a ThreadID, got {type(thread_id).__name__}")
    if not isinstance(log_id, str):
        raise InvalidKey(f"log id must be a peer id string, got {type(log_id).__name__}")
    return _log_prefix(thread_id, log_id)


def index_key(prefix: bytes, counter: int) -> bytes:
    """The ``log_index`` key (and record locator) of a log's record number ``counter``.

    Parameters
    ----------
    prefix : bytes
        The log's :func:`log_prefix`.
    counter : int
        The record's position in its log, from 1.
    """
    return prefix + counter.to_bytes(COUNTER_SIZE, "big")


def in_log(locator: bytes, prefix: bytes) -> bool:
    """True when ``locator`` names a record of the log whose :func:`log_prefix` is ``prefix``."""
    return locator[:-COUNTER_SIZE] == prefix


def locator_counter(locator: bytes) -> int:
    """The counter a locator names."""
    return int.from_bytes(locator[-COUNTER_SIZE:], "big")


def split_locator(locator: bytes) -> tuple[ThreadID, str, int]:
    """The thread id, log id and counter a locator (a ``log_index`` key) names.

    Parameters
    ----------
    locator : bytes
        A key made by :func:`index_key`.

    Raises
    ------
    StoreError
        When the bytes are not a locator (a damaged repo).
    """
    tid_len = locator[0] if locator else 0
    log_start = 1 + tid_len
    log_len = locator[log_start] if len(locator) > log_start else 0
    counter_start = log_start + 1 + log_len
    if not tid_len or not log_len or len(locator) != counter_start + COUNTER_SIZE:
        raise StoreError(f"damaged record locator {bytes(locator).hex()}")
    return (
        thread_id_from_bytes(bytes(locator[1:log_start])),
        log_id_from_bytes(bytes(locator[log_start + 1 : counter_start])),
        int.from_bytes(locator[counter_start:], "big"),
    )


@lru_cache(maxsize=4096)
def thread_id_from_bytes(data: bytes) -> ThreadID:
    """The :class:`ThreadID` of stored id bytes (cached)."""
    return ThreadID.from_bytes(data)


@lru_cache(maxsize=4096)
def log_id_from_bytes(data: bytes) -> str:
    """The peer id string of stored peer id bytes (cached: base58 is slow in Python)."""
    return str(multibase.encode(data, "base58btc"))[1:]


@lru_cache(maxsize=4096)
def _thread_prefix(thread_id: ThreadID) -> bytes:
    data = thread_id.to_bytes()
    if len(data) > MAX_PART:
        raise InvalidThreadID(f"thread id of {len(data)} bytes is too long (at most {MAX_PART})")
    return part(data)


@lru_cache(maxsize=4096)
def _log_prefix(thread_id: ThreadID, log_id: str) -> bytes:
    raw = peer_id_bytes(log_id)
    if len(raw) > MAX_PART:
        raise InvalidKey(f"log id {log_id[:80]!r} is too long ({len(raw)} bytes)")
    return _thread_prefix(thread_id) + part(raw)
