"""Compaction: dropping a database's records and history from before a snapshot.

``db.compact(before=snap)`` is opt-in, per database, on this peer only:

- every record of every log up to the snapshot's heads is dropped from the store (the
  logs then start after those heads, :mod:`threadkit.store.trim`);
- each instance's events up to the snapshot's **frontier** (its newest event) are
  folded into one: the instance's last event before the frontier becomes a ``create`` of
  the document as it stood there, marked *folded* at the frontier (or is kept as it is
  when it deleted the instance),
  and the others go, with their history-order entries. Instances written after the
  frontier keep every later event; lost writes are kept.

What stays is what the engine needs to apply later records exactly as before: the
documents, indexes, unique claims, each instance's last event key and its folded base.
So later writes, local or received, replicate as usual, and a peer that joins later
bootstraps from the snapshot (whose blocks this peer keeps).

What goes is history: ``coll.at()``/``diff()`` at a point before the frontier, or at a
head set short of the snapshot's, raise :class:`~threadkit.errors.HistoryCompacted`
naming the snapshot; ``db.history()`` lists the events after it.

**Migrated collections.** The folded create holds the document as the snapshot has it,
every migration up to the frontier already applied: the fold
(:func:`threadkit.db.reducer.fold`) neither judges it again nor applies those migrations
to it, while an event after the frontier whose writer had not seen one of them is still
rewritten by it on arrival, as on a peer that kept everything. The mark is local: it is
never carried in a record.

**When it is safe.** Events from a writer that had not seen the snapshot can still sort
before its frontier; folding one exactly needs the events compaction dropped. So
:func:`compact` refuses unless every log that has written holds a record stamped after
the frontier — each writer's clock has passed it, and its later records sort after it —
or ``force=True``. A record that still arrives with an event before the frontier is
applied against the folded base (logged as a warning): its instance may then differ
from a peer that kept the history.

**Databases with members** compact on a bootstrapped database's footing
(:mod:`.membercompact`): a ``base`` mark names the snapshot, whose rows a rebuild after
a late revoke restores, and whose ``members`` blocks keep the membership records dropped.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import cbor2

from threadkit.core.cid import cid_to_string
from threadkit.core.symmetric import SymmetricKey
from threadkit.db import dockeys, membercompact, snapshots
from threadkit.db.docpath import get_path, indexable
from threadkit.db.doctables import delete_prefix
from threadkit.db.events import Action, Folded
from threadkit.db.indexkeys import decode_id, encode_id, encode_value
from threadkit.db.points import Selection
from threadkit.db.timeline import RecordFinder, key_stamp
from threadkit.errors import HistoryCompacted, InvalidInput, InvalidSnapshot
from threadkit.store import trim

if TYPE_CHECKING:
    from threadkit.db.database import Database

__all__ = ["Compacted", "check_point", "compact", "frontier"]


@dataclass(frozen=True)
class Compacted:
    """What a compaction dropped.

    Attributes
    ----------
    snapshot : str
        The snapshot's CID text.
    records : int
        Records dropped from the store.
    record_bytes : int
        Bytes those records took in the store.
    events : int
        Instance events folded away.
    """

    snapshot: str
    records: int
    record_bytes: int
    events: int


def _writers_behind(db: Database, front: bytes, heads: dict[str, int]) -> list[str]:
    """Logs that have written but hold no record after the snapshot stamped past ``front``.

    This peer's own log is past it: its clock has merged every event it applied.
    """
    finder = RecordFinder(db)
    behind = []
    for info in db._repo.list_logs(db.id):
        if not info.counter or info.id == db.log_id:
            continue
        past = False
        for counter in range(info.counter, heads.get(info.id, 0), -1):
            found = finder.record_at(info.id, counter)
            if found is not None and found.keys:
                past = max(found.keys) > front
                break
        if not past:
            behind.append(info.id)
    return behind


def compact(
    db: Database, before: Any, *, force: bool = False, keep_blocks: bool = True
) -> Compacted:
    """Drop records and history before a snapshot (see :meth:`Database.compact`)."""
    snap = snapshots.get_snapshot(db, before)
    if snap.status == "bad":
        raise InvalidSnapshot(f"snapshot {snap} was found bad: it cannot anchor a compaction")
    blocks = snapshots.get_blocks(db, snap.cid)
    if blocks is None:
        raise InvalidSnapshot(
            f"this peer does not hold the blocks of snapshot {snap}: compacting before it "
            "would leave no way to bootstrap a joiner"
        )
    manifest = snapshots.chunks_of(blocks[0][1])
    front = bytes(manifest["frontier"])
    heads = snapshots.heads_of(manifest)
    with db.read_txn() as txn:
        with_members = db.gate.has_members(txn)
    # a late revoke's rebuild needs the records: it restores the snapshot's rows instead
    key = membercompact.prepare(db, snap, blocks, heads, keep_blocks) if with_members else None
    docs, through = _snapshot_rows(blocks[1 : 1 + len(manifest["chunks"])], front, key)
    if not force:
        late = _events_between(db, front, through)
        if late:
            raise InvalidInput(
                f"cannot compact {db.name!r} before snapshot {snap}: {late} event(s) that "
                "arrived after it sort before one of its migrations; pass force=True to fold "
                "them on the compacted state (docs/lifecycle.md)"
            )
        behind = _writers_behind(db, through, heads)
        if behind:
            raise InvalidInput(
                f"cannot compact {db.name!r} before snapshot {snap} yet: log(s) "
                f"{', '.join(behind)} have not written since it, so a record of theirs "
                "could still sort before it; wait, or pass force=True (docs/lifecycle.md)"
            )
    records = size = events = 0
    with db._write_lock, db._repo.transaction(write=True) as txn:
        for log_id, counter in heads.items():
            dropped, took = trim.drop_through(txn, db._repo.tables, db.id, log_id, counter)
            records += dropped
            size += took
        events = _fold_events(txn, db, front, through, docs)
        if not keep_blocks:  # this peer can then no longer start a joiner from it
            for cid, _ in blocks:
                txn.delete(db.prefix + cid, db=db._tables.snapblocks)
        snapshots.put_mark(
            txn,
            db._tables,
            db.prefix,
            "compacted",
            {"root": snap.cid, "heads": heads, "frontier": through},
        )
        if with_members:
            membercompact.base_mark(txn, db, snap, heads, key)
    return Compacted(str(snap), records, size, events)


def _fold_events(
    txn: Any, db: Database, front: bytes, through: bytes, docs: dict[bytes, bytes]
) -> int:
    """Fold each instance's events up to ``front`` into its last one; return events dropped.

    ``docs`` are the snapshot's documents (keys without the prefix): each instance live
    at the frontier becomes one create of its document there, folded ``through`` the
    snapshot's last config event (or the frontier).
    """
    tables = db._tables
    prefix = db.prefix
    cursor = txn.cursor(tables.events)
    dropped = 0
    if not cursor.set_range(prefix):
        return 0
    runs: dict[bytes, list[bytes]] = {}
    for raw in cursor.iternext(keys=True, values=False):
        if not raw.startswith(prefix):
            break
        key = bytes(raw)
        order = key[-len(front) :] if front else b""
        if not front or order > front:
            continue
        runs.setdefault(key[: -len(front)], []).append(order)
    for instance, orders in runs.items():
        last = orders[-1]
        code, _, _, author, record, *_ = cbor2.loads(txn.get(instance + last, db=tables.events))
        doc = docs.get(instance[len(prefix) :])
        if doc is not None:  # live at the frontier: its document there, as one create
            node = [Action.CREATE.code, cbor2.loads(doc), None, author, record]
            folded = _folded(txn, db, instance, node[1], through)
            if folded is not None:
                node += [None, None, folded.to_node()]
            txn.put(instance + last, cbor2.dumps(node), db=tables.events)
        elif Action.from_code(code) is not Action.DELETE or len(orders) == 1:
            continue  # absent at the frontier but not by a delete: kept whole
        for order in orders[:-1]:
            txn.delete(instance + order, db=tables.events)
            txn.delete(prefix + order, db=tables.order)
            dropped += 1
    if dropped:
        _rewrite(txn, tables.events, prefix)
    return dropped


def _folded(
    txn: Any, db: Database, instance: bytes, doc: dict[str, Any], through: bytes
) -> Folded | None:
    """The mark of a compacted create, where the fold needs one: in a collection migrated
    up to ``through`` (those migrations must not run again) or with unique indexes (the
    claims its values keep); None elsewhere, which saves its bytes."""
    start = len(db.prefix)
    end = instance.index(b"\x00", start)
    history = db.engine.colls.get(instance[start:end].decode())
    config = history.current if history is not None else None
    migrated = history is not None and any(k <= through for k in history.transforms)
    if config is None or (not migrated and not config.unique_paths):
        return None
    instance_id, _ = decode_id(instance, end + 1)
    claims = {}
    for path in config.unique_paths:
        value = get_path(doc, path)
        if indexable(value):
            entry = dockeys.index_prefix(instance[: end + 1], path) + encode_value(value)
            claim = txn.get(entry + encode_id(instance_id), db=db._tables.index)
            if claim is not None:
                claims[path] = bytes(claim)
    return Folded(through, claims)


def _rewrite(txn: Any, table: Any, prefix: bytes) -> None:
    """Write a database's rows of ``table`` again, in order, so their pages are full.

    Deleting most of a table's rows leaves its B-tree pages nearly empty (LMDB merges only
    pages under a quarter full), and a compacted copy keeps them; rows written again in
    key order fill fresh pages (appended when no other database's rows follow).
    """
    cursor = txn.cursor(table)
    rows = []
    if cursor.set_range(prefix):
        for key, value in cursor:
            if not key.startswith(prefix):
                break
            rows.append((bytes(key), bytes(value)))
    delete_prefix(txn, table, prefix)
    at_end = not cursor.set_range(prefix)
    cursor.putmulti(rows, append=at_end)


def _snapshot_rows(
    chunks: list[tuple[bytes, bytes]], front: bytes, key: SymmetricKey | None
) -> tuple[dict[bytes, bytes], bytes]:
    """The ``docs`` rows of a snapshot's chunks (checked blocks this peer holds, opened
    with ``key`` in a database with members), and the
    key its documents are folded through: the frontier (its newest instance event), or a
    config event after it (a migration the documents went through) when later."""
    docs: dict[bytes, bytes] = {}
    through = front
    for _, block in chunks:
        name, rows = snapshots.read_chunk(block, key)
        if name == "docs":
            docs.update(zip(rows[::2], rows[1::2], strict=True))
        elif name == "colls":
            for value in rows[1::2]:
                through = max([through, *(bytes(entry[0]) for entry in cbor2.loads(value))])
    return docs, through


def _events_between(db: Database, front: bytes, through: bytes) -> int:
    """Instance events this peer holds sorting after ``front`` and up to ``through``: they
    arrived after the snapshot (its newest instance event is ``front``)."""
    if through <= front:
        return 0
    found = 0
    with db.read_txn() as txn:
        cursor = txn.cursor(db._tables.order)
        if cursor.set_range(db.prefix + front + b"\x00"):
            for key in cursor.iternext(keys=True, values=False):
                if not bytes(key).startswith(db.prefix) or bytes(key) > db.prefix + through:
                    break
                found += 1
    return found


def frontier(db: Database) -> tuple[bytes, dict[str, int], bytes] | None:
    """``(frontier, heads, snapshot CID)`` of a compacted database; None when not compacted."""
    mark = snapshots.mark(db, "compacted")
    if mark is None:
        return None
    return bytes(mark["frontier"]), dict(mark["heads"]), bytes(mark["root"])


def check_point(db: Database, when: Any, selection: Selection | None) -> None:
    """Raise HistoryCompacted when a point lies before the snapshot ``db`` compacted at.

    ``selection`` is the point resolved (None: before resolving, head sets are checked).
    """
    found = frontier(db)
    if found is None:
        return
    front, heads, root = found
    if selection is None:
        selection = Selection(label=f"heads {when!r:.200}")
    before = selection.bound is not None and selection.bound < front
    if isinstance(when, Mapping):
        before = any(
            isinstance(n, int) and not isinstance(n, bool) and n < heads.get(log_id, 0)
            for log_id, n in when.items()
        )
    if before:
        raise HistoryCompacted(
            f"{selection.label or 'that point'} is before snapshot {cid_to_string(root)} "
            f"(its newest event is stamped {key_stamp(front)}): database {db.name!r} "
            "dropped the history before it (db.compact)"
        )
