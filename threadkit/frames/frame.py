"""A collection as a pandas DataFrame, an Arrow table or a Parquet file.

Dtypes follow the collection's JSON Schema (:mod:`threadkit.frames.dtypes`);
``_id`` is the index; nested objects are flattened into dot-named columns.
Frames are cached per (collection, query, reader) and kept current
incrementally (:mod:`threadkit.frames.cache`).

The same views of documents fetched some other way (a daemon's ``Find``, for
``tk.Client``) come from :func:`frame_from_documents`, :func:`frame_to_arrow`
and :func:`frame_to_parquet`, which the collection functions use too.

Examples
--------
>>> import threadkit as tk
>>> from threadkit.frames.frame import to_pandas
>>> peer = tk.Peer(memory=True)
>>> people = peer.new_db("notes").new_collection("People")
>>> _ = people.create({"name": "Ada", "age": 36}, {"name": "Lin", "age": 29})
>>> to_pandas(people)[["name", "age"]].sort_values("age").to_dict("list")
{'name': ['Lin', 'Ada'], 'age': [29, 36]}
>>> peer.close()
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from threadkit.errors import InvalidQuery

if TYPE_CHECKING:
    from threadkit.core.identity import PublicKey
    from threadkit.db.query import Query
    from threadkit.frames.source import CollectionSource

__all__ = [
    "arrow_stream",
    "frame_from_documents",
    "frame_to_arrow",
    "frame_to_parquet",
    "to_arrow",
    "to_pandas",
    "to_parquet",
]


def _as_query(query: object) -> Query:
    from threadkit.db.query import Query

    if query is None:
        return Query()
    if isinstance(query, Query):
        return query
    raise InvalidQuery(f"expected a tk.Query or None, not {type(query).__name__}")


def to_pandas(
    coll: CollectionSource, query: Query | None = None, identity: PublicKey | str | None = None
) -> Any:
    """The collection's documents (those matching ``query``) as a DataFrame.

    Parameters
    ----------
    coll : CollectionSource
        The collection.
    query : Query, optional
        Only documents matching it, in its order (``_id`` order by default),
        with its skip/limit applied. Indexes are used as for ``coll.find``.
    identity : PublicKey or str, optional
        The reader the read filter runs for; the peer's own identity by default.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``_id``; one column per field (nested objects flattened to
        ``parent.child`` names), dtypes from the schema; ``_mod`` last, as
        ``datetime64[ns, UTC]``. Changing it does not change the cache.

    Raises
    ------
    InvalidQuery
        For a ``query`` that is not a Query, or one whose criteria meet a
        value of another type (as ``coll.find`` would).
    CollectionNotFound
        When the collection was deleted.

    Examples
    --------
    >>> frame = to_pandas(people, tk.where("age").gt(30))  # doctest: +SKIP
    """
    from threadkit.frames.cache import cached_frame

    reader = coll.db_reader(identity)
    return cached_frame(coll, _as_query(query), reader)


def _arrow_column(values: Any) -> Any:
    """An Arrow array of an object column; values Arrow cannot type become JSON text."""
    import pyarrow as pa

    try:
        return pa.array(values, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OverflowError):
        return pa.array(
            [None if v is None else json.dumps(v, default=str) for v in values],
            type=pa.large_string(),
        )


def to_arrow(
    coll: CollectionSource, query: Query | None = None, identity: PublicKey | str | None = None
) -> Any:
    """The collection as a ``pyarrow.Table``, ``_id`` as its first column.

    Column types follow :func:`to_pandas`; an ``object`` column Arrow cannot
    type (mixed values) is stored as JSON text.

    Examples
    --------
    >>> table = to_arrow(people)  # doctest: +SKIP
    >>> table.column_names[0]  # doctest: +SKIP
    '_id'
    """
    return frame_to_arrow(to_pandas(coll, query, identity))


def arrow_stream(table: Any, requested_schema: object = None) -> object:
    """A ``pyarrow.Table`` as an Arrow C stream (the PyCapsule ``__arrow_c_stream__`` protocol).

    What the ``__arrow_c_stream__`` methods of collections, lazy results and a
    client's collections return: DuckDB, Polars and pyarrow read the table's
    buffers through it without copying them.

    Parameters
    ----------
    table : pyarrow.Table
        A table of :func:`to_arrow` or :func:`frame_to_arrow`.
    requested_schema : PyCapsule, optional
        The schema the consumer asks for; the table is cast to it when it can
        be, as ``pyarrow.Table.__arrow_c_stream__`` does.

    Returns
    -------
    PyCapsule
        An ``arrow_array_stream`` capsule.

    Examples
    --------
    >>> import pyarrow as pa
    >>> table = frame_to_arrow(frame_from_documents([{"_id": "a", "n": 1}], {}))
    >>> capsule = arrow_stream(table)
    >>> pa.RecordBatchReader._import_from_c_capsule(capsule).read_all().column_names
    ['_id', 'n']
    """
    return table.__arrow_c_stream__(requested_schema)


def frame_from_documents(docs: Iterable[Mapping[str, Any]], schema: Mapping[str, Any]) -> Any:
    """Documents as the DataFrame a collection with ``schema`` shows them as.

    The frame equals what :func:`to_pandas` gives for a collection holding
    ``docs`` in this order (same columns, dtypes, index and ``_mod``), so
    documents fetched elsewhere — from a daemon, say — look the same.

    Parameters
    ----------
    docs : Iterable[Mapping[str, Any]]
        JSON objects, each with a text ``_id``.
    schema : Mapping[str, Any]
        The collection's JSON Schema (``{}`` for none).

    Returns
    -------
    pandas.DataFrame
        Indexed by ``_id``, dtypes from the schema (see :mod:`.dtypes`).

    Raises
    ------
    InvalidDocument
        When a document has no text ``_id``.

    Examples
    --------
    >>> schema = {"properties": {"age": {"type": "integer"}}}
    >>> frame = frame_from_documents([{"_id": "a", "age": 3}, {"_id": "b"}], schema)
    >>> frame.dtypes.to_dict(), frame.index.tolist()
    ({'age': Int64Dtype()}, ['a', 'b'])
    """
    import cbor2

    from threadkit.frames.build import build_frame

    return build_frame([cbor2.dumps(doc) for doc in docs], schema).frame


def frame_to_arrow(frame: Any) -> Any:
    """A frame of :func:`to_pandas` as a ``pyarrow.Table``, ``_id`` as its first column.

    Examples
    --------
    >>> frame_to_arrow(frame_from_documents([{"_id": "a", "n": 1}], {})).column_names
    ['_id', 'n']
    """
    import pyarrow as pa

    names = ["_id", *frame.columns]
    arrays = [pa.array(frame.index.array, type=pa.large_string())]
    for name in frame.columns:
        column = frame[name]
        if column.dtype == object:
            arrays.append(_arrow_column(column.to_list()))
        else:
            arrays.append(pa.Array.from_pandas(column.array))
    return pa.Table.from_arrays(arrays, names=names)


def to_parquet(
    coll: CollectionSource,
    path: str | os.PathLike[str],
    query: Query | None = None,
    identity: PublicKey | str | None = None,
) -> None:
    """Write the collection (as :func:`to_arrow` gives it) to a Parquet file.

    Examples
    --------
    >>> to_parquet(people, "people.parquet")  # doctest: +SKIP
    """
    frame_to_parquet(to_pandas(coll, query, identity), path)


def frame_to_parquet(frame: Any, path: str | os.PathLike[str]) -> None:
    """Write a frame of :func:`to_pandas` (as :func:`frame_to_arrow` gives it) to Parquet.

    Examples
    --------
    >>> frame_to_parquet(frame, "people.parquet")  # doctest: +SKIP
    """
    import pyarrow.parquet as pq

    pq.write_table(frame_to_arrow(frame), os.fspath(path))
