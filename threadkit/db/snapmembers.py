"""Snapshots of databases with members: their membership records, and the key they are read with.

A database with members judges every record by the members fold (:mod:`.roles`), whose
input is the set of **membership entries** (genesis, grants, revokes, mode changes) —
each the reading of one signed record (:mod:`.members`) — and it reads records of a key
epoch with the keys sealed to its identity in those same records (:mod:`.epochs`). A
snapshot of such a database (:func:`.snapshots.take`) therefore carries, beside the
folded tables, **the membership records themselves**, whole and signed: the records of
every membership entry up to the snapshot's heads, in ``members`` blocks linked from
the manifest::

    members {"t": "members", "r": [[<log id bytes>, <counter>, record, event, header, body], …]}

and its state chunks are encrypted under the read key of the newest key epoch the
author held (``epoch`` and ``commits`` in the manifest; epoch 0 is the thread key's read
key), so the snapshot shows its documents to the holders of that key only — the
members the records seal it to — never to a revoked member who kept the thread key. A
joiner checks the records and opens the chunks with :mod:`.snapjoin`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import cbor2

from threadkit.core.cid import cid_of
from threadkit.core.identity import peer_id_bytes
from threadkit.core.records import RecordBlocks
from threadkit.core.symmetric import SymmetricKey
from threadkit.db import epochs
from threadkit.errors import DecryptionError, InvalidInput, InvalidSnapshot
from threadkit.store import reads
from threadkit.store.layout import log_id_from_bytes
from threadkit.store.txntypes import StoreTxn

if TYPE_CHECKING:
    from threadkit.db.database import Database

__all__ = [
    "MEMBERS_BYTES",
    "chunk_key",
    "member_blocks",
    "read_members",
    "records_of",
    "sealing_key",
]

MEMBERS_BYTES = 1 << 20
"""Bytes of records per ``members`` block, about."""

_COMMIT = 32


# ------------------------------------------------------------------ taking


def records_of(blocks: Iterable[tuple[bytes, bytes]]) -> dict[tuple[str, int], RecordBlocks]:
    """The membership records a snapshot's ``members`` blocks hold, by ``(log, counter)``."""
    out: dict[tuple[str, int], RecordBlocks] = {}
    for _, block in blocks:
        for log, counter, record in read_members(block):
            out[(log_id_from_bytes(log), counter)] = record
    return out


def member_blocks(
    txn: StoreTxn, db: Database, base: Iterable[tuple[bytes, bytes]]
) -> list[tuple[bytes, bytes]]:
    """The ``members`` blocks of a snapshot of ``db`` now: every membership record, whole.

    A record the log no longer holds (a database bootstrapped from a snapshot) comes
    from ``base``, the ``members`` blocks of the snapshot it started from.
    """
    entries = sorted(db.gate.membership(txn), key=lambda e: (e.log, e.counter))
    earlier: dict[tuple[str, int], RecordBlocks] | None = None
    rows: list[list[Any]] = []
    for entry in entries:
        found = reads.read_log(txn, db._repo.tables, db.id, entry.log, entry.counter - 1, 1)
        blocks: RecordBlocks | None
        if found and found[0].counter == entry.counter:
            blocks = found[0].blocks
        else:
            if earlier is None:
                earlier = records_of(base)
            blocks = earlier.get((entry.log, entry.counter))
            if blocks is None:
                raise InvalidInput(
                    f"database {db.name!r} lacks membership record {entry.log}:{entry.counter}"
                    ": a snapshot carries every one"
                )
        rows.append([peer_id_bytes(entry.log), entry.counter, *blocks])
    out: list[tuple[bytes, bytes]] = []
    size, run = 0, []
    for row in rows:
        run.append(row)
        size += sum(len(b) for b in row[2:])
        if size >= MEMBERS_BYTES:
            out.append(_block(run))
            size, run = 0, []
    if run:
        out.append(_block(run))
    return out


def _block(rows: list[list[Any]]) -> tuple[bytes, bytes]:
    block = cbor2.dumps({"t": "members", "r": rows}, canonical=True)
    return cid_of(block), block


def sealing_key(ring: epochs.Keyring) -> tuple[int, bytes, SymmetricKey]:
    """``(epoch, commitments, key)`` a snapshot's chunks are encrypted under: the newest
    epoch's read key this peer writes with."""
    epoch, commits, key = ring.newest()
    read = key.read
    if read is None:
        raise InvalidInput("a snapshot needs the database's read key")
    return epoch, commits, SymmetricKey(read)


def chunk_key(manifest: Mapping[str, Any], ring: epochs.Keyring) -> SymmetricKey | None:
    """The key a manifest's chunks are encrypted under, from ``ring``; None when they are
    not encrypted (a database without members); InvalidSnapshot when it is not held."""
    if "epoch" not in manifest:
        return None
    epoch, commits = manifest["epoch"], manifest["commits"]
    if epoch == 0:
        read = ring.thread_key.read
        if read is None:
            raise InvalidSnapshot("the snapshot is sealed under the read key, not held here")
        return SymmetricKey(read)
    names = [commits[i : i + _COMMIT] for i in range(0, len(commits), _COMMIT)]
    if not ring.holds(epoch, commits):
        raise InvalidSnapshot(
            f"the snapshot is sealed under key epoch {epoch}, whose read key its membership "
            "records do not give this identity"
        )
    held = ring.keys[epoch]
    return epochs.combine([held[n] for n in names], names)


# ------------------------------------------------------------------ reading


def read_members(block: bytes) -> list[tuple[bytes, int, RecordBlocks]]:
    """A ``members`` block's rows ``(log id bytes, counter, record blocks)``; InvalidSnapshot
    when it is not one."""
    try:
        node = cbor2.loads(block)
    except (cbor2.CBORDecodeError, ValueError, TypeError, EOFError, RecursionError) as exc:
        raise InvalidSnapshot(f"a snapshot's members block does not decode: {exc}") from None
    rows = node.get("r") if isinstance(node, dict) and node.get("t") == "members" else None
    if not isinstance(rows, list):
        raise InvalidSnapshot("a snapshot's members block is not a list of records")
    out = []
    for row in rows:
        if (
            not isinstance(row, list)
            or len(row) != 6
            or not isinstance(row[0], bytes)
            or type(row[1]) is not int
            or row[1] < 1
            or not all(isinstance(b, bytes) for b in row[2:])
        ):
            raise InvalidSnapshot(f"a snapshot's members block holds a malformed row {row!r:.120}")
        out.append((row[0], row[1], RecordBlocks(*row[2:])))
    return out


def decrypt(block: bytes, key: SymmetricKey) -> bytes:
    """``block`` opened with ``key``; InvalidSnapshot when it does not open."""
    try:
        return key.decrypt(block)
    except DecryptionError:
        raise InvalidSnapshot("a snapshot chunk does not open with its epoch's read key") from None
