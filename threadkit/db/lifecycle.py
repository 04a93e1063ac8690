"""The life-cycle methods of a database: snapshots and compaction (docs/lifecycle.md).

A mixin of :class:`threadkit.db.database.Database`, so that ``database.py`` stays the
commit path; each method delegates to the module that does the job.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from threadkit.db import bootstrap, compaction, snapshots
from threadkit.db.compaction import Compacted
from threadkit.db.snapshots import Snapshot

if TYPE_CHECKING:
    from threadkit.db.database import Database

__all__ = ["Lifecycle"]


def _db(mixin: Lifecycle) -> Database:
    return cast("Database", mixin)


class Lifecycle:
    """Snapshots and compaction of a database (mixed into ``Database``)."""

    __slots__ = ()

    def snapshot(self) -> Snapshot:
        """Write a signed snapshot of the state at the current heads, as a record.

        The documents, collection configs and every table the records fold into, at
        this peer's heads, go into content-addressed blocks; a record in this peer's log,
        signed and proved as every record, carries the CID of their manifest. Peers that
        trust this peer's identity can join from it (docs/lifecycle.md). A database with
        members also carries its membership records, and seals the state under its
        newest key epoch (docs/access.md).

        Returns
        -------
        Snapshot
            Its CID (``str(snap)``), record, heads and status.

        Raises
        ------
        InvalidInput
            The database holds records not applied, or (with members) a record of a
            key epoch this peer cannot read.
        PermissionDenied
            The database has members and this peer's identity may not write.

        Examples
        --------
        >>> snap = db.snapshot()  # doctest: +SKIP
        >>> snap.heads  # doctest: +SKIP
        {'12D3KooW…': 42}
        """
        return snapshots.take(_db(self))

    def snapshots(self) -> list[Snapshot]:
        """The snapshots of this database's thread this peer knows, oldest first."""
        return snapshots.list_snapshots(_db(self))

    def verify_snapshot(self, snap: Snapshot | bytes | str) -> bool:
        """Replay the records up to a snapshot's heads; True when its state is theirs.

        The verdict is kept (``snap.status`` becomes ``verified`` or ``bad``); a bad
        snapshot is never served to joiners nor compacted at.

        Raises
        ------
        InvalidSnapshot
            Unknown snapshot, its blocks not held, or records up to its heads missing.
        """
        return bootstrap.verify(_db(self), snap)

    def compact(
        self, before: Snapshot | bytes | str, *, force: bool = False, keep_blocks: bool = True
    ) -> Compacted:
        """Drop this peer's records and history from before a snapshot (opt-in).

        Parameters
        ----------
        before : Snapshot or its CID
            A snapshot this peer holds the blocks of, not found bad.
        force : bool
            Compact although some writer has not written since the snapshot (a record
            of theirs sorting before it would then be folded on the compacted state).
        keep_blocks : bool
            Keep the snapshot's blocks (default), so that joiners can start from it here;
            False drops them too (they hold the full state and history at the snapshot).

        Returns
        -------
        Compacted
            Records, their bytes and events dropped. The LMDB file keeps its size (its
            free pages are reused) until ``peer.reclaim()`` swaps in a compacted copy
            (``threadkit compact`` does both).

        Raises
        ------
        InvalidSnapshot
            The snapshot is unknown, bad, or its blocks are not held.
        InvalidInput
            A writer has not written since the snapshot, or events that arrived after it
            sort before one of its migrations, and ``force`` is False.
        """
        return compaction.compact(_db(self), before, force=force, keep_blocks=keep_blocks)
