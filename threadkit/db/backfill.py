"""Checking the snapshot a database bootstrapped from, with records fetched from peers.

A peer that joined from a trusted snapshot (:mod:`.bootstrap`) holds no record before the
snapshot's heads, so it cannot replay them itself. The network layer fetches those records
from other peers (``threadkit/net/backfill.py``) and hands them here:

- :func:`wanted` — what to fetch: for each log of the manifest, its public key, counter
  and head CID;
- :func:`check_chain` — the fetched records of one log form its chain from the first
  record to the head the manifest names (each ``prev`` the CID before it, the last the
  head: the same CIDs any full replica holds, so a peer cannot slip other records in);
- :func:`check_bootstrap` — replays them in a throwaway repo through the same engine and
  compares with the snapshot, row by row (:func:`.bootstrap.replay_matches`). A match
  marks the snapshot ``verified``. A mismatch marks it ``bad``, warns through the
  ``threadkit`` logger and **rebuilds** the state: the replay's rows replace the
  snapshot's, and the records this peer holds after the heads are applied again on top
  (listeners are told of every document that changed). The replay's rows are kept as the
  base from then on (:func:`.basestate.replace`), so a later rebuild of a database with
  members (a late revoke) starts from them, not from the wrong snapshot.

The fetched records are then dropped: the peer stays a bootstrapped peer (its logs start
at the heads, like a compacted one), so verifying costs no disk. When no peer can serve
the records any more (all compacted or bootstrapped), :func:`mark_unverifiable` records
that, rather than pretending the snapshot was checked.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from threadkit.core.identity import PublicKey, peer_id_bytes
from threadkit.core.records import Record, open_record
from threadkit.db import basestate, bootstrap, snapshots
from threadkit.db.change import change_between
from threadkit.db.doctables import delete_prefix, load_doc
from threadkit.db.indexkeys import decode_id
from threadkit.errors import InvalidSnapshot
from threadkit.store import reads
from threadkit.store.layout import log_id_from_bytes
from threadkit.store.txntypes import StoreWriteTxn

if TYPE_CHECKING:
    from threadkit.db.change import Change
    from threadkit.db.database import Database

__all__ = [
    "LogWanted",
    "base_snapshot",
    "check_bootstrap",
    "check_chain",
    "mark_unverifiable",
    "wanted",
]

log = logging.getLogger("threadkit")

LogWanted = tuple[PublicKey, int, bytes | None]
"""A log's public key, the counter of its head at the snapshot and that head's CID."""


def base_snapshot(db: Database) -> snapshots.Snapshot | None:
    """The snapshot ``db`` bootstrapped from (None when it replayed every record)."""
    base = snapshots.mark(db, "base")
    if base is None:
        return None
    return snapshots.get_snapshot(db, bytes(base["root"]))


def wanted(db: Database, snap: snapshots.Snapshot) -> dict[str, LogWanted]:
    """Per log id, what checking ``snap`` needs fetched (logs with records before it)."""
    blocks = snapshots.get_blocks(db, snap.cid)
    if blocks is None:
        raise InvalidSnapshot(f"this peer does not hold the blocks of snapshot {snap}")
    out = {}
    for head in snapshots.chunks_of(blocks[0][1])["heads"]:
        if head["counter"] > 0:
            cid = bytes(head["head"]) if head["head"] is not None else None
            public = PublicKey.from_bytes(bytes(head["pub"]))
            out[log_id_from_bytes(bytes(head["log"]))] = (public, head["counter"], cid)
    return out


def check_chain(records: list[Record], want: LogWanted, complete: bool) -> bool:
    """True when ``records`` start a log's chain from its first record and, with
    ``complete``, end at the wanted head (``want``'s counter and CID)."""
    prev = None
    for record in records:
        if record.prev != prev:
            return False
        prev = record.cid
    if not complete:
        return len(records) <= want[1]
    return len(records) == want[1] and prev == want[2]


def open_fetched(db: Database, blocks: list[Any], public: PublicKey) -> list[Record]:
    """Fetched record blocks opened and checked (CIDs, decryption, signatures)."""
    return [open_record(b, service_key=db.key, log_key=public) for b in blocks]


def mark_unverifiable(db: Database, snap: snapshots.Snapshot, why: str) -> None:
    """Record that no peer could serve the records before ``snap`` (it stays in use)."""
    if snap.status in ("verified", "bad"):
        return
    snapshots.set_status(db, snap, "unverifiable")
    log.warning(
        "snapshot %s that %s bootstrapped from cannot be checked: %s",
        snap,
        db.name,
        why,
    )


def check_bootstrap(
    db: Database, snap: snapshots.Snapshot, gathered: dict[str, list[Record]]
) -> bool:
    """Replay the fetched records before ``snap`` and compare; rebuild when it is wrong.

    ``gathered`` holds, per log of :func:`wanted`, its records up to the snapshot's head,
    each log's chain checked (:func:`check_chain`). Returns True when the snapshot is
    good (``verified``), False when it was wrong (``bad``; the state is rebuilt).
    """
    logs = wanted(db, snap)
    for log_id, want in logs.items():
        records = gathered.get(log_id, [])
        if not check_chain(records, want, complete=False) or len(records) != want[1]:
            raise InvalidSnapshot(f"the records of log {log_id} do not reach the snapshot's head")
        if not check_chain(records, want, complete=True):
            # the log's own signed chain, to the counter the manifest names, ends elsewhere
            snapshots.set_status(db, snap, "bad")
            log.warning(
                "snapshot %s by %s, which %s bootstrapped from, is WRONG: it names a head of "
                "log %s that its records do not end at; the records after it cannot chain on",
                snap,
                snap.author,
                db.name,
                log_id,
            )
            return False
    blocks = snapshots.get_blocks(db, snap.cid) or []
    publics = {log_id: want[0] for log_id, want in logs.items()}
    good, replica_rows = bootstrap.replay_matches(db, blocks, publics, gathered)
    if good:
        snapshots.set_status(db, snap, "verified")
        return True
    log.warning(
        "snapshot %s by %s, which %s bootstrapped from, is WRONG: the records before it "
        "give another state. The snapshot is marked bad and the state rebuilt from them.",
        snap,
        snap.author,
        db.name,
    )
    rebuild(db, snap, replica_rows)
    return False


def rebuild(db: Database, snap: snapshots.Snapshot, rows: list[tuple[str, list[bytes]]]) -> None:
    """Mark ``snap`` bad, replace the state with a replay's ``rows`` at its heads (which
    also become the base a later rebuild restores, :func:`.basestate.replace`), then apply
    again the records this peer holds after the heads (in one transaction)."""
    heads = snapshots.mark(db, "base") or {}
    at = {str(k): int(v) for k, v in dict(heads.get("heads", {})).items()}
    before, names = _docs(db), set(db.engine.colls)

    def attempt(txn: StoreWriteTxn) -> None:
        # the verdict, the new base and the state in one transaction: a peer stopped
        # half-way still finds the snapshot unchecked, and checks it again when reopened
        snapshots.set_status(db, snap, "bad", txn)
        basestate.replace(txn, db, rows)
        for name in snapshots.STATE_TABLES:
            delete_prefix(txn, getattr(db._tables, name), db.prefix)
        for name, chunk in rows:
            cursor = txn.cursor(getattr(db._tables, name))
            values = db.prefix if name in snapshots.PREFIXED_VALUES else b""
            pairs = [(db.prefix + chunk[i], values + chunk[i + 1]) for i in range(0, len(chunk), 2)]
            cursor.putmulti(pairs)
        db.engine.load(txn)
        for info in db._repo.list_logs(db.id):
            start = at.get(info.id, 0)
            log_bytes = peer_id_bytes(info.id)
            db._set_applied(txn, log_bytes, start)
            for stored in reads.read_log(txn, db._repo.tables, db.id, info.id, start):
                record = open_record(
                    stored.blocks,
                    service_key=db.key,
                    log_key=info.public,
                    cid=stored.cid,
                    verify_signature=False,
                )
                db.gate.note(txn, info.id, stored.counter, record)
                db._set_applied(txn, log_bytes, stored.counter)
        db.gate.settle(txn)

    try:
        db._rounds(attempt)
    finally:
        with db.read_txn() as txn:
            db.engine.load(txn)
    db._after_commit(_changed(db, names | set(db.engine.colls), before, _docs(db)), None)


def _docs(db: Database) -> dict[bytes, bytes]:
    out = {}
    with db.read_txn() as txn:
        cursor = txn.cursor(db._tables.docs)
        if cursor.set_range(db.prefix):
            for key, value in cursor:
                if not bytes(key).startswith(db.prefix):
                    break
                out[bytes(key)] = bytes(value)
    return out


def _changed(
    db: Database, names: set[str], before: dict[bytes, bytes], after: dict[bytes, bytes]
) -> list[Change]:
    """The changes listeners see: every document of collections ``names`` the rebuild changed."""
    colls = {db.engine.coll_key(name): name for name in names}
    out = []
    for key in sorted(before.keys() | after.keys()):
        if before.get(key) == after.get(key):
            continue
        coll = next((c for c in colls if key.startswith(c)), None)
        if coll is None:
            continue
        instance_id, _ = decode_id(key, len(coll))
        old, new = before.get(key), after.get(key)
        out.append(
            change_between(
                colls[coll],
                instance_id,
                None if old is None else load_doc(old),
                None if new is None else load_doc(new),
            )
        )
    return out
