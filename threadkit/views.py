"""``tk.Collection`` and ``tk.Database``: the document store's classes with their views.

The document store (:mod:`threadkit.db`) knows nothing of DataFrames or
pictures. Here, above it and the view layers, the classes people use are
composed from the store's :class:`threadkit.db.collection.Collection` and
:class:`threadkit.db.database.Database` and the views written against the
source protocols (:mod:`threadkit.frames.views`, :class:`threadkit.graph.GraphViews`),
as pandas' accessors keep plotting out of its core. A peer opens its databases
as these classes (``threadkit.peer``).

Examples
--------
>>> import threadkit as tk
>>> with tk.Peer(memory=True) as peer:
...     db = peer.new_db("notes")
...     notes = db.new_collection("Notes")
...     _ = notes.create({"_id": "n1", "text": "hello"})
...     isinstance(db, Database), isinstance(notes, Collection), notes.df["text"].tolist()
(True, True, ['hello'])
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from threadkit.db import collection as store_collection
from threadkit.db import database as store_database
from threadkit.frames.views import CollectionViews, DatabaseViews
from threadkit.graph import GraphViews

if TYPE_CHECKING:
    from threadkit.db.config import Index
    from threadkit.db.gate import WriteAs

__all__ = ["Collection", "Database"]


class Collection(CollectionViews, store_collection.Collection):
    """A collection of JSON documents, with its DataFrame, query and time-travel views.

    Get one with ``db.new_collection(...)``, ``db[name]`` or ``db.get_collection``.
    The writes and reads are the store's (:class:`threadkit.db.collection.Collection`);
    the views (``df``, ``to_pandas``, ``to_arrow``, ``to_parquet``, ``create_many``,
    ``query``, ``lazy``, ``c``, ``[]``, ``at``, ``diff``) are
    :class:`threadkit.frames.views.CollectionViews`.

    Examples
    --------
    >>> ids = people.create({"name": "Alice", "age": 30})  # doctest: +SKIP
    >>> people.query("age > 20")  # doctest: +SKIP
    """


class Database(DatabaseViews, GraphViews, store_database.Database):
    """A database (a thread), with its history and record-DAG views.

    Get one from ``peer.new_db`` / ``peer.get_db``. The store's part is
    :class:`threadkit.db.database.Database`; the views (``from_pandas``,
    ``history``, ``conflicts``, ``heads``) are :class:`threadkit.frames.views.DatabaseViews`
    and (``dag``, ``plot_dag``, ``logs``) :class:`threadkit.graph.GraphViews`.
    """

    collection_class = Collection

    def get_collection(self, name: str) -> Collection:
        """The collection called ``name``; CollectionNotFound when absent."""
        return _composed(super().get_collection(name))

    def __getitem__(self, name: str) -> Collection:
        return self.get_collection(name)

    def new_collection(
        self,
        name: str,
        schema: dict[str, Any] | None = None,
        indexes: Iterable[Index | str | dict[str, Any]] = (),
        write_validator: str | None = None,
        read_filter: str | None = None,
        identity: WriteAs = None,
    ) -> Collection:
        """Create a collection (an event in the thread, so it replicates).

        See :meth:`threadkit.db.database.Database.new_collection`.

        Examples
        --------
        >>> people = db.new_collection(  # doctest: +SKIP
        ...     "Persons", indexes=[tk.Index("name", unique=True)]
        ... )
        """
        return _composed(
            super().new_collection(name, schema, indexes, write_validator, read_filter, identity)
        )

    def update_collection(
        self,
        name: str,
        schema: dict[str, Any] | None = None,
        indexes: Iterable[Index | str | dict[str, Any]] = (),
        write_validator: str | None = None,
        read_filter: str | None = None,
        identity: WriteAs = None,
    ) -> Collection:
        """Replace a collection's config.

        See :meth:`threadkit.db.database.Database.update_collection`.
        """
        return _composed(
            super().update_collection(name, schema, indexes, write_validator, read_filter, identity)
        )


def _composed(coll: store_collection.Collection) -> Collection:
    """A collection of a composed database, which makes them as :class:`Collection`."""
    assert isinstance(coll, Collection), f"{coll!r} was made without its views"
    return coll
