"""Running expression queries: ``query_frame`` (a DataFrame now) and ``LazyFrame`` (later).

``query_frame(coll, "age > 30")`` and ``query_frame(coll, coll.c.age > 30)``
compile to a :class:`~threadkit.db.query.Query` (so indexes are used) and return
a DataFrame (:func:`threadkit.frames.frame.to_pandas`). A :class:`LazyFrame`
holds the query instead, so that ``sort_values`` and ``head`` become the
query's sort and limit, run by the store, before anything is decoded.

Examples
--------
>>> import threadkit as tk
>>> peer = tk.Peer(memory=True)
>>> people = peer.new_db("notes").new_collection("People")
>>> _ = people.create({"name": "Ada", "age": 36}, {"name": "Lin", "age": 29})
>>> query_frame(people, "age > 30")["name"].tolist()
['Ada']
>>> LazyFrame(people).sort_values("age", ascending=False).head(1).to_pandas()["name"].tolist()
['Ada']
>>> peer.close()
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from threadkit.db.query import Query
from threadkit.errors import InvalidQuery
from threadkit.frames.columns import Column, Expr, as_condition
from threadkit.frames.expr import compile_parsed, compile_query, parse
from threadkit.frames.fields import check_fields
from threadkit.frames.frame import to_pandas
from threadkit.frames.logic import to_query

if TYPE_CHECKING:
    from threadkit.core.identity import PublicKey
    from threadkit.frames.source import CollectionSource

__all__ = [
    "FrameSource",
    "LazyFrame",
    "caller_vars",
    "compile_for",
    "compile_with_schema",
    "lazy_query",
    "query_frame",
]


class FrameSource(Protocol):
    """What a :class:`LazyFrame` runs against: a collection, embedded or remote.

    ``threadkit.Collection`` and ``tk.Client``'s ``RemoteCollection`` both are.
    """

    @property
    def name(self) -> str:
        """The collection's name."""
        ...

    def to_pandas(self, query: Query | None = None, identity: PublicKey | str | None = None) -> Any:
        """The documents matching ``query`` (as ``identity`` sees them) as a DataFrame."""


def caller_vars(
    expr: object, local_vars: Mapping[str, Any] | None, depth: int = 2
) -> Mapping[str, Any] | None:
    """What ``@name`` refers to: ``local_vars``, else the variables of the caller's caller.

    As ``DataFrame.query`` does, query text with ``@`` and no ``local_vars``
    sees the variables (globals, then locals) of the code that called the
    method which called this function.

    Parameters
    ----------
    expr : object
        The query; only text containing ``@`` looks at the caller.
    local_vars : Mapping[str, Any], optional
        Returned as it is when given.
    depth : int
        Frames to go up from this function (2: the caller of the caller).

    Examples
    --------
    >>> def query(expr): return caller_vars(expr, None)
    >>> limit = 3
    >>> query("age > @limit")["limit"]
    3
    """
    if local_vars is not None or not isinstance(expr, str) or "@" not in expr:
        return local_vars
    frame = inspect.currentframe()
    for _ in range(depth):
        frame = frame.f_back if frame is not None else None
    try:
        return {**frame.f_globals, **frame.f_locals} if frame is not None else {}
    finally:
        del frame


def compile_for(
    coll: CollectionSource,
    query: object,
    local_vars: Mapping[str, Any] | None = None,
    identity: PublicKey | str | None = None,
) -> Query:
    """A Query from text (pandas syntax), a column expression, a Query or None.

    Text and column expressions may only name fields the collection knows, as
    pandas' ``DataFrame.query`` may only name columns; ``index`` is ``_id``
    (:mod:`threadkit.frames.fields`). A ``tk.Query`` keeps ThreadDB's meaning: a
    missing field matches nothing.

    Raises
    ------
    InvalidQuery
        For anything else, an unknown field, or what the compiler refuses.
    """

    if query is None or isinstance(query, Query):
        return compile_with_schema({}, query, local_vars)
    reader = coll.db_reader(identity)
    schema = coll.config.schema
    if isinstance(query, str):
        return compile_parsed(check_fields(coll, parse(query, local_vars), reader), schema)
    if isinstance(query, Expr | Column):
        return to_query(check_fields(coll, as_condition(query), reader), schema)
    return compile_with_schema(schema, query, local_vars)  # refuses it, saying what it takes


def compile_with_schema(
    schema: Mapping[str, Any], query: object, local_vars: Mapping[str, Any] | None = None
) -> Query:
    """:func:`compile_for` given the collection's schema rather than the collection.

    Parameters
    ----------
    schema : Mapping[str, Any]
        The collection's JSON Schema: values are checked against it and
        date-times converted to the stored text.
    query : str, Expr, Column, Query or None
        What to compile (None: every document).
    local_vars : Mapping[str, Any], optional
        What ``@name`` refers to in text.

    Raises
    ------
    InvalidQuery
        For anything else, or what the compiler refuses.

    Examples
    --------
    >>> compile_with_schema({}, "age > 30")
    where('age').gt(30)
    """

    if query is None:
        return Query()
    if isinstance(query, Query):
        return query
    if isinstance(query, str):
        return compile_query(query, local_vars=local_vars, schema=schema)
    if isinstance(query, Expr | Column):
        return query.to_query(schema)
    raise InvalidQuery(
        "expected query text, a column expression (coll.c.age > 30) or a tk.Query, "
        f"not {type(query).__name__}"
    )


