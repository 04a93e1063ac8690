"""Joining from a snapshot over the network (docs/lifecycle.md, docs/protocol.md).

Two requests, served by any peer that holds a snapshot's blocks:

- ``get_snapshot`` (thread, auth) → ``{snapshot?: {manifest, record, pub}}``: the
  manifest block of the newest snapshot the peer holds and has not found bad, the four
  blocks of the record carrying it, and that record's log key;
- ``get_blocks`` (thread, auth, cids) → ``{blocks: [[cid, block], …]}``: snapshot blocks
  by CID, as many as fit a reply (:data:`~threadkit.net.protocol.MAX_REPLY_BYTES`).

A joiner that trusts some authors (``peer.new_db_from_addr(..., trust=[...])``) asks
for the snapshot first, fetches its chunks in large batches, checks everything and
installs it (:func:`threadkit.db.bootstrap.install`); the records after the snapshot's
heads then come with the usual pull. A peer without a snapshot, an untrusted or forged
one, or a failed fetch make the joiner pull every record instead, as before; why is
logged and counted in ``stats.errors``.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from threadkit.core.cid import cid_of, verify_block
from threadkit.core.identity import peer_id_bytes
from threadkit.core.records import RecordBlocks
from threadkit.db import bootstrap, snapshots
from threadkit.errors import DBNotFound, NetworkError, ThreadkitError
from threadkit.net import protocol as p

if TYPE_CHECKING:
    from threadkit.core.ids import ThreadID
    from threadkit.core.keys import ThreadKey
    from threadkit.db.database import Database
    from threadkit.net.client import Requester
    from threadkit.net.context import ServiceContext

__all__ = ["blocks_reply", "fetch_offer", "join_from_snapshot", "snapshot_reply"]

log = logging.getLogger("threadkit.net")

MAX_CIDS = 4096
"""CIDs one ``get_blocks`` asks for at most."""


def _db(ctx: ServiceContext, thread_id: ThreadID) -> Database | None:
    try:
        return ctx.manager.get_db(thread_id)
    except DBNotFound:  # a replicator: no snapshot (it cannot read the state)
        return None


def snapshot_reply(ctx: ServiceContext, thread_id: ThreadID) -> dict[str, Any]:
    """The fields of the reply to ``get_snapshot``."""
    db = _db(ctx, thread_id)
    item = bootstrap.offer(db) if db is not None else None
    if item is None:
        return {}
    record = item.record
    return {
        "snapshot": {
            "manifest": item.blocks[0][1],
            "record": [record.record, record.event, record.header, record.body],
            "pub": item.log_key,
        }
    }


def blocks_reply(ctx: ServiceContext, thread_id: ThreadID, cids: list[bytes]) -> list[list[bytes]]:
    """Snapshot blocks by CID, within the reply budget (the first always goes)."""
    db = _db(ctx, thread_id)
    if db is None:
        return []
    out: list[list[bytes]] = []
    budget = p.MAX_REPLY_BYTES
    table = db._tables.snapblocks
    with db.read_txn() as txn:
        for cid in cids:
            block = txn.get(db.prefix + cid, db=table)
            if block is None:
                continue
            if out and len(block) > budget:
                break
            budget -= len(block)
            out.append([cid, bytes(block)])
    return out


async def fetch_offer(
    client: Requester, peer_id: str, thread_id: ThreadID, key: ThreadKey
) -> bootstrap.Offer | None:
    """Ask ``peer_id`` for its newest snapshot and all its blocks; None when it has none.

    Every block is checked against its CID as it arrives (the rest of the checks are
    :func:`threadkit.db.bootstrap.check_offer`'s).
    """
    tid = thread_id.to_bytes()
    auth = p.auth_token(key.service, tid, peer_id_bytes(peer_id))
    reply = await client.request(peer_id, {"t": "get_snapshot", "thread": tid, "auth": auth})
    node = reply.get("snapshot")
    if not isinstance(node, dict):
        return None
    manifest = p._bytes(node.get("manifest"), "manifest", p.MAX_REPLY_BYTES)
    record = p.blocks_from_node(node.get("record"))
    pub = p._bytes(node.get("pub"), "log key", 64)
    root = cid_of(manifest)
    blocks: dict[bytes, bytes] = {}
    want = snapshots.block_cids(snapshots.chunks_of(manifest))  # chunks, members blocks
    while len(blocks) < len(set(want)):
        ask = [c for c in want if c not in blocks][:MAX_CIDS]
        reply = await client.request(
            peer_id, {"t": "get_blocks", "thread": tid, "auth": auth, "cids": ask}
        )
        got = 0
        for item in p._list(reply.get("blocks", []), "blocks"):
            pair = p._list(item, "block")
            if len(pair) != 2 or not all(isinstance(x, bytes) for x in pair):
                raise NetworkError("a snapshot block is not [cid, bytes]")
            cid, block = pair
            if cid in ask and cid not in blocks:
                verify_block(cid, block, "snapshot block")
                blocks[cid] = block
                got += 1
        if not got:
            raise NetworkError(f"peer {peer_id} does not serve the blocks of its snapshot")
    return bootstrap.Offer(
        [(root, manifest), *[(c, blocks[c]) for c in want]], RecordBlocks(*record), pub
    )


async def join_from_snapshot(
    ctx: ServiceContext,
    client: Requester,
    peer_id: str,
    thread_id: ThreadID,
    key: ThreadKey,
    name: str | None,
    trust: frozenset[str],
) -> Database | None:
    """Create the database from ``peer_id``'s newest snapshot, if it has one this peer
    trusts; None (and the reason logged and counted) otherwise."""
    import trio

    try:
        item = await fetch_offer(client, peer_id, thread_id, key)
        if item is None:
            return None
        manager = ctx.manager

        def install() -> Database:
            return bootstrap.install(manager, item, key, thread_id, name, trust)

        db: Database = await trio.to_thread.run_sync(install)
        return db
    except (NetworkError, ThreadkitError, OSError) as exc:
        log.info(
            "joining %s from a snapshot of %s failed, pulling every record: %s",
            thread_id,
            peer_id,
            exc,
        )
        ctx.stats.error(f"snapshot from {peer_id}: {exc}")
        return None
