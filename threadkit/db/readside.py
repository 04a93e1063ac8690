"""The read side of one database's history as one object: ``db.timeline``.

Each method is a function of :mod:`threadkit.db.timeline`, :mod:`threadkit.db.points` or
:mod:`threadkit.db.replay` for this database; the views (``db.history()``, ``coll.at()``,
the DAG) read through it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from threadkit.db.eventscan import KeyFinder, RawEvents, scan_events
from threadkit.db.points import Point, Selection, resolve
from threadkit.db.replay import documents_at
from threadkit.db.timeline import (
    EventEntry,
    EventRow,
    LogState,
    RecordFinder,
    RecordNode,
    collection_event_rows,
    event_rows,
    heads,
    log_states,
    records,
    stored_events,
)

if TYPE_CHECKING:
    from threadkit.db.database import Database

__all__ = ["Timeline"]


class Timeline:
    """The history of one database, read side: ``db.timeline``.

    Each method is the module function of the same name for this database; the
    views (``db.history()``, ``coll.at()``, the DAG) read through it.

    Parameters
    ----------
    db : Database
        The database.
    """

    def __init__(self, db: Database) -> None:
        self._db = db

    def events(
        self,
        collection: str | None = None,
        *,
        collection_events: bool = True,
        finder: RecordFinder | None = None,
    ) -> list[EventRow]:
        """Every event (of one collection), in total order: :func:`event_rows`."""
        return event_rows(self._db, collection, collection_events=collection_events, finder=finder)

    def raw_events(self, collection: str | None = None) -> RawEvents:
        """The stored instance events, raw, in key order: :func:`.eventscan.scan_events`."""
        return scan_events(self._db, collection)

    def collection_events(
        self, collection: str | None = None, finder: RecordFinder | None = None
    ) -> list[EventRow]:
        """Collection events (of one collection), by name: :func:`collection_event_rows`."""
        return collection_event_rows(self._db, collection, finder)

    def stored_events(
        self, wanted: Iterable[tuple[str, str, bytes | None]]
    ) -> list[EventEntry | None]:
        """Instance events by (collection, instance, order key): :func:`stored_events`."""
        return stored_events(self._db, wanted)

    def key_finder(self) -> RecordFinder:
        """A record finder whose search decodes only stamps: :class:`.eventscan.KeyFinder`."""
        return KeyFinder(self._db)

    def finder(self) -> RecordFinder:
        """A record finder for this database (it caches decoded records)."""
        return RecordFinder(self._db)

    def records(self) -> Iterator[RecordNode]:
        """Every record of every log: :func:`records`."""
        return records(self._db)

    def heads(self) -> dict[str, int]:
        """Each log's counter: :func:`heads`."""
        return heads(self._db)

    def logs(self) -> list[LogState]:
        """Each log's state: :func:`log_states`."""
        return log_states(self._db)

    def log_ids(self) -> list[str]:
        """The ids of the database's logs."""
        return [info.id for info in self._db._repo.list_logs(self._db.id)]

    def log_keys(self) -> dict[str, str]:
        """Each log's public key string, by log id."""
        return {info.id: str(info.public) for info in self._db._repo.list_logs(self._db.id)}

    def resolve(self, when: Point, finder: RecordFinder | None = None) -> Selection:
        """The events a point includes: :func:`threadkit.db.points.resolve`."""
        return resolve(self._db, when, finder)

    def documents_at(
        self, collection: str, when: Point, reader: str | None
    ) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        """A collection's documents at a point, and its schema then (None: it did not exist).

        See :func:`threadkit.db.replay.documents_at`.
        """
        return documents_at(self._db, collection, when, reader)
