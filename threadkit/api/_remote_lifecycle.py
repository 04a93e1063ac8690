"""A database's life cycle through a threadkit daemon: :class:`RemoteLifecycle`.

The calls go to threadkit's own ``threadkit.pb.Lifecycle`` service (not ThreadDB's API;
ThreadDB's daemon answers UNIMPLEMENTED). Who may do what is in docs/daemon.md ("Life
cycle"): a migration is an event the daemon attests for the caller (admin, or an open
database), a snapshot is the daemon's own record (for a caller who may write), and a
compaction needs the database's owner or an admin, or the daemon's own identity.
Requests are checked here first, and again by the daemon, before anything is written.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from threadkit.api.proto import lifecycle_pb2 as lpb
from threadkit.db.compaction import Compacted
from threadkit.db.config import Index
from threadkit.db.snapshots import Snapshot
from threadkit.db.transforms import parse_transform
from threadkit.errors import InvalidIndex, InvalidInput, InvalidMigration, InvalidSchema

if TYPE_CHECKING:
    from threadkit.api.client import Client
    from threadkit.core.identity import Identity, PublicKey

__all__ = ["RemoteLifecycle", "snapshot_from_info"]


def snapshot_from_info(info: Any) -> Snapshot:
    """A ``SnapshotInfo`` message as the embedded :class:`~threadkit.db.snapshots.Snapshot`."""
    return Snapshot(
        bytes(info.cid),
        bytes(info.record),
        info.log,
        int(info.counter),
        info.author,
        {log: int(n) for log, n in info.heads.items()},
        bool(info.held),
        info.status,
    )


def _cid(snap: object) -> bytes:
    """A snapshot's CID bytes from a Snapshot, its CID or its CID text."""
    from threadkit.core.cid import cid_from_string
    from threadkit.errors import InvalidSnapshot

    if isinstance(snap, Snapshot):
        return snap.cid
    if isinstance(snap, bytes) and snap:
        return snap
    if isinstance(snap, str):
        try:
            return cid_from_string(snap)
        except InvalidInput:
            raise InvalidSnapshot(f"{snap[:80]!r} is not a snapshot CID") from None
    raise InvalidSnapshot(f"expected a Snapshot or its CID, got {type(snap).__name__}")


def _json(value: Any) -> tuple[bytes, str]:
    """``value`` as JSON and "", or b"" and why JSON cannot carry it."""
    try:
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError, RecursionError) as exc:
        return b"", f"cannot be sent as JSON: {str(exc)[:120]}"
    return text.encode("utf-8"), ""


