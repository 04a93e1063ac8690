"""A collection as it was at a point in its history: its events replayed.

The events a point includes (:mod:`.points`) are **replayed** through the
database engine itself: applied, in the total order, to a fresh engine in a
throwaway temporary repo. Every rule — schema, write validator, unique-index
claims and their re-folds, collection epochs — is the live engine's, and
convergence (any delivery order gives the same state) makes the replay equal to
what a peer holding those events has. Only the collection's own events are
replayed, so the cost is one fast-path apply per event of that collection.

Examples
--------
>>> import threadkit as tk
>>> with tk.Peer(memory=True) as peer:
...     db = peer.new_db("notes")
...     notes = db.new_collection("Notes")
...     _ = notes.create({"_id": "a", "n": 1})
...     then = db.timeline.heads()
...     notes.save({"_id": "a", "n": 2})
...     docs, schema = documents_at(db, "Notes", then, None)
>>> [(d["_id"], d["n"]) for d in docs]
[('a', 1)]
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from threadkit.db.compaction import check_point, frontier
from threadkit.db.points import Point, resolve
from threadkit.db.timeline import EventRow, RecordFinder, event_rows

if TYPE_CHECKING:
    from threadkit.db.database import Database

__all__ = ["documents_at", "replay"]


def documents_at(
    db: Database, collection: str, when: Point, reader: str | None
) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """A collection's documents at a point, in ``_id`` order, and its schema then.

    Parameters
    ----------
    db : Database
        The database.
    collection : str
        The collection (it may have been deleted since).
    when : Point
        A time, a record CID or ``{log id: head}`` (:mod:`.points`).
    reader : str, optional
        The reader the read filter in effect at that point is applied for.

    Returns
    -------
    (list[dict], dict | None)
        The documents (empty when the collection did not exist at that point) and
        the collection's JSON Schema then (None when it did not exist).
    """
    finder = RecordFinder(db)
    check_point(db, when, None)  # a head set short of the snapshot's names dropped records
    selection = resolve(db, when, finder)
    check_point(db, when, selection)
    compacted = frontier(db)  # a point after it includes every folded event before it
    front = compacted[0] if compacted else b""
    rows = [
        r
        for r in event_rows(db, collection, finder=finder)
        if selection.includes(r) or r.key <= front
    ]
    return replay(collection, sorted(rows, key=_applied_at), reader)


def _applied_at(row: EventRow) -> tuple[bytes, int]:
    """Where a fresh engine applies ``row``: a compacted create (``folded``) after the
    migrations its document already went through, which would otherwise rewrite it a
    second time as they run over the documents then present."""
    if row.folded is None:
        return row.key, 0
    return max(row.key, row.folded.through), 1


def replay(
    name: str, rows: list[EventRow], reader: str | None
) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """Apply ``rows`` (one collection's events, in order) to a fresh engine.

    Returns its documents (the read filter then in effect applied for ``reader``)
    and the collection's schema then (None when it does not exist after the rows).
    """
    from threadkit.db.doctables import open_db_tables
    from threadkit.db.engine import Engine
    from threadkit.store.repo import Repo

    if not rows:
        return [], None
    with Repo.temporary(durable=False, map_size=_map_size(rows)) as repo:
        engine = Engine(open_db_tables(repo), b"\x00\x00\x00\x01")
        with engine.write(repo) as txn:
            for group in _by_record(rows):
                first = group[0]
                engine.apply_received(
                    txn,
                    [row.to_event() for row in group],
                    first.key[12:],
                    first.author or "",
                    first.record or b"",
                )
        history = engine.colls.get(name)
        config = history.current if history else None
        with repo.transaction() as txn:
            docs = list(engine.scan_docs(txn, name)) if config is not None else []
    if config is None:
        return [], None
    if config.filter is None:
        return docs, config.schema
    read_filter = config.filter
    visible = read_filter.filter_many(reader, docs) if docs else []
    return [doc for doc in visible if doc is not None], config.schema


def _map_size(rows: list[EventRow]) -> int:
    # room for the events, documents and indexes of the replay; address space only
    return max(64 * 1024**2, 16 * 1024 * len(rows)) * 8


def _by_record(rows: list[EventRow]) -> Iterator[list[EventRow]]:
    """Consecutive rows of one record (and log), as the record applied them."""
    group: list[EventRow] = []
    for row in rows:
        if group and (row.record != group[0].record or row.key[12:] != group[0].key[12:]):
            yield group
            group = []
        group.append(row)
    if group:
        yield group
