"""Starting a database from a snapshot, and checking a snapshot against the records.

A joiner given a snapshot (:mod:`.snapshots`) — its blocks, the record carrying it and
that record's log key — checks everything before it writes anything
(:func:`check_offer`):

- every block hashes to its CID, the manifest is one and names this thread;
- the record opens under the thread key and its signature verifies under its log key;
  its body is a snapshot body naming the manifest's CID; its writer proof holds, so its
  author is who the record says;
- the record follows, in its log, the head the manifest names for that log (a snapshot
  is written right after the heads it was taken at);
- the author is **trusted**: one of the identities the joiner lists (``trust=``).

Then :func:`install` creates the database — in one transaction, so no record can
arrive in between — with each log starting at the manifest's head
(:func:`threadkit.store.trim.start_at`) and the state rows under the new database's
prefix, and applies the snapshot record itself as the next record of its
log; the records after the heads then arrive and apply as usual, and their ``prev``
links check each log's head CID in the manifest.

**Trust and detection.** A snapshot is trusted only when its author is listed: a
snapshot from anyone else is refused with ``InvalidSnapshot`` and the joiner pulls every
record instead (``net/bootstrap.py``). A listed author can still be wrong (a bug, a
stolen key, a forger with modified code): :func:`verify` replays the records up to the
snapshot's heads in a throwaway repo, through the same engine, and compares the state
chunk by chunk. Any peer that holds those records can run it (``db.verify_snapshot``);
a mismatch marks the snapshot ``bad`` on that peer, so it is never served or used
again there, and a peer that bootstrapped from it can rebuild from the records
(:func:`rebuild_from_records` after pulling them, docs/lifecycle.md).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from threadkit.core.cid import cid_to_string, verify_block
from threadkit.core.clock import HLC, Timestamp
from threadkit.core.identity import Identity, PublicKey
from threadkit.core.ids import ThreadID
from threadkit.core.keys import ThreadKey
from threadkit.core.records import Record, RecordBlocks, open_record
from threadkit.db import dockeys, members, snapjoin, snapmembers, snapshots
from threadkit.db.dockeys import db_prefix
from threadkit.db.doctables import open_db_tables
from threadkit.db.events import decode_record_body
from threadkit.errors import InvalidInput, InvalidSnapshot, RecordError, ThreadkitError
from threadkit.store import logs, threads, trim
from threadkit.store.layout import log_id_from_bytes
from threadkit.store.txntypes import StoreWriteTxn

if TYPE_CHECKING:
    from threadkit.db.database import Database
    from threadkit.db.manager import Manager

__all__ = [
    "Offer",
    "check_offer",
    "install",
    "offer",
    "replay_matches",
    "trusted_keys",
    "verify",
]


@dataclass(frozen=True)
class Offer:
    """A snapshot as one peer hands it to another.

    Attributes
    ----------
    blocks : list of (bytes, bytes)
        ``(CID, block)``: the manifest first, then its chunks.
    record : RecordBlocks
        The four blocks of the record that carries the snapshot.
    log_key : bytes
        The public key of that record's log.
    """

    blocks: list[tuple[bytes, bytes]]
    record: RecordBlocks
    log_key: bytes


@dataclass(frozen=True)
class Checked:
    """An offer that passed :func:`check_offer`."""

    root: bytes
    manifest: dict[str, Any]
    chunks: list[bytes]
    record: Record
    log_id: str
    author: str


def offer(db: Database, snap: snapshots.Snapshot | None = None) -> Offer | None:
    """What this peer can hand a joiner: the newest snapshot it holds, not ``bad``."""
    if snap is None:
        usable = [s for s in snapshots.list_snapshots(db) if s.held and s.status != "bad"]
        if not usable:
            return None
        snap = usable[-1]
    blocks = snapshots.get_blocks(db, snap.cid)
    if blocks is None:
        return None
    stored = db._repo.get_record(snap.record)
    public = db._repo.get_log(db.id, snap.log).public
    return Offer(blocks, stored.blocks, public.to_bytes())


def trusted_keys(trust: Iterable[Identity | PublicKey | str] | None) -> frozenset[str]:
    """The public key strings of ``trust`` (identities, public keys or their strings)."""
    out = set()
    for item in trust or ():
        if isinstance(item, Identity):
            out.add(str(item.public))
        elif isinstance(item, PublicKey):
            out.add(str(item))
        elif isinstance(item, str):
            out.add(str(PublicKey.from_string(item)))
        else:
            raise InvalidInput(f"trust= takes identities or public keys, got {type(item).__name__}")
    return frozenset(out)


def check_offer(item: Offer, thread_id: ThreadID, key: ThreadKey, trust: frozenset[str]) -> Checked:
    """Check a snapshot offer completely (module docstring); InvalidSnapshot when it fails.

    Nothing is written. A block that does not hash to its CID, a record whose signature
    or proof fails, a record not carrying this manifest, a manifest of another thread,
    or an author not in ``trust`` are all refused.
    """
    if not item.blocks:
        raise InvalidSnapshot("the snapshot offer holds no blocks")
    try:
        for cid, block in item.blocks:
            verify_block(cid, block, "snapshot block")
    except RecordError as exc:
        raise InvalidSnapshot(f"forged snapshot: {exc}") from None
    root, manifest_block = item.blocks[0]
    manifest = snapshots.chunks_of(manifest_block)
    if manifest["thread"] != thread_id.to_bytes():
        raise InvalidSnapshot(f"the snapshot is of another thread, not {thread_id}")
    held = dict(item.blocks[1:])
    chunks = [bytes(c) for c in manifest["chunks"]]
    missing = [c for c in chunks if c not in held]
    if missing:
        raise InvalidSnapshot(f"the snapshot offer lacks chunk {cid_to_string(missing[0])}")
    try:
        public = PublicKey.from_bytes(item.log_key)
        record = open_record(item.record, service_key=key, log_key=public)
        body = decode_record_body(record.read_body(key))
    except (RecordError, ThreadkitError) as exc:
        raise InvalidSnapshot(f"the snapshot's record does not check: {exc}") from None
    if (body.snapshot or {}).get("root") != root:
        raise InvalidSnapshot("the snapshot's record does not carry this manifest")
    log_id = public.peer_id
    heads = {log_id_from_bytes(bytes(h["log"])): h for h in manifest["heads"]}
    own = heads.get(log_id)
    if own is None or own["head"] != record.prev:
        raise InvalidSnapshot(
            "the snapshot's record does not follow the head its manifest names for its log"
        )
    entry = members.entry_for(
        body, thread_id=thread_id, log=public, counter=own["counter"] + 1, author=record.author
    )
    if entry.kind != "write":
        raise InvalidSnapshot(f"the snapshot's record has no valid writer proof ({entry.kind})")
    author = str(record.author)
    if author not in trust:
        raise InvalidSnapshot(
            f"snapshot {cid_to_string(root)} is by {author}, whom this peer does not trust"
        )
    return Checked(root, manifest, [held[c] for c in chunks], record, log_id, author)


def install(
    manager: Manager,
    item: Offer,
    key: ThreadKey,
    thread_id: ThreadID,
    name: str | None,
    trust: Iterable[Identity | PublicKey | str] | None,
) -> Database:
    """Create the database of ``thread_id`` from a snapshot offer (checked first).

    Raises
    ------
    InvalidSnapshot
        The offer fails a check of :func:`check_offer` (nothing is written).
    ThreadExists
        The repo holds the thread already.
    """
    checked = check_offer(
        item, thread_id, key, trusted_keys(trust) | {str(manager.identity.public)}
    )
    tables, kept = snapjoin.open_offer(
        checked.manifest, dict(item.blocks), checked.chunks, thread_id=thread_id, key=key,
        me=manager.identity,
    )  # fmt: skip

    def prepare(txn: StoreWriteTxn) -> None:
        # the thread, its logs started at the heads, and the state, in new_db's transaction
        repo_tables, doc_tables = manager.repo.tables, manager.tables
        prefix = manager.next_prefix(txn)
        threads.add_thread(txn, repo_tables, thread_id, key, name)
        for head in checked.manifest["heads"]:
            log_id = log_id_from_bytes(bytes(head["log"]))
            public = PublicKey.from_bytes(bytes(head["pub"]))
            logs.add_log(txn, repo_tables, thread_id, public, None, ())
            cid = bytes(head["head"]) if head["head"] is not None else None
            trim.start_at(txn, repo_tables, thread_id, log_id, cid, head["counter"])
            applied = dockeys.applied_key(prefix, bytes(head["log"]))
            txn.put(applied, head["counter"].to_bytes(8, "big"), db=doc_tables.applied)
        for table, rows in tables:
            cursor = txn.cursor(getattr(doc_tables, table))
            values = prefix if table in snapshots.PREFIXED_VALUES else b""
            pairs = [(prefix + rows[i], values + rows[i + 1]) for i in range(0, len(rows), 2)]
            cursor.putmulti(pairs)
        snapshots.put_blocks(txn, doc_tables, prefix, item.blocks)
        base = {"root": checked.root, "heads": snapshots.heads_of(checked.manifest), **kept}
        snapshots.put_mark(txn, doc_tables, prefix, "base", base)

    db = manager.new_db(name, thread_id=thread_id, key=key, adopt=True, prepare=prepare)
    frontier = bytes(checked.manifest["frontier"])
    if frontier:
        db.hlc.update(Timestamp.from_bytes(frontier[:12]))
    for history in db.engine.colls.values():
        if history.keys:
            db.hlc.update(Timestamp.from_bytes(max(history.keys)[:12]))
    db.apply_records(checked.log_id, [checked.record])
    return db


def verify(db: Database, which: snapshots.Snapshot | bytes | str) -> bool:
    """Replay the records up to a snapshot's heads and compare the state; record the verdict.

    Returns True (``verified``) when every chunk is the same, False (``bad``) otherwise.

    Raises
    ------
    InvalidSnapshot
        The snapshot is unknown here, its blocks are not held, or this peer lacks some
        of the records up to its heads (a bootstrapped or compacted peer).
    """

    snap = snapshots.get_snapshot(db, which)
    blocks = snapshots.get_blocks(db, snap.cid)
    if blocks is None:
        raise InvalidSnapshot(f"this peer does not hold the blocks of snapshot {snap}")
    manifest = snapshots.chunks_of(blocks[0][1])
    gathered: dict[str, tuple[PublicKey, list[Record]]] = {}
    for head in manifest["heads"]:
        log_id = log_id_from_bytes(bytes(head["log"]))
        stored = db._repo.read_log(db.id, log_id, limit=head["counter"])
        if len(stored) != head["counter"]:
            raise InvalidSnapshot(
                f"this peer lacks records of log {log_id} up to snapshot {snap}: cannot check it"
            )
        public = PublicKey.from_bytes(bytes(head["pub"]))
        gathered[log_id] = (
            public,
            [open_record(s.blocks, service_key=db.key, log_key=public, cid=s.cid) for s in stored],
        )
    publics = {log_id: public for log_id, (public, _) in gathered.items()}
    records = {log_id: recs for log_id, (_, recs) in gathered.items()}
    good, _ = replay_matches(db, blocks, publics, records)
    snapshots.set_status(db, snap, "verified" if good else "bad")
    return good


def replay_matches(
    db: Database,
    blocks: list[tuple[bytes, bytes]],
    publics: dict[str, PublicKey],
    gathered: dict[str, list[Record]],
) -> tuple[bool, list[tuple[str, list[bytes]]]]:
    """Replay ``gathered`` (per log, its records up to a snapshot's heads) in a throwaway
    repo through the same engine; whether the state is the snapshot's (``blocks``:
    manifest, then chunks), and the replay's rows (:func:`.snapshots.state_rows`)."""
    from threadkit.store.repo import Repo

    manifest = snapshots.chunks_of(blocks[0][1])
    size = max(64 * 1024**2, 8 * sum(len(b) for _, b in blocks))
    with Repo.temporary(durable=False, map_size=size * 4) as repo:
        own = Identity.generate()
        with repo.transaction(write=True) as txn:
            threads.add_thread(txn, repo.tables, db.id, db.key, db.name)
            logs.add_log(txn, repo.tables, db.id, own.public, own, ())
        # the same class, in a throwaway repo: the replay is the engine's and the gate's own
        replica = type(db)(  # with db's identity: it reads the key epochs db reads
            repo, open_db_tables(repo), db.id, db.name, db.key, db_prefix(1), own, db.identity,
            HLC(),
        )  # fmt: skip
        for log_id, public in publics.items():
            repo.add_log(db.id, public)
            if gathered.get(log_id):
                replica.apply_records(log_id, gathered[log_id])
        with replica.read_txn() as txn:
            rows = [(name, list(chunk)) for name, chunk in snapshots.state_rows(txn, replica)]
            _, frontier = snapshots.state_blocks(txn, replica)
    # rows, not CIDs: another zlib build may compress the same rows to other bytes
    with db.read_txn() as txn:
        sealed = snapmembers.chunk_key(manifest, db.gate.ring(txn))
    chunked = blocks[1 : 1 + len(manifest["chunks"])]
    theirs = [snapshots.read_chunk(block, sealed) for _, block in chunked]
    good = rows == theirs and frontier == bytes(manifest["frontier"])
    return good, rows
