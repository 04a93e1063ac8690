"""The notebook views of a collection and a database, written against the source protocols.

:class:`FrameViews` (``df``, ``to_pandas``, ``to_arrow``, ``__arrow_c_stream__``,
``to_parquet``, ``query``, ``lazy``, ``c``, ``[]``, ``create_many``), :class:`TimeViews`
(``at``, ``diff``) and
:class:`DatabaseViews` (``from_pandas``, ``history``, ``conflicts``, ``heads``) hold
the methods people call; each is a thin call of a function of this package through
the protocols of :mod:`threadkit.frames.source`. :class:`CollectionViews` gives them
the store's hooks. The document store does not import them: ``threadkit.views``
composes ``tk.Collection`` and ``tk.Database`` from the store's classes and these
views (as pandas' accessors keep plotting out of its core), and ``tk.Client``'s
``RemoteCollection`` and ``RemoteDatabase`` inherit the same views, given the
daemon's API, so the embedded and remote interfaces cannot drift apart.
"""

from __future__ import annotations

import html
import os
from collections.abc import Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from threadkit.db.query import Query
from threadkit.db.schema import schema_paths
from threadkit.errors import InvalidQuery
from threadkit.frames.columns import ColumnNamespace
from threadkit.frames.export import BATCH_SIZE, Batches, write_partitioned
from threadkit.frames.frame import arrow_stream, frame_to_arrow, frame_to_parquet, to_pandas
from threadkit.frames.history import conflicts, history, readable_conflicts, shown_history
from threadkit.frames.ingest import create_many, from_pandas
from threadkit.frames.lazy import LazyFrame, caller_vars, compile_for, query_frame
from threadkit.frames.timetravel import collection_at, diff

if TYPE_CHECKING:
    import pandas as pd

    from threadkit.core.identity import PublicKey
    from threadkit.db.config import Index
    from threadkit.db.points import Point
    from threadkit.frames.ingest import CollectionMaker
    from threadkit.frames.source import (
        CollectionFrames,
        CollectionLog,
        CollectionSource,
        DatabaseLog,
        DatabaseSource,
    )

__all__ = ["CollectionViews", "DatabaseViews", "FrameViews", "TimeViews"]


