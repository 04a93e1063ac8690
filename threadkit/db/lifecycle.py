"""The life-cycle methods of a database: snapshots and compaction (docs/lifecycle.md).

A mixin of :class:`threadkit.db.database.Database`, so that ``database.py`` stays the
commit path; each method delegates to the module that does the job.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, cast

from threadkit.db import backfill, bootstrap, compaction, snapshots
from threadkit.db.compaction import Compacted
from threadkit.db.snapshots import Snapshot
from threadkit.errors import InvalidSnapshot

if TYPE_CHECKING:
    from threadkit.core.records import Record
    from threadkit.db.database import Database

HistorySource = Callable[["Database", Snapshot], "dict[str, list[Record]] | None"]
"""Fetches from peers the records before a snapshot, per log, chains checked; None when
no peer holds them (set by the network layer, ``threadkit/net/backfill.py``)."""

__all__ = ["Lifecycle"]


def _db(mixin: Lifecycle) -> Database:
    return cast("Database", mixin)


class Lifecycle:
    """Snapshots and compaction of a database (mixed into ``Database``)."""

    __slots__ = ()

    history_source: HistorySource | None = None
    """Where a bootstrapped database fetches the records before its snapshot (None: no
    network; :func:`threadkit.db.backfill.check_bootstrap`)."""

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

        A database that bootstrapped from ``snap`` fetches the records before it from its
        peers (``history_source``); when the snapshot is wrong, the state is rebuilt from
        them (:mod:`.backfill`).

        Raises
        ------
        InvalidSnapshot
            Unknown snapshot, its blocks not held, or records up to its heads missing
            (here and, for the snapshot this database bootstrapped from, at every peer:
            the status is then ``unverifiable``).
        """
        db = _db(self)
        base = backfill.base_snapshot(db)
        target = snapshots.get_snapshot(db, snap)
        if base is None or base.cid != target.cid:
            return bootstrap.verify(db, snap)
        gathered = None if self.history_source is None else self.history_source(db, target)
        if gathered is None:
            why = "no peer serves the records before it (all compacted or bootstrapped)"
            backfill.mark_unverifiable(db, target, why)
            raise InvalidSnapshot(f"snapshot {target} cannot be checked here: {why}")
        return backfill.check_bootstrap(db, target, gathered)

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
            The snapshot is unknown, bad, or its blocks are not held; with members, its
            chunks are sealed under a key epoch not held here, or its members blocks lack
            a membership record this peer holds before its heads.
        InvalidInput
            A writer has not written since the snapshot, or events that arrived after it
            sort before one of its migrations, and ``force`` is False; with members,
            ``keep_blocks`` is False or this peer holds a record it cannot read.

        A database with members then stands where a joiner from the snapshot stands
        (:mod:`threadkit.db.membercompact`, docs/lifecycle.md).
        """
        return compaction.compact(_db(self), before, force=force, keep_blocks=keep_blocks)