def query_frame(
    coll: CollectionSource,
    text_or_expr: object,
    local_vars: Mapping[str, Any] | None = None,
    identity: PublicKey | str | None = None,
) -> Any:
    """The documents matching a pandas-style query or column expression, as a DataFrame.

    Parameters
    ----------
    coll : CollectionSource
        The collection.
    text_or_expr : str, Expr, Column or Query
        ``"age > 30 and city == 'Oslo'"``, ``coll.c.age > 30``, or a Query.
    local_vars : Mapping[str, Any], optional
        What ``@name`` refers to in text.
    identity : PublicKey or str, optional
        The reader (read filters apply).

    Returns
    -------
    pandas.DataFrame
        As :func:`threadkit.frames.frame.to_pandas` gives it.

    Examples
    --------
    >>> query_frame(people, "city in @cities", {"cities": ["Oslo"]})  # doctest: +SKIP
    """

    return to_pandas(coll, compile_for(coll, text_or_expr, local_vars, identity), identity)


def lazy_query(
    coll: CollectionSource,
    text_or_expr: object = None,
    local_vars: Mapping[str, Any] | None = None,
    identity: PublicKey | str | None = None,
) -> LazyFrame:
    """A :class:`LazyFrame` of the documents matching the query (all when None)."""
    query = compile_for(coll, text_or_expr, local_vars, identity)
    return LazyFrame(_Frames(coll), query, identity)


class _Frames:
    """A collection of the store as a :class:`FrameSource`: its frames from the cache."""

    def __init__(self, coll: CollectionSource) -> None:
        self.name = coll.name
        self._coll = coll

    def to_pandas(self, query: Query | None = None, identity: PublicKey | str | None = None) -> Any:
        """The documents matching ``query`` as a DataFrame (:func:`.frame.to_pandas`)."""

        return to_pandas(self._coll, query, identity)


class LazyFrame:
    """A query not run yet: ``sort_values`` and ``head`` become its sort and limit.

    Parameters
    ----------
    coll : FrameSource
        The collection (embedded, or a ``tk.Client`` one).
    query : Query, optional
        The query (every document by default).
    identity : PublicKey or str, optional
        The reader (read filters apply); a remote collection reads as its
        client's token identity and refuses any other.

    Notes
    -----
    Sorting follows the store, not pandas: by one field, missing values first
    when ascending (last when descending), ties in ``_id`` order.
    """

    def __init__(
        self,
        coll: FrameSource,
        query: Query | None = None,
        identity: PublicKey | str | None = None,
    ) -> None:
        if query is not None and not isinstance(query, Query):
            raise InvalidQuery(f"expected a tk.Query or None, not {type(query).__name__}")
        self.collection = coll
        self.query = query if query is not None else Query()
        self.identity = identity
        self._nothing = False  # head(0): a Query cannot say "limit 0"

    def _with(self, query: Query, nothing: bool = False) -> LazyFrame:
        out = LazyFrame(self.collection, query, self.identity)
        out._nothing = nothing or self._nothing
        return out

    def sort_values(self, by: str | Sequence[str], ascending: bool = True) -> LazyFrame:
        """Sort by one field (the store sorts by a single path).

        Raises
        ------
        InvalidQuery
            For several fields, or a non-boolean ``ascending``.
        """
        if not isinstance(by, str):
            names = list(by)
            if len(names) != 1:
                raise InvalidQuery(
                    f"the store sorts by one field; got {names!r} "
                    "(sort the DataFrame with pandas for more)"
                )
            by = names[0]
        if not isinstance(ascending, bool):
            raise InvalidQuery(f"ascending must be True or False, not {ascending!r}")
        query = self.query.order_by(by) if ascending else self.query.order_by_desc(by)
        return self._with(query)

    def head(self, n: int = 5) -> LazyFrame:
        """The first ``n`` rows (a limit; keeps any smaller limit already set)."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise InvalidQuery(f"head() takes a non-negative integer, not {n!r}")
        current = self.query.limit_count
        return self._with(self.query.limit(min(n, current) if current else n), nothing=n == 0)

    def to_pandas(self) -> Any:
        """Run the query; the DataFrame of its results."""
        frame = self.collection.to_pandas(self.query, self.identity)
        return frame.iloc[:0] if self._nothing else frame

    def to_arrow(self) -> Any:
        """Run the query; its results as a ``pyarrow.Table`` (``_id`` first, as ``to_arrow``)."""
        from threadkit.frames.frame import frame_to_arrow

        return frame_to_arrow(self.to_pandas())

    def __arrow_c_stream__(self, requested_schema: object = None) -> object:
        """Run the query; its results as an Arrow C stream (the PyCapsule protocol).

        DuckDB and Polars read it as they read a collection
        (``polars.from_arrow(people.lazy("age > 30"))``).
        """
        from threadkit.frames.frame import arrow_stream

        return arrow_stream(self.to_arrow(), requested_schema)

    def __len__(self) -> int:
        return len(self.to_pandas())

    def __repr__(self) -> str:
        return f"LazyFrame({self.collection.name!r}, {self.query!r})"

    def _repr_html_(self) -> str:
        frame = self.to_pandas()
        html: str = frame._repr_html_()
        return f"<p><code>{self.collection.name}</code>: {self.query!r}</p>{html}"
