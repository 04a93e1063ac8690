"""A joiner's checks of a snapshot of a database with members, before anything is written.

A snapshot of a database with members (:mod:`.snapmembers`) carries its membership
records whole. :func:`open_offer` checks each as a receiver would — its signature under
the log key the manifest names, epoch 0, a writer proof that holds, a membership event
that reads — and folds them with the normal code into entries; the snapshot's ``access``
rows must then hold exactly those entries for the membership records (no more, no fewer,
field for field), no record locked to the author, and every row's ``ok`` flag must be the
verdict the members fold gives it (:func:`check_rows`). The joiner's key ring is
computed from those records and its own identity, as a full-replay peer's is, and must
open the chunks. Anything else raises :class:`~threadkit.errors.InvalidSnapshot`.

What the joiner still trusts the author for: the rows between the membership records
(documents, configs, their entries) and that the set of membership records is complete
(docs/access.md, "Snapshots of a database with members").
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import base58
import cbor2

from threadkit.core.cid import cid_to_string
from threadkit.core.identity import Identity, PublicKey
from threadkit.core.ids import ThreadID
from threadkit.core.keys import ThreadKey
from threadkit.core.records import open_record
from threadkit.db import epochs, members, snapmembers, snapshots
from threadkit.db.events import decode_record_body
from threadkit.errors import InvalidSnapshot, ThreadkitError
from threadkit.store.layout import log_id_from_bytes

__all__ = ["check_rows", "entry_of_row", "open_offer"]


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
        for log, counter, blocks in snapmembers.read_members(block):
            try:
                log_id = log_id_from_bytes(log)
                head = heads.get(log_id)
                public = PublicKey.from_bytes(bytes(head["pub"])) if head else None
            except ThreadkitError as exc:
                raise InvalidSnapshot(f"a membership record names no log: {exc}") from None
            where = f"membership record {log_id}:{counter}"
            if head is None or counter > head["counter"] or (log_id, counter) in out:
                raise InvalidSnapshot(f"{where} is not one of the snapshot's records")
            if public is None or public.peer_id != log_id:
                raise InvalidSnapshot(f"{where}: the manifest names another key for its log")
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
    sealed = snapmembers.chunk_key(manifest, ring)
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