class FrameViews:
    """The DataFrame and query views of a collection, embedded or remote.

    Written once against :class:`~threadkit.frames.source.CollectionFrames`: a class
    that has them gives the three hooks (``_frame_of``, ``_compile``,
    ``_frame_schema``) and ``create``. ``tk.Collection`` gives them from the store
    (:class:`CollectionViews`); ``tk.Client``'s ``RemoteCollection`` from the
    daemon's ``Find`` and ``GetCollectionInfo``.
    """

    __slots__ = ()

    @property
    def df(self: CollectionFrames) -> pd.DataFrame:
        """The whole collection as a pandas DataFrame (``_id`` is the index)."""
        return self._frame_of(None, None, None)

    def to_pandas(
        self: CollectionFrames, query: Query | None = None, identity: PublicKey | str | None = None
    ) -> pd.DataFrame:
        """Documents (matching ``query``) as a DataFrame, dtypes from the schema.

        Indexed by ``_id``, one column per field (nested objects as ``parent.child``),
        dtypes from the collection's JSON Schema, ``_mod`` last as
        ``datetime64[ns, UTC]`` (:func:`threadkit.frames.frame.to_pandas`).

        Raises
        ------
        InvalidQuery
            For a ``query`` that is not a Query, or a type mismatch in it.
        """
        if query is not None and not isinstance(query, Query):
            raise InvalidQuery(f"expected a tk.Query or None, not {type(query).__name__}")
        return self._frame_of(query, None, identity)

    def to_arrow(
        self: CollectionFrames, query: Query | None = None, identity: PublicKey | str | None = None
    ) -> Any:
        """Documents (matching ``query``) as a ``pyarrow.Table``, ``_id`` first."""
        return frame_to_arrow(self.to_pandas(query, identity))

    def __arrow_c_stream__(self: CollectionFrames, requested_schema: object = None) -> object:
        """The collection as an Arrow C stream (the PyCapsule protocol), as ``to_arrow`` gives it.

        So DuckDB (``duckdb.sql("select city, avg(age) from people group by city")``),
        Polars (``polars.DataFrame(people)``) and pyarrow read the collection's table
        without copying it; the reader is the default identity (the peer's own, or
        the client's token; use ``to_arrow(identity=...)`` for another).
        """
        return arrow_stream(frame_to_arrow(self._frame_of(None, None, None)), requested_schema)

    def to_parquet(
        self: CollectionFrames,
        path: str | os.PathLike[str],
        query: Query | None = None,
        identity: PublicKey | str | None = None,
        *,
        partition_by: str | Sequence[str] | None = None,
        overwrite: bool = False,
        max_partitions: int = 1024,
        batch_size: int = BATCH_SIZE,
    ) -> None:
        """Write documents (matching ``query``) to a Parquet file, or a partitioned dataset.

        Without ``partition_by``, one file of the table ``to_arrow`` gives. With it, a
        hive-partitioned dataset in the directory ``path`` (``city=Oslo/part-0.parquet``…)
        that DuckDB, Polars, Dask and pyarrow read as one table; the whole collection is
        streamed ``batch_size`` documents at a time, so it need not fit in memory
        (:mod:`threadkit.frames.export`). ``overwrite=True`` replaces a directory that
        is not empty; the dataset appears there only once it is complete.

        Raises
        ------
        InvalidInput
            For an unknown partition column, ``_id``, a column of arrays, objects or
            mixed values, a ``path`` that is a file or a directory with files in it
            (without ``overwrite``), or more than ``max_partitions`` directories;
            nothing is written then.
        InvalidQuery
            For a ``query`` that is not a Query.

        Examples
        --------
        >>> people.to_parquet("people", partition_by="city")  # doctest: +SKIP
        >>> duckdb.sql("select * from read_parquet('people/**/*.parquet')")  # doctest: +SKIP
        """
        if query is not None and not isinstance(query, Query):
            raise InvalidQuery(f"expected a tk.Query or None, not {type(query).__name__}")
        if partition_by is None:
            frame_to_parquet(self.to_pandas(query, identity), path)
            return
        write_partitioned(
            path,
            partition_by,
            snapshot=self._raw_snapshot(query, batch_size),
            schema=self._frame_schema(),
            frame=lambda: self.to_pandas(query, identity),
            overwrite=overwrite,
            max_partitions=max_partitions,
            batch_size=batch_size,
        )

    def _raw_snapshot(
        self: CollectionFrames, query: Query | None, batch_size: int
    ) -> AbstractContextManager[Batches] | None:
        """The stored documents to stream for an export (None: export the frame)."""
        return None

    def create_many(
        self: CollectionFrames, df: Any, chunk_size: int = 1000, progress: Any = None
    ) -> list[str]:
        """Insert a DataFrame's rows, one transaction per chunk; returns their ids."""
        return create_many(self, df, chunk_size=chunk_size, progress=progress)

    def query(
        self: CollectionFrames,
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
        return self._frame_of(expr, caller_vars(expr, local_vars), identity)

    def lazy(self: CollectionFrames, expr: Any = None) -> LazyFrame:
        """A lazy result with ``sort_values``/``head`` that compile to the query's sort/limit."""
        return LazyFrame(self, self._compile(expr))

    @property
    def c(self: CollectionFrames) -> ColumnNamespace:
        """Column expressions: ``coll[coll.c.age > 30]``, ``coll.c.city.isin([...])``."""
        return ColumnNamespace(schema_paths(self._frame_schema()))

    def __getitem__(self: CollectionFrames, expr: Any) -> pd.DataFrame:
        """``coll[coll.c.age > 30]``: the matching documents as a DataFrame."""
        return self._frame_of(expr, None, None)


class TimeViews:
    """The time-travel views of a collection, read from its database's record log.

    Written against :class:`~threadkit.frames.source.CollectionLog`: ``_log_source``
    gives the collection whose log is read, or raises the error that says why a
    class cannot read one (a ``tk.Client`` collection: the daemon's API serves no log).
    """

    __slots__ = ()

    def at(
        self: CollectionLog, when: Point, identity: PublicKey | str | None = None
    ) -> pd.DataFrame:
        """The collection as it was at a point in its history, as a DataFrame.

        ``when`` is a time (``datetime``, ``pandas.Timestamp``, ISO string, or seconds
        since the epoch as an int or float, as ``time.time()`` gives), a record CID, or
        a set of heads ``{log id: counter or CID}`` (``db.heads()``); anything else is
        an ``InvalidInput`` saying what it takes (:mod:`threadkit.db.points`). The frame
        has the same columns and dtypes as ``coll.df`` (docs/types.md).
        """
        return collection_at(self._log_source("time travel (at())"), when, identity=identity)

    def diff(
        self: CollectionLog, a: Point, b: Point = None, identity: PublicKey | str | None = None
    ) -> pd.DataFrame:
        """Instances added, removed or changed between two points (``b`` None: now)."""
        return diff(self._log_source("diff()"), a, b, identity=identity)


class CollectionViews(FrameViews, TimeViews):
    """DataFrame, query, time-travel and notebook views of a collection of the store.

    The hooks of :class:`FrameViews` and :class:`TimeViews`, given from the store:
    frames come from the frame cache (:mod:`threadkit.frames.cache`), expressions
    compile against the collection's fields, the log is the database's own.
    """

    __slots__ = ()

    def _frame_of(
        self: CollectionSource,
        expr: object,
        local_vars: Mapping[str, Any] | None,
        identity: PublicKey | str | None,
    ) -> pd.DataFrame:
        frame: pd.DataFrame = query_frame(self, expr, local_vars, identity)
        return frame

    def _compile(self: CollectionSource, expr: object) -> Query:
        return compile_for(self, expr)

    def _frame_schema(self: CollectionSource) -> dict[str, Any]:
        return self.config.schema

    def _log_source(self: CollectionSource, what: str) -> CollectionSource:
        return self

    def _raw_snapshot(
        self: CollectionSource, query: Query | None, batch_size: int
    ) -> AbstractContextManager[Batches] | None:
        whole = query is None or query.to_json() == Query().to_json()
        if not whole or self.config.filter is not None:
            return None  # what a reader sees: the frame of the matching documents
        return self.raw_batches(batch_size)

    def _repr_html_(self: CollectionSource) -> str:
        """Name, count, indexes, schema fields and the first rows (for notebooks)."""
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


class DatabaseViews:
    """DataFrame and history views of a database, embedded or remote.

    The history views read the record log through ``_log_source``
    (:class:`~threadkit.frames.source.DatabaseLog`): a database of the store gives
    itself; ``tk.Client``'s ``RemoteDatabase`` raises the error that says why it
    cannot (the daemon's API serves no log).
    """

    __slots__ = ()

    def from_pandas(
        self: CollectionMaker[Any],
        name: str,
        df: Any,
        indexes: Iterable[Index | str | dict[str, Any]] = (),
        chunk_size: int = 1000,
        progress: Any = None,
    ) -> Any:
        """A new collection holding a DataFrame's rows, its schema inferred from the dtypes."""
        return from_pandas(
            self, name, df, indexes=indexes, chunk_size=chunk_size, progress=progress
        )

    def history(
        self: DatabaseLog, collection: str | None = None, *, full: bool = False
    ) -> pd.DataFrame:
        """Every event in total order as a DataFrame.

        Shown for people by default: ``time`` (UTC), short ``log`` and ``record`` ids,
        ``collection``, ``instance``, ``action``, ``patch``, ``rejected``, ``reason``.
        ``full=True`` gives every column with the whole ids (``hlc``, ``author``…;
        :func:`threadkit.frames.history.history`).
        """
        source = self._log_source("history()")
        return history(source, collection) if full else shown_history(source, collection)

    def conflicts(
        self: DatabaseLog, collection: str | None = None, *, full: bool = False
    ) -> pd.DataFrame:
        """The writes that lost a conflict, beside the ones that won, as a DataFrame.

        Shown for people by default: what lost (collection, instance, kind, path,
        reason) and each side's time, short log id and value. ``full=True`` gives
        every column with the whole ids (:func:`threadkit.frames.history.conflicts`).
        """
        frame = conflicts(self._log_source("conflicts()"), collection)
        return frame if full else readable_conflicts(frame)

    def heads(self: DatabaseLog) -> dict[str, int]:
        """Each log's counter (a point ``coll.at(...)`` accepts)."""
        return self._log_source("heads()").timeline.heads()

    def _log_source(self: DatabaseSource, what: str) -> DatabaseSource:
        return self
