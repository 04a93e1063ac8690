"""Key layout of the document store's LMDB sub-databases (beside the store's own `layout`).

Every key starts with the DB's **prefix**: a 4-byte number the repo assigns to
each database (thread) when it is created here, so keys stay short. Collection
names are ASCII without NUL (ThreadDB's name rule), so ``name ‖ 0x00`` is a
prefix-free part; instance ids and index values use the order-preserving,
self-terminating encodings of :mod:`threadkit.db.indexkeys`.

============= ====================================================== ===============================
table         key                                                    value
============= ====================================================== ===============================
db_dbs        thread id bytes                                        CBOR {prefix, name, log}
db_colls      prefix ‖ coll ‖ 00                                     CBOR [[key, config|null], …]
db_docs       prefix ‖ coll ‖ 00 ‖ id                                CBOR document (live only)
db_inst       prefix ‖ coll ‖ 00 ‖ id                                last event key
db_events     prefix ‖ coll ‖ 00 ‖ id ‖ order key                    CBOR event (see below)
db_index      prefix ‖ coll ‖ 00 ‖ path ‖ 00 ‖ value ‖ id            claim key (event that set it)
db_lost       prefix ‖ coll ‖ 00 ‖ id ‖ order key ‖ path              CBOR {winner, reason?}
db_losers     prefix ‖ coll ‖ 00 ‖ path ‖ 00 ‖ value ‖ id            b"" (lost a unique value)
db_applied    prefix ‖ log id bytes                                  u64be counter applied
db_applied    prefix ‖ ff                                            membership mark (random)
db_order      prefix ‖ order key                                     coll ‖ 00 ‖ id (history)
db_access     prefix ‖ log id bytes ‖ u64be counter                  CBOR entry (:mod:`.members`)
db_snaps      prefix ‖ "s" ‖ CID, prefix ‖ "base"/"compacted"         CBOR (:mod:`.snapshots`)
db_snaps      prefix ‖ "r" ‖ u32be                                   chunk (:mod:`.basestate`)
db_snapblocks prefix ‖ CID                                           snapshot block
============= ====================================================== ===============================

An order key is ``stamp (12 bytes) ‖ log id bytes`` (:func:`threadkit.core.clock.order_key`);
log id bytes have a fixed length for Ed25519 peer ids, so ``order key ‖ path``
splits unambiguously.
"""

from __future__ import annotations

import struct
from functools import lru_cache

from threadkit.db import indexkeys

encode_id = lru_cache(maxsize=65_536)(indexkeys.encode_id)
"""``indexkeys.encode_id``, cached: one write touches an id's keys in five tables."""

__all__ = [
    "MAX_KEY",
    "TABLES",
    "applied_key",
    "coll_key",
    "doc_key",
    "encode_id",
    "event_prefix",
    "index_key_fits",
    "index_prefix",
    "order_prefix",
]

DBS = b"db_dbs"
COLLS = b"db_colls"
DOCS = b"db_docs"
INST = b"db_inst"
EVENTS = b"db_events"
INDEX = b"db_index"
LOST = b"db_lost"
LOSERS = b"db_losers"
APPLIED = b"db_applied"
ORDER = b"db_order"
ACCESS = b"db_access"
SNAPS = b"db_snaps"
SNAPBLOCKS = b"db_snapblocks"

TABLES = (
    *(DBS, COLLS, DOCS, INST, EVENTS, INDEX, LOST, LOSERS, APPLIED, ORDER, ACCESS),
    *(SNAPS, SNAPBLOCKS),
)

_PREFIX = struct.Struct(">I")

MAX_KEY = 511
"""LMDB's longest key, in bytes: nothing longer can be stored."""


def db_prefix(number: int) -> bytes:
    """The 4-byte key prefix of the DB with local number ``number``."""
    return _PREFIX.pack(number)


@lru_cache(maxsize=4096)
def coll_key(prefix: bytes, collection: str) -> bytes:
    """``prefix ‖ collection ‖ 00``: the key of a collection and prefix of its entries."""
    return prefix + collection.encode() + b"\x00"


def doc_key(coll: bytes, instance_id: str) -> bytes:
    """Key of an instance under a :func:`coll_key`."""
    return coll + encode_id(instance_id)


def event_prefix(coll: bytes, instance_id: str) -> bytes:
    """Prefix of an instance's events (followed by the order key)."""
    return coll + encode_id(instance_id)


def index_prefix(coll: bytes, path: str) -> bytes:
    """Prefix of one index of a collection (followed by the value and the id)."""
    return coll + path.encode() + b"\x00"


def index_key_fits(coll: bytes, path: str, value: object, instance_id: str) -> bool:
    """True when the index entry of ``value`` at ``path`` for ``instance_id`` fits a key."""
    size = len(coll) + len(path.encode()) + 1 + len(encode_id(instance_id))
    return size + len(indexkeys.encode_value(value)) <= MAX_KEY


def applied_key(prefix: bytes, log_id: bytes) -> bytes:
    """Key of the counter of a log's records applied to the DB."""
    return prefix + log_id


def order_prefix(prefix: bytes) -> bytes:
    """Prefix of the DB's events in total order."""
    return prefix
