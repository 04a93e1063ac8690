"""Compacting a database with members: it then stands where a joiner from the snapshot stands.

A database with members rebuilds its documents when a record it applied is rejected after
all (a revoke that arrived late cut it, :mod:`.gate`), and a rebuild applies the accepted
records again — the records a compaction drops. A database bootstrapped from a snapshot
lives without them already (:mod:`.basestate`): it keeps a ``base`` mark naming the
snapshot, a rebuild puts the snapshot's rows back and applies the accepted records after
its heads, and the membership records come with the snapshot's ``members`` blocks.

:func:`prepare` puts a compaction on the same footing. Before anything is dropped it
checks that this peer can stand on the snapshot:

- it keeps the snapshot's blocks (``keep_blocks=False`` is refused): a rebuild restores
  the snapshot's rows, and the next snapshot takes the membership records before the
  heads from its ``members`` blocks;
- it holds no record it cannot read (a ``locked`` entry, of a key epoch not sealed to it):
  that record's events and verdict could not be folded on the base, as
  :func:`.snapshots.take` refuses to snapshot one;
- the snapshot's chunks open with a read key it holds (:func:`.snapmembers.chunk_key`),
  and its ``members`` blocks hold every membership record it holds up to the heads.

The compaction then writes the ``base`` mark a joiner from that snapshot would have
(:func:`base_mark`): root, heads and chunk key, and the positions already listed stale
by an earlier base (their documents stay this peer's). From then on the gate treats the
records before the heads as a bootstrapped database does: a late revoke cutting a write
inside the snapshot lists it in :func:`.basestate.stale`, and the verdicts, members and
roles stay those of a full replay.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from threadkit.core.symmetric import SymmetricKey
from threadkit.db import basestate, epochs, snapmembers, snapshots
from threadkit.db.doctables import delete_prefix
from threadkit.errors import InvalidInput, InvalidSnapshot
from threadkit.store.txntypes import StoreWriteTxn

if TYPE_CHECKING:
    from threadkit.db.database import Database

__all__ = ["base_mark", "prepare"]


def prepare(
    db: Database,
    snap: snapshots.Snapshot,
    blocks: list[tuple[bytes, bytes]],
    heads: dict[str, int],
    keep_blocks: bool,
) -> SymmetricKey | None:
    """Check that ``db`` (which has members) can be compacted at ``snap``; return the key
    its chunks open with. Nothing is written.

    Raises
    ------
    InvalidInput
        ``keep_blocks`` is False, or ``db`` holds a record it cannot read.
    InvalidSnapshot
        The snapshot's chunks are sealed under a key epoch this peer does not hold, or its
        members blocks lack a membership record this peer holds up to its heads.
    """
    if not keep_blocks:
        raise InvalidInput(
            f"cannot compact {db.name!r} with keep_blocks=False: a database with members "
            "keeps the snapshot's blocks, which a rebuild after a late revoke restores"
        )
    manifest = snapshots.chunks_of(blocks[0][1])
    with db.read_txn() as txn:
        entries = db.gate.fold(txn)[0]
        locked = [e for e in entries if e.kind == "locked"]
        if locked:
            first = locked[0]
            raise InvalidInput(
                f"cannot compact {db.name!r}: it holds record {first.log}:{first.counter} of "
                f"key epoch {first.fields['sealed'][0]}, which this peer cannot read, so its "
                "state cannot be rebuilt on the snapshot; compact once it reads it"
            )
        key = snapmembers.chunk_key(manifest, db.gate.ring(txn))
    carried = set(snapmembers.records_of(_members_blocks(manifest, blocks)))
    missing = [
        e
        for e in entries
        if e.kind in epochs.MEMBERSHIP
        and e.counter <= heads.get(e.log, 0)
        and (e.log, e.counter) not in carried
    ]
    if missing:
        raise InvalidSnapshot(
            f"snapshot {snap} lacks membership record {missing[0].log}:{missing[0].counter}: "
            f"{db.name!r} cannot be compacted at it"
        )
    return key


def _members_blocks(
    manifest: dict[str, Any], blocks: list[tuple[bytes, bytes]]
) -> list[tuple[bytes, bytes]]:
    wanted = {bytes(c) for c in manifest.get("members", [])}
    return [(cid, block) for cid, block in blocks if cid in wanted]


def base_mark(
    txn: StoreWriteTxn,
    db: Database,
    snap: snapshots.Snapshot,
    heads: dict[str, int],
    key: SymmetricKey | None,
) -> None:
    """Write the ``base`` mark of a joiner from ``snap`` (in the compaction's write).

    An earlier base's stale positions stay listed; its replayed rows (a wrong snapshot it
    started from, :func:`.basestate.replace`) go, as the new base is this snapshot's rows.
    """
    old = snapshots.mark_in(txn, db._tables, db.prefix, "base") or {}
    base: dict[str, Any] = {"root": snap.cid, "heads": heads}
    if key is not None:
        base["key"] = key.raw
    if old.get("stale"):
        base["stale"] = old["stale"]
    if old.get("replayed"):
        delete_prefix(txn, db._tables.snaps, db.prefix + basestate.ROWS)
    snapshots.put_mark(txn, db._tables, db.prefix, "base", base)