class RemoteLifecycle:
    """The life-cycle methods of :class:`~threadkit.api.client.RemoteDatabase`
    (``migrate``, ``snapshot``, ``snapshots``, ``verify_snapshot``, ``compact``), as the
    embedded database's; ``purge`` is on the remote collection."""

    client: Client
    _raw: bytes

    def _lifecycle_call(self, method: str, request: Any, identity: Any = None) -> Any:
        return self.client.call(method, request, identity, api=self.client.lifecycle_api)

    def migrate(
        self,
        collection: str,
        transform: Any,
        schema: dict[str, Any] | None = None,
        indexes: Iterable[Index | str | dict[str, Any]] | None = None,
        identity: Identity | PublicKey | str | None = None,
    ) -> None:
        """Migrate a collection's documents and config in one event, through the daemon.

        The daemon commits the migration as an event it attests for ``identity``; every
        peer of the database applies it at its place in the order (see
        ``Database.migrate`` and docs/lifecycle.md).

        Parameters
        ----------
        collection : str
            The collection to migrate.
        transform : list of dict or str
            Declarative steps (rename, retype, default, drop) or a JavaScript body of
            ``_migrate(doc)``.
        schema : dict, optional
            The new JSON Schema (default: the current one).
        indexes : iterable of Index, str or dict, optional
            The new indexes (default: the current ones, moved by the transform's renames).
        identity : Identity, PublicKey or str, optional
            Who the call acts as (default the client's token).

        Raises
        ------
        InvalidMigration
            A malformed transform (found here, before sending), or existing documents
            that would fail the new schema or a unique index (found by the daemon before
            it writes anything).
        CollectionNotFound, InvalidSchema, InvalidIndex
            As for ``update_collection``.
        PermissionDenied
            The caller or the daemon may not change collections (a members' database).

        Examples
        --------
        >>> db.migrate("Items", [{"rename": "name", "to": "title"}])  # doctest: +SKIP
        """
        if not isinstance(collection, str) or not collection:
            raise InvalidInput(f"collection must be a name, got {collection!r:.80}")
        node = parse_transform(transform, compile_js=False).to_node()
        if schema is not None and not isinstance(schema, dict):
            raise InvalidSchema(f"schema must be a dict, got {type(schema).__name__}")
        wire_indexes = b""
        if indexes is not None:
            if isinstance(indexes, str | dict):
                raise InvalidIndex("indexes must be a list of indexes")
            listed = [Index.coerce(i) for i in indexes]
            wire_indexes, _ = _json([{"path": i.path, "unique": i.unique} for i in listed])
        wire_transform, why = _json(node)
        if why:
            raise InvalidMigration(f"the transform {why}")
        wire_schema, why = _json(schema) if schema is not None else (b"", "")
        if why:
            raise InvalidSchema(f"the schema {why}")
        request = lpb.MigrateRequest(
            dbID=self._raw,
            collectionName=collection,
            transformJSON=wire_transform,
            schemaJSON=wire_schema,
            indexesJSON=wire_indexes,
        )
        self._lifecycle_call("Migrate", request, identity)

    def snapshot(self) -> Snapshot:
        """Have the daemon write a snapshot of the database at its heads, signed by itself.

        The snapshot is the daemon's record: joiners that name the daemon's identity in
        ``trust=`` can start from it (see ``Database.snapshot``). The daemon takes it for
        a caller who may write documents.

        Returns
        -------
        Snapshot
            Its CID (``str(snap)``), record, author (the daemon), heads and status.

        Raises
        ------
        InvalidInput
            The database has members (not built yet), or holds records not applied.
        PermissionDenied
            The caller may not write documents in the database.
        """
        reply = self._lifecycle_call("Snapshot", lpb.SnapshotRequest(dbID=self._raw))
        return snapshot_from_info(reply)

    def snapshots(self) -> list[Snapshot]:
        """The snapshots of the database the daemon knows, oldest first.

        Returns
        -------
        list of Snapshot
            As ``Database.snapshots`` on the daemon; ``held`` says whether the daemon
            holds the blocks (and can start joiners from it).
        """
        reply = self._lifecycle_call("ListSnapshots", lpb.ListSnapshotsRequest(dbID=self._raw))
        return [snapshot_from_info(info) for info in reply.snapshots]

    def verify_snapshot(self, snap: Snapshot | bytes | str) -> bool:
        """Have the daemon replay the records up to a snapshot's heads and compare.

        Parameters
        ----------
        snap : Snapshot, bytes or str
            The snapshot, its CID or its CID text.

        Returns
        -------
        bool
            True when the snapshot's state is the records'; the daemon keeps the verdict
            (a bad snapshot is never served nor compacted at).

        Raises
        ------
        InvalidSnapshot
            Not a snapshot CID (nothing is sent), a snapshot the daemon does not know, or
            one whose blocks or records it does not hold.
        """
        request = lpb.VerifySnapshotRequest(dbID=self._raw, cid=_cid(snap))
        return bool(self._lifecycle_call("VerifySnapshot", request).good)

    def compact(
        self, before: Snapshot | bytes | str, *, force: bool = False, keep_blocks: bool = True
    ) -> Compacted:
        """Have the daemon drop its records and history from before a snapshot.

        Local to the daemon: nothing replicates, and afterwards the daemon serves joiners
        without ``trust=`` nothing before the snapshot (docs/lifecycle.md). Only the
        database's owner or an admin, or the daemon's own identity (no token), may.

        Parameters
        ----------
        before : Snapshot, bytes or str
            A snapshot the daemon holds the blocks of, not found bad.
        force : bool
            Compact although some writer has not written since the snapshot.
        keep_blocks : bool
            Keep the snapshot's blocks on the daemon (default), so joiners start from it.

        Returns
        -------
        Compacted
            Records, their bytes and events dropped on the daemon.

        Raises
        ------
        InvalidSnapshot
            Not a snapshot CID, or one unknown to the daemon, bad, or not held there.
        InvalidInput
            A writer has not written since the snapshot and ``force`` is False.
        PermissionDenied
            The caller is not the owner, an admin or the daemon.
        """
        if not isinstance(force, bool) or not isinstance(keep_blocks, bool):
            raise InvalidInput("force and keep_blocks must be True or False")
        request = lpb.CompactRequest(
            dbID=self._raw, cid=_cid(before), force=force, dropBlocks=not keep_blocks
        )
        reply = self._lifecycle_call("Compact", request)
        return Compacted(reply.snapshot, reply.records, reply.recordBytes, reply.events)
