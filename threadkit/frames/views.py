"""The notebook views of a collection and a database, written against the source protocols.

:class:`CollectionViews` and :class:`DatabaseViews` hold the methods people call
(``coll.df``, ``coll.query(...)``, ``coll.at(...)``, ``db.history()``…); each
is a thin call of a function of this package on ``self`` as a
:class:`~threadkit.frames.source.CollectionSource` or
:class:`~threadkit.frames.source.DatabaseSource`. The document store does not
import them: ``threadkit.views`` composes ``tk.Collection`` and ``tk.Database``
from the store's classes and these views (as pandas' accessors keep plotting out
of its core).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from threadkit.core.identity import PublicKey
    from threadkit.db.config import Index
    from threadkit.db.points import Point
    from threadkit.db.query import Query
    from threadkit.frames.columns import ColumnNamespace
    from threadkit.frames.lazy import LazyFrame
    from threadkit.frames.source import CollectionSource, DatabaseSource

__all__ = ["CollectionViews", "DatabaseViews"]


class CollectionViews:
    """DataFrame, query, time-travel and notebook views of a collection."""

    __slots__ = ()

    def _repr_html_(self: CollectionSource) -> str:
        """Name, count, indexes, schema fields and the first rows (for notebooks)."""
        import html

        from threadkit.frames.frame import to_pandas

        config = self.config
        fields = ", ".join(sorted(config.schema.get("properties", {}))) or "(schema-less)"
        indexes = ", ".join(f"{i.path}{' (unique)' if i.unique else ''}" for i in config.indexes)
        head = f"<b>Collection {html.escape(self.name)}</b> — {self.count()} documents"
        th = "<tr><th style='text-align:left'>"
        rows = [
            f"{th}indexes</th><td>{html.escape(indexes or '_id')}</td></tr>",
            f"{th}fields</th><td>{html.escape(fields)}</td></tr>",
        ]
        if config.write_validator:
            rows.append("<tr><th style='text-align:left'>write validator</th><td>yes</td></tr>")
        if config.read_filter:
            rows.append("<tr><th style='text-align:left'>read filter</th><td>yes</td></tr>")
        try:
            preview = str(to_pandas(self).head(5).to_html(border=0))
        except Exception:  # a preview must never break the repr
            preview = ""
        return f"<div>{head}<table>{''.join(rows)}</table>{preview}</div>"

    @property
    def df(self: CollectionSource) -> pd.DataFrame:
        """The whole collection as a pandas DataFrame (``_id`` is the index; cached)."""
        from threadkit.frames.frame import to_pandas

        frame: pd.DataFrame = to_pandas(self)
        return frame

    def to_pandas(
        self: CollectionSource, query: Query | None = None, identity: PublicKey | str | None = None
    ) -> pd.DataFrame:
        """Documents (matching ``query``) as a DataFrame, dtypes from the schema."""
        from threadkit.frames.frame import to_pandas

        frame: pd.DataFrame = to_pandas(self, query, identity)
        return frame

    def to_arrow(
        self: CollectionSource, query: Query | None = None, identity: PublicKey | str | None = None
    ) -> Any:
        """Documents (matching ``query``) as a ``pyarrow.Table``."""
        from threadkit.frames.frame import to_arrow

        return to_arrow(self, query, identity)

    def __arrow_c_stream__(self: CollectionSource, requested_schema: object = None) -> object:
        """The collection as an Arrow C stream (the PyCapsule protocol), as ``to_arrow`` gives it.

        So DuckDB (``duckdb.sql("select city, avg(age) from people group by city")``),
        Polars (``polars.DataFrame(people)``) and
        pyarrow read the collection's table without copying it; the reader is the
        peer's own identity (use ``to_arrow(identity=...)`` for another).
        """
        from threadkit.frames.frame import arrow_stream, to_arrow

        return arrow_stream(to_arrow(self), requested_schema)

    def to_parquet(
        self: CollectionSource,
        path: str | os.PathLike[str],
        query: Query | None = None,
        identity: PublicKey | str | None = None,
    ) -> None:
        """Write documents (matching ``query``) to a Parquet file."""
        from threadkit.frames.frame import to_parquet

        to_parquet(self, path, query, identity)

    def create_many(
        self: CollectionSource, df: Any, chunk_size: int = 1000, progress: Any = None
    ) -> list[str]:
        """Insert a DataFrame's rows, one transaction per chunk; returns their ids."""
        from threadkit.frames.ingest import create_many

        return create_many(self, df, chunk_size=chunk_size, progress=progress)

    def query(
        self: CollectionSource,
        expr: Any,
        local_vars: dict[str, Any] | None = None,
        identity: PublicKey | str | None = None,
    ) -> pd.DataFrame:
        """Documents matching a pandas ``query`` string (or column expression) as a DataFrame.

        ``@name`` refers to the caller's variables, as in pandas. The expression is
        compiled to a ``tk.Query`` (so indexes are used); anything that cannot compile is
        an InvalidQuery naming the part.

        Examples
        --------
        >>> people.query("age > 30 and city in ['Oslo', 'Lima']")  # doctest: +SKIP
        """
        from threadkit.frames.lazy import caller_vars, query_frame

        frame: pd.DataFrame = query_frame(self, expr, caller_vars(expr, local_vars), identity)
        return frame

    def lazy(self: CollectionSource, expr: Any = None) -> LazyFrame:
        """A lazy result with ``sort_values``/``head`` that compile to the query's sort/limit."""
        from threadkit.frames.lazy import lazy_query

        return lazy_query(self, expr)

    @property
    def c(self: CollectionSource) -> ColumnNamespace:
        """Column expressions: ``coll[coll.c.age > 30]``, ``coll.c.city.isin([...])``."""
        from threadkit.db.schema import schema_paths
        from threadkit.frames.columns import ColumnNamespace

        return ColumnNamespace(schema_paths(self.config.schema))

    def __getitem__(self: CollectionSource, expr: Any) -> pd.DataFrame:
        """``coll[coll.c.age > 30]``: the matching documents as a DataFrame."""
        from threadkit.frames.lazy import query_frame

        frame: pd.DataFrame = query_frame(self, expr)
        return frame

    def at(
        self: CollectionSource, when: Point, identity: PublicKey | str | None = None
    ) -> pd.DataFrame:
        """The collection as it was at a point in its history, as a DataFrame.

        ``when`` is a time (``datetime``, ``pandas.Timestamp``, ISO string, or seconds
        since the epoch as an int or float, as ``time.time()`` gives), a record CID, or
        a set of heads ``{log id: counter or CID}`` (``db.heads()``); anything else is
        an ``InvalidInput`` saying what it takes (:mod:`threadkit.db.points`). The frame
        has the same columns and dtypes as ``coll.df`` (docs/types.md).
        """
        from threadkit.frames.timetravel import collection_at

        return collection_at(self, when, identity=identity)

    def diff(
        self: CollectionSource, a: Point, b: Point = None, identity: PublicKey | str | None = None
    ) -> pd.DataFrame:
        """Instances added, removed or changed between two points (``b`` None: now)."""
        from threadkit.frames.timetravel import diff

        return diff(self, a, b, identity=identity)


