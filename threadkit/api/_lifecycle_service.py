"""``threadkit.pb.Lifecycle``: a database's life cycle for API clients (docs/daemon.md).

Not part of ThreadDB's API: threadkit's own service on the same port, which ThreadDB's
clients never call. Who may do what (docs/daemon.md, "Life cycle"):

- ``Migrate`` and ``Purge`` are events the daemon **attests** for the caller's token
  identity, judged like every attested event (docs/access.md): a migration changes a
  collection, so it needs admin (or an open database), a purge is a write and needs
  writer (or an open database); both the caller and the daemon must hold the role.
- ``Snapshot`` is the daemon's own record, signed with its identity (joiners name the
  daemon in ``trust=``); the daemon takes it for a caller who may write.
- ``ListSnapshots`` and ``VerifySnapshot`` need read access: a verdict only states what
  the records the caller may read say.
- ``Compact`` drops the daemon's own records and history, which no event records and no
  peer can undo, and after which the daemon serves joiners without ``trust=`` nothing
  before the snapshot; open mode does not extend to it: the caller must be the owner or
  an admin of the database, or the daemon's own identity (a call without a token).

Every request is checked before anything is written.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import grpc

from threadkit import errors
from threadkit.api._servicing import Tokens, unary, wire_thread_id
from threadkit.api.proto import lifecycle_pb2 as lpb
from threadkit.api.proto import lifecycle_pb2_grpc as lpb_grpc
from threadkit.db.gate import Attested
from threadkit.db.readaccess import read_refusal, write_refusal

if TYPE_CHECKING:
    from threadkit.core.identity import PublicKey
    from threadkit.db.database import Database
    from threadkit.db.snapshots import Snapshot
    from threadkit.peer import Peer

__all__ = ["LifecycleService", "snapshot_info"]

COMPACT_ROLES = frozenset({"owner", "admin"})
"""The roles that may compact a database through the daemon (besides the daemon itself)."""


def snapshot_info(snap: Snapshot) -> lpb.SnapshotInfo:
    """A snapshot as the wire carries it."""
    return lpb.SnapshotInfo(
        cid=snap.cid,
        record=snap.record,
        log=snap.log,
        counter=snap.counter,
        author=snap.author,
        heads=snap.heads,
        held=snap.held,
        status=snap.status,
    )


def _json(raw: bytes) -> tuple[Any, str]:
    """A request's JSON field (None when empty) and "", or None and why it is not JSON."""
    if not raw:
        return None, ""
    try:
        return json.loads(bytes(raw).decode("utf-8")), ""
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        return None, f"is not valid JSON: {str(exc)[:120]}"


def _cid(raw: bytes) -> bytes:
    if not raw:
        raise errors.InvalidSnapshot("a snapshot CID is required")
    return bytes(raw)


class LifecycleService(lpb_grpc.LifecycleServicer):
    """``threadkit.pb.Lifecycle`` over a peer."""

    def __init__(self, peer: Peer, tokens: Tokens) -> None:
        self.peer = peer
        self.tokens = tokens

    def _db(self, raw: bytes) -> Database:
        return self.peer.get_db(wire_thread_id(raw))

    @staticmethod
    def _may_read(db: Database, who: PublicKey) -> None:
        reason = read_refusal(db, str(who))
        if reason:
            raise errors.PermissionDenied(reason)

    @unary
    def Migrate(self, request: Any, context: grpc.ServicerContext) -> lpb.LifecycleReply:
        """Migrate a collection (``db.migrate``), attested for the caller."""
        who = self.tokens.identity(context)
        db = self._db(request.dbID)
        transform, why = _json(request.transformJSON)
        if why or transform is None:
            raise errors.InvalidMigration(f"transformJSON {why or 'is empty'}")
        schema, why = _json(request.schemaJSON)
        if why:
            raise errors.InvalidSchema(f"schemaJSON {why}")
        indexes, why = _json(request.indexesJSON)
        if why:
            raise errors.InvalidIndex(f"indexesJSON {why}")
        if schema is not None and not isinstance(schema, dict):
            raise errors.InvalidSchema("schemaJSON must be a JSON object")
        if indexes is not None and not isinstance(indexes, list):
            raise errors.InvalidIndex("indexesJSON must be a JSON array of indexes")
        db.migrate(request.collectionName, transform, schema, indexes, identity=Attested(who))
        return lpb.LifecycleReply()

    @unary
    def Purge(self, request: Any, context: grpc.ServicerContext) -> lpb.LifecycleReply:
        """Purge a deleted instance (``coll.purge``), attested for the caller."""
        who = self.tokens.identity(context)
        coll = self._db(request.dbID).get_collection(request.collectionName)
        coll.purge(request.instanceID, identity=Attested(who))
        return lpb.LifecycleReply()

    @unary
    def Snapshot(self, request: Any, context: grpc.ServicerContext) -> lpb.SnapshotInfo:
        """Take a snapshot signed by the daemon, for a caller who may write."""
        who = self.tokens.identity(context)
        db = self._db(request.dbID)
        reason = write_refusal(db, Attested(who))
        if reason:
            raise errors.PermissionDenied(f"{reason} (a snapshot through the daemon needs that)")
        return snapshot_info(db.snapshot())

    @unary
    def ListSnapshots(self, request: Any, context: grpc.ServicerContext) -> lpb.ListSnapshotsReply:
        """The snapshots the daemon knows of, oldest first."""
        who = self.tokens.identity(context)
        db = self._db(request.dbID)
        self._may_read(db, who)
        return lpb.ListSnapshotsReply(snapshots=[snapshot_info(s) for s in db.snapshots()])

    @unary
    def VerifySnapshot(
        self, request: Any, context: grpc.ServicerContext
    ) -> lpb.VerifySnapshotReply:
        """Replay the records up to a snapshot's heads on the daemon (``db.verify_snapshot``)."""
        who = self.tokens.identity(context)
        db = self._db(request.dbID)
        self._may_read(db, who)
        return lpb.VerifySnapshotReply(good=db.verify_snapshot(_cid(request.cid)))

    @unary
    def Compact(self, request: Any, context: grpc.ServicerContext) -> lpb.CompactReply:
        """Drop the daemon's records and history before a snapshot, for an admin."""
        who = self.tokens.identity(context)
        db = self._db(request.dbID)
        cid = _cid(request.cid)
        if who != self.tokens.host:
            role = db.role_of(who)
            if role not in COMPACT_ROLES:
                raise errors.PermissionDenied(
                    f"{who} is {role}: may not compact (the owner, an admin or the daemon "
                    "itself may)"
                )
        done = db.compact(cid, force=request.force, keep_blocks=not request.dropBlocks)
        return lpb.CompactReply(
            snapshot=done.snapshot,
            records=done.records,
            recordBytes=done.record_bytes,
            events=done.events,
        )
