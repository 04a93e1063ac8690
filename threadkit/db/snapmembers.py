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
members the records seal it to — never to a revoked member who kept the thread key.

A joiner (:func:`open_offer`) checks each membership record as a receiver would — its
signature under the log key the manifest names, epoch 0, a writer proof that holds, a
membership event that reads — and folds them with the normal code into entries; the
snapshot's ``access`` rows must then hold exactly those entries for the membership
records (no more, no fewer, field for field), no record locked to the author, and every
row's ``ok`` flag must be the verdict the fold gives it. Then the joiner's key ring is
computed from those records and its own identity, as a full-replay peer's is, and
opens the chunks. Anything else raises :class:`~threadkit.errors.InvalidSnapshot`
before a byte is written. What the joiner still trusts the author for: the records
*between* the membership records (documents, configs, their entries) and that the set of
membership records is complete (docs/access.md, "Snapshots of a database with members").
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import base58
import cbor2

from threadkit.core.cid import cid_of, cid_to_string
from threadkit.core.identity import Identity, PublicKey, peer_id_bytes
from threadkit.core.ids import ThreadID
from threadkit.core.keys import ThreadKey
from threadkit.core.records import RecordBlocks, open_record
from threadkit.core.symmetric import SymmetricKey
from threadkit.db import epochs, members
from threadkit.db.events import decode_record_body
from threadkit.errors import DecryptionError, InvalidInput, InvalidSnapshot, ThreadkitError
from threadkit.store import reads
from threadkit.store.layout import log_id_from_bytes
from threadkit.store.txntypes import StoreTxn

if TYPE_CHECKING:
    from threadkit.db.database import Database

__all__ = [
    "MEMBERS_BYTES",
    "check_rows",
    "chunk_key",
    "entry_of_row",
    "member_blocks",
    "open_offer",
    "read_members",
    "records_of",
    "sealing_key",
]

MEMBERS_BYTES = 1 << 20
"""Bytes of records per ``members`` block, about."""

_COMMIT = 32


# ------------------------------------------------------------------ taking


def records_of(
    db: Database, blocks: Iterable[tuple[bytes, bytes]]
) -> dict[tuple[str, int], RecordBlocks]:
    """The membership records a snapshot's ``members`` blocks hold, by ``(log, counter)``."""
    out: dict[tuple[str, int], RecordBlocks] = {}
    for _, block in blocks:
        for log, counter, record in read_members(block):
            out[(log_id_from_bytes(log), counter)] = record
    return out


def member_blocks(txn: StoreTxn, db: Database) -> list[tuple[bytes, bytes]]:
    """The ``members`` blocks of a snapshot of ``db`` now: every membership record, whole.

    A record the log no longer holds (a database bootstrapped from a snapshot) comes
    from the ``members`` blocks of the snapshot it started from.
    """
    from threadkit.db import snapshots

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
                base = snapshots.mark_in(txn, db._tables, db.prefix, "base")
                held = snapshots.held_blocks(txn, db, base["root"], "members") if base else []
                earlier = records_of(db, held)
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


def entry_of_row(key: bytes, value: bytes) -> members.Entry:
    """The entry of an ``access`` row of a snapshot (its key without the prefix)."""
    try:
        log = base58.b58encode(key[:-8]).decode()
        counter = int.from_bytes(key[-8:], "big")
        node = cbor2.loads(value)
        return members.Entry(log, counter, node["k"], node["t"], node["a"], node["f"], node["ok"])
    except (cbor2.CBORDecodeError, ValueError, TypeError, KeyError, EOFError) as exc:
        raise InvalidSnapshot(f"a snapshot's access row does not decode: {exc}") from None