class DatabaseViews:
    """DataFrame, history and record-DAG views of a database."""

    __slots__ = ()

    def from_pandas(
        self: DatabaseSource,
        name: str,
        df: Any,
        indexes: Iterable[Index | str | dict[str, Any]] = (),
        chunk_size: int = 1000,
        progress: Any = None,
    ) -> Any:
        """A new collection holding a DataFrame's rows, its schema inferred from the dtypes."""
        from threadkit.frames.ingest import from_pandas

        return from_pandas(
            self, name, df, indexes=indexes, chunk_size=chunk_size, progress=progress
        )

    def history(
        self: DatabaseSource, collection: str | None = None, *, full: bool = False
    ) -> pd.DataFrame:
        """Every event in total order as a DataFrame.

        Shown for people by default: ``time`` (UTC), short ``log`` and ``record`` ids,
        ``collection``, ``instance``, ``action``, ``patch``, ``rejected``, ``reason``.
        ``full=True`` gives every column with the whole ids (``hlc``, ``author``…;
        :func:`threadkit.frames.history.history`).
        """
        from threadkit.frames.history import history, readable_history

        frame = history(self, collection)
        return frame if full else readable_history(frame)

    def conflicts(
        self: DatabaseSource, collection: str | None = None, *, full: bool = False
    ) -> pd.DataFrame:
        """The writes that lost a conflict, beside the ones that won, as a DataFrame.

        Shown for people by default: what lost (collection, instance, kind, path,
        reason) and each side's time, short log id and value. ``full=True`` gives
        every column with the whole ids (:func:`threadkit.frames.history.conflicts`).
        """
        from threadkit.frames.history import conflicts, readable_conflicts

        frame = conflicts(self, collection)
        return frame if full else readable_conflicts(frame)

    def heads(self: DatabaseSource) -> dict[str, int]:
        """Each log's counter (a point ``coll.at(...)`` accepts)."""
        return self.timeline.heads()
