"""peer_child commands for snapshots and compaction (tests/e2e/test_e2e_snapshots.py)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import cbor2

from threadkit.db import dockeys, snapshots
from threadkit.db.database import Database

__all__ = ["LIFECYCLE"]


def _snapshot(db: Database, msg: dict[str, Any]) -> dict[str, Any]:
    snap = db.snapshot()
    return {"cid": str(snap), "heads": snap.heads}


def _state(db: Database, msg: dict[str, Any]) -> dict[str, Any]:
    """The snapshot's view of the state: a digest of every table the records fold into,
    the base it started from, the snapshots it knows."""
    digest = hashlib.sha256()
    with db.read_txn() as txn:
        blocks, _ = snapshots.state_blocks(txn, db)
    for _, block in blocks:
        digest.update(block)
    base = snapshots.mark(db, "base")
    return {
        "digest": digest.hexdigest(),
        "base": None if base is None else base["root"].hex(),
        "snapshots": [{"cid": str(s), "status": s.status, "held": s.held} for s in db.snapshots()],
        "held": len(db._repo.read_log(db.id, db.log_id)),
    }


def _verify(db: Database, msg: dict[str, Any]) -> dict[str, Any]:
    return {"good": db.verify_snapshot(msg["cid"])}


def _compact(db: Database, msg: dict[str, Any]) -> dict[str, Any]:
    done = db.compact(msg["cid"], force=msg.get("force", False))
    return {"records": done.records, "events": done.events}


def _tamper(db: Database, msg: dict[str, Any]) -> dict[str, Any]:
    """Change a stored document behind the engine's back: a snapshot taken now is signed
    by this peer but is not the state its records give (what a forger's code would do)."""
    key = dockeys.doc_key(db.engine.coll_key(msg["coll"]), msg["id"])
    with db._repo.transaction(write=True) as txn:
        txn.put(key, cbor2.dumps({"_id": msg["id"], "forged": True}), db=db._tables.docs)
    return {}


LIFECYCLE: dict[str, Callable[[Database, dict[str, Any]], dict[str, Any]]] = {
    "db_snapshot": _snapshot,
    "lifecycle": _state,
    "verify_snapshot": _verify,
    "compact": _compact,
    "tamper": _tamper,
}