def _recorded(
    manifest: Mapping[str, Any],
    held: Mapping[bytes, bytes],
    thread_id: ThreadID,
    key: ThreadKey,
) -> list[members.Entry]:
    """The entries of the membership records a manifest carries, each checked as a
    receiver checks it."""
    heads = {log_id_from_bytes(bytes(h["log"])): h for h in manifest["heads"]}
    out: dict[tuple[str, int], members.Entry] = {}
    for cid in manifest.get("members", []):
        block = held.get(bytes(cid))
        if block is None:
            raise InvalidSnapshot(f"the snapshot offer lacks members block {cid_to_string(cid)}")
        for log, counter, blocks in read_members(block):
            log_id = log_id_from_bytes(log)
            head = heads.get(log_id)
            where = f"membership record {log_id}:{counter}"
            if head is None or counter > head["counter"] or (log_id, counter) in out:
                raise InvalidSnapshot(f"{where} is not one of the snapshot's records")
            public = PublicKey.from_bytes(bytes(head["pub"]))
            try:
                record = open_record(blocks, service_key=key, log_key=public)
                if record.epoch:
                    raise InvalidSnapshot(f"{where} is sealed under epoch {record.epoch}, not 0")
                body = decode_record_body(record.read_body(key))
            except InvalidSnapshot:
                raise
            except ThreadkitError as exc:
                raise InvalidSnapshot(f"{where} does not check: {exc}") from None
            if counter == head["counter"] and record.cid != head["head"]:
                raise InvalidSnapshot(f"{where} is not the head its manifest names")
            entry = members.entry_for(
                body, thread_id=thread_id, log=public, counter=counter, author=record.author
            )
            if entry.kind not in epochs.MEMBERSHIP:
                why = entry.fields.get("why", "no writer proof" if entry.kind == "unproven" else "")
                raise InvalidSnapshot(f"{where} does not count: {entry.kind} ({why})")
            out[(log_id, counter)] = entry
    return list(out.values())


def check_rows(recorded: list[members.Entry], access: list[members.Entry]) -> None:
    """The ``access`` rows of a snapshot against its membership records' entries.

    Raises InvalidSnapshot unless the membership rows are exactly the records' entries,
    no row is locked, and every row's ``ok`` is the verdict the members fold gives it.
    """
    mine = {(e.log, e.counter): e for e in recorded}
    for row in access:
        position = (row.log, row.counter)
        where = f"the snapshot's access entry {row.log}:{row.counter}"
        if row.kind == "locked":
            raise InvalidSnapshot(f"{where} is locked: its author could not read that record")
        if row.kind not in epochs.MEMBERSHIP:
            continue
        entry = mine.pop(position, None)
        if entry is None:
            raise InvalidSnapshot(f"{where} is a membership entry without its record")
        if _plain(entry) != _plain(row):
            raise InvalidSnapshot(f"{where} does not match its membership record")
    if mine:
        log, counter = min(mine)
        raise InvalidSnapshot(f"membership record {log}:{counter} has no access entry")
    verdicts = members.verdicts(access)
    for row in access:
        if row.ok != (not verdicts.get((row.log, row.counter))):
            raise InvalidSnapshot(
                f"the snapshot's verdict of record {row.log}:{row.counter} is not the one its "
                "membership records give"
            )


def _plain(entry: members.Entry) -> dict[str, Any]:
    node = cbor2.loads(entry.encode())
    node.pop("ok")
    return dict(node)


def open_offer(
    manifest: Mapping[str, Any],
    held: Mapping[bytes, bytes],
    chunks: list[bytes],
    *,
    thread_id: ThreadID,
    key: ThreadKey,
    me: Identity,
) -> tuple[list[tuple[str, list[bytes]]], dict[str, Any]]:
    """The state rows of a snapshot offer, its membership records checked (module docstring),
    and what the ``base`` mark keeps of it (the key its chunks open with).

    ``held`` maps CIDs to the offer's blocks (already checked against them); ``chunks``
    are its chunk blocks in manifest order. Raises InvalidSnapshot; writes nothing.
    """
    from threadkit.db import snapshots

    if "members" not in manifest:
        tables = [snapshots.read_chunk(chunk) for chunk in chunks]
        if any(name == "access" and _has_genesis(rows) for name, rows in tables):
            raise InvalidSnapshot("the snapshot holds members but not their records")
        return tables, {}
    recorded = _recorded(manifest, held, thread_id, key)
    ring = epochs.keyring(
        recorded, members.verdicts(recorded), me=me, thread_key=key, thread_id=thread_id,
        opened={},
    )  # fmt: skip
    sealed = chunk_key(manifest, ring)
    tables = [snapshots.read_chunk(chunk, sealed) for chunk in chunks]
    access = [
        entry_of_row(rows[i], rows[i + 1])
        for name, rows in tables
        if name == "access"
        for i in range(0, len(rows), 2)
    ]
    check_rows(recorded, access)
    return tables, {} if sealed is None else {"key": sealed.raw}


def _has_genesis(rows: list[bytes]) -> bool:
    return any(entry_of_row(rows[i], rows[i + 1]).kind == "genesis" for i in range(0, len(rows), 2))


def decrypt(block: bytes, key: SymmetricKey) -> bytes:
    """``block`` opened with ``key``; InvalidSnapshot when it does not open."""
    try:
        return key.decrypt(block)
    except DecryptionError:
        raise InvalidSnapshot("a snapshot chunk does not open with its epoch's read key") from None
