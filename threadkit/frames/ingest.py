"""DataFrames into collections: ``from_pandas`` (new collection) and ``create_many`` (bulk create).

Rows become documents, one transaction (one record) per chunk of rows:

- a missing value (``NaN``, ``None``, ``<NA>``, ``NaT``) leaves the field out
  (never a JSON null), so it reads back as missing;
- dotted column names (``meta.reads``) become nested objects;
- date-times are stored as fixed-width UTC text (:func:`.dtypes.datetime_text`);
  naive ones are taken as UTC, and nanoseconds are refused rather than cut;
- NumPy scalars and arrays become JSON numbers, booleans and lists; dicts must
  have string keys.

Ids: a ``_id`` column, or else an index named ``_id``, gives the documents'
ids (strings). Otherwise ids are generated, in row order (they sort in the
order they were made); an index with a name becomes a column of that name,
and an unnamed index is dropped (as ``DataFrame.to_dict("records")`` does).
A ``_mod`` column is ignored: the store sets it.

Round trip: ``to_pandas(from_pandas(db, name, df))`` equals ``df`` after
(a) dropping ``_mod``, (b) resetting the index to the frame's own, and
(c) the dtype normalisations of reading: ``int*`` → ``Int64``, ``bool`` →
``boolean``, ``float32`` → ``float64``, text → ``string``, ``datetime64[*]`` →
``datetime64[ns, UTC]``.

Examples
--------
>>> import pandas as pd, threadkit as tk
>>> peer = tk.Peer(memory=True)
>>> db = peer.new_db("notes")
>>> frame = pd.DataFrame({"name": ["Ada", "Lin"], "age": [36, None]})
>>> people = from_pandas(db, "People", frame, indexes=["name"])
>>> people.find(tk.where("name").eq("Lin"))[0].get("age") is None
True
>>> peer.close()
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from threadkit.db.values import MAX_DEPTH, check_id, value_problem
from threadkit.errors import InvalidDocument, InvalidInput, UniqueViolation
from threadkit.frames.dtypes import (
    DATETIME_FORMAT,
    check_column_name,
    datetime_text,
    schema_from_frame,
)
from threadkit.frames.progress import Progress, check_progress, reporter

if TYPE_CHECKING:
    from threadkit.db.config import Index

__all__ = ["CollectionMaker", "Creator", "create_many", "frame_documents", "from_pandas"]


class Creator(Protocol):
    """Where rows go: a collection, embedded or a ``tk.Client`` one."""

    def create(self, *docs: Any) -> list[str]:
        """Create documents in one transaction; their ids."""


_C = TypeVar("_C", bound=Creator)
_C_co = TypeVar("_C_co", bound=Creator, covariant=True)


class CollectionMaker(Protocol[_C_co]):
    """Where a new collection is made: a database, embedded or a ``tk.Client`` one."""

    def new_collection(
        self,
        name: str,
        schema: dict[str, Any] | None = ...,
        indexes: Iterable[Any] = ...,
    ) -> _C_co:
        """Create a collection."""


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "<missing>"


MISSING: Any = _Missing()


def _is_na(value: Any) -> bool:
    if value is None or value is MISSING:
        return True
    if isinstance(value, float):
        return math.isnan(value)
    return type(value).__name__ in ("NAType", "NaTType")


def _json(value: Any, column: str) -> Any:
    """A Python value as JSON-ready data (NumPy unwrapped, date-times as text)."""
    import datetime as dt

    import numpy as np

    if isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            if math.isnan(value):
                return None
            raise InvalidDocument(f"column {column!r} holds {value}, which JSON cannot hold")
        return value
    if isinstance(value, dt.date):
        return datetime_text(value)
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidDocument(
                    f"column {column!r} holds a dict with the non-string key {key!r}"
                )
            out[key] = _json(item, column)
        return out
    if isinstance(value, list | tuple | np.ndarray):
        return [_json(item, column) for item in value]
    if _is_na(value):
        return None
    raise InvalidDocument(
        f"column {column!r} holds a {type(value).__name__} ({value!r:.60}), "
        "which has no JSON form; convert it first"
    )


def _column_values(series: Any, name: str) -> list[Any]:
    """A column as a list of JSON values, :data:`MISSING` where the row has none."""
    import pandas as pd
    from pandas.api import types

    dtype = series.dtype
    if types.is_datetime64_any_dtype(dtype):
        stamps = series if getattr(dtype, "tz", None) is None else series.dt.tz_convert("UTC")
        if (stamps.dt.nanosecond.fillna(0) != 0).any():
            raise InvalidDocument(
                f"column {name!r} has nanoseconds; threadkit stores date-times to the "
                "microsecond (round with .dt.floor('us'))"
            )
        text = stamps.dt.strftime(DATETIME_FORMAT)
        return [MISSING if isinstance(v, float) or v is None else v for v in text.tolist()]
    if types.is_float_dtype(dtype):
        values = (
            series.astype(object) if isinstance(dtype, pd.api.extensions.ExtensionDtype) else series
        )
        out = []
        for value in values.tolist():
            if _is_na(value):
                out.append(MISSING)
            elif not math.isfinite(value):
                raise InvalidDocument(f"column {name!r} holds {value}, which JSON cannot hold")
            else:
                out.append(float(value))
        return out
    if (types.is_bool_dtype(dtype) or types.is_integer_dtype(dtype)) and not isinstance(
        dtype, pd.api.extensions.ExtensionDtype
    ):
        return list(series.tolist())
    if isinstance(dtype, pd.CategoricalDtype):
        series = series.astype(object)
    return [MISSING if _is_na(v) else _json(v, name) for v in series.astype(object).tolist()]


def _split_ids(frame: Any) -> tuple[Any, list[str] | None]:
    """The frame without its id column/index, and the ids (None: generate them)."""
    ids: Any = None
    if "_id" in frame.columns:
        ids = frame["_id"]
        frame = frame.drop(columns="_id")
    elif frame.index.name == "_id":
        ids = frame.index.to_series()
        frame = frame.reset_index(drop=True)
    elif any(name is not None for name in frame.index.names):
        frame = frame.reset_index()
    if "_mod" in frame.columns:
        frame = frame.drop(columns="_mod")
    if ids is None:
        return frame, None
    out = []
    for value in ids.tolist():
        if not isinstance(value, str) or not value:
            raise InvalidDocument(f"_id values must be non-empty strings, got {value!r}")
        out.append(check_id(value))
    if len(set(out)) != len(out):
        dupes = sorted({i for i in out if out.count(i) > 1})[:3]
        raise InvalidDocument(f"_id values repeat, e.g. {dupes}")
    return frame, out


_Columns = list[tuple[str, list[str], list[Any]]]


def _columns(frame: Any) -> _Columns:
    """Every column's name, dot-path parts and JSON values (all checked here)."""
    columns = []
    for name in frame.columns:
        parts = check_column_name(name)
        values = _column_values(frame[name], name)
        _check_values(name, values, frame[name].dtype, len(parts))
        columns.append((name, parts, values))
    return columns


def _check_values(name: str, values: list[Any], dtype: Any, depth: int) -> None:
    """Hold a column's values to the value model, so no chunk fails after others were written.

    Float and date-time columns were checked while they were converted; an integer column
    may hold unsigned values beyond the signed 64-bit range, and an object column anything.
    """
    kind = getattr(dtype, "kind", "O")
    if kind in "fMbi":
        return
    for row, value in enumerate(values):
        if value is MISSING:
            continue
        problem = value_problem(value, MAX_DEPTH - depth)
        if problem is not None:
            raise InvalidDocument(
                f"column {name!r}, row {row}: {problem}".replace(" at the top level", "")
            )


def _documents(
    columns: _Columns, ids: list[str] | None, start: int, stop: int
) -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for row in range(start, stop):
        doc: dict[str, Any] = {} if ids is None else {"_id": ids[row]}
        for name, parts, values in columns:
            value = values[row]
            if value is MISSING:
                continue
            if len(parts) == 1:
                doc[name] = value
                continue
            node = doc
            for part in parts[:-1]:
                node = node.setdefault(part, {})
            node[parts[-1]] = value
        docs.append(doc)
    return docs


def frame_documents(frame: Any, ids: list[str] | None = None) -> list[dict[str, Any]]:
    """The documents of a frame's rows (see the module docstring for the rules).

    Examples
    --------
    >>> import pandas as pd
    >>> frame_documents(pd.DataFrame({"a": [1, None], "m.x": ["p", "q"]}))
    [{'a': 1.0, 'm': {'x': 'p'}}, {'m': {'x': 'q'}}]
    """
    return _documents(_columns(frame), ids, 0, len(frame))


def _check_frame(frame: object) -> Any:
    import pandas as pd

    if not isinstance(frame, pd.DataFrame):
        raise InvalidInput(f"expected a pandas DataFrame, not {type(frame).__name__}")
    if not frame.columns.is_unique:
        dupes = frame.columns[frame.columns.duplicated()].tolist()[:3]
        raise InvalidDocument(f"column names repeat: {dupes}")
    return frame


def create_many(
    coll: Creator,
    df: Any,
    chunk_size: int = 1000,
    progress: Progress = None,
) -> list[str]:
    """Create one document per row of ``df``, one transaction per ``chunk_size`` rows.

    Parameters
    ----------
    coll : Creator
        An existing collection (embedded, or through ``tk.Client``); each
        document is checked against its schema.
    df : pandas.DataFrame
        The rows (see the module docstring for how values are stored).
    chunk_size : int
        Rows per transaction (one record each).
    progress : callable, bool or None
        ``callback(done, total)`` after each chunk, True for a bar, False for
        none; None shows a bar for large frames when a terminal or a Jupyter
        kernel with ipywidgets can show it.

    Returns
    -------
    list[str]
        The ids, in row order.

    Raises
    ------
    InvalidInput
        For a bad ``df``, ``chunk_size`` or ``progress``.
    InvalidDocument, SchemaViolation, InstanceExists, UniqueViolation
        From a chunk; earlier chunks stay written, and the error's notes say
        which rows were.

    Examples
    --------
    >>> ids = create_many(people, frame, chunk_size=5_000)  # doctest: +SKIP
    """
    frame = _check_frame(df)
    _check_chunk_size(chunk_size)
    check_progress(progress)
    frame, ids = _split_ids(frame)
    return _write(coll, _columns(frame), ids, len(frame), chunk_size, progress)


def _check_chunk_size(chunk_size: object) -> None:
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise InvalidInput(f"chunk_size must be a positive integer, not {chunk_size!r}")


def _write(
    coll: Creator,
    columns: _Columns,
    ids: list[str] | None,
    total: int,
    chunk_size: int,
    progress: Progress,
) -> list[str]:
    report = reporter(progress, total)
    out: list[str] = []
    try:
        for start in range(0, total, chunk_size):
            stop = min(start + chunk_size, total)
            try:
                out.extend(coll.create(_documents(columns, ids, start, stop)))
            except Exception as exc:
                exc.add_note(
                    f"rows {start}-{stop - 1} of {total} were not written; "
                    f"rows 0-{start - 1} were (one transaction per {chunk_size} rows)"
                    if start
                    else f"no rows were written (rows 0-{stop - 1} failed)"
                )
                raise
            report(stop)
    finally:
        report.close()
    return out


def _check_unique(frame: Any, indexes: Iterable[Index | str | dict[str, Any]]) -> list[Any]:
    from threadkit.db.config import Index

    parsed = [Index.coerce(i) for i in indexes]
    for index in parsed:
        if index.unique and index.path in frame.columns:
            values = frame[index.path].dropna()
            repeated = values[values.duplicated()]
            if len(repeated):
                raise UniqueViolation(
                    f"unique index {index.path!r}: the frame repeats {repeated.iloc[0]!r}"
                )
    return parsed


def from_pandas(
    db: CollectionMaker[_C],
    name: str,
    df: Any,
    indexes: Iterable[Index | str | dict[str, Any]] = (),
    chunk_size: int = 1000,
    progress: Progress = None,
) -> _C:
    """Create a collection from a DataFrame: schema from its dtypes, rows as documents.

    Parameters
    ----------
    db : CollectionMaker
        Where to create it (a database, embedded or through ``tk.Client``).
    name : str
        The new collection's name (ThreadDB's rule: letters, digits, hyphens).
    df : pandas.DataFrame
        The rows; the schema comes from :func:`.dtypes.schema_from_frame`.
    indexes : iterable of Index, str or dict
        Indexes to create (dot paths). Unique ones are checked against the
        frame before anything is created.
    chunk_size, progress
        As for :func:`create_many`.

    Returns
    -------
    Collection or RemoteCollection
        The new collection (what ``db.new_collection`` returns).

    Raises
    ------
    CollectionExists
        When the name is taken.
    InvalidDocument, InvalidInput, UniqueViolation, InvalidIndex
        For a frame, index list or value that cannot be stored; nothing is
        created.

    Examples
    --------
    >>> people = from_pandas(db, "People", frame, indexes=["name"])  # doctest: +SKIP
    """
    frame = _check_frame(df)
    _check_chunk_size(chunk_size)
    check_progress(progress)
    frame, ids = _split_ids(frame)
    schema = schema_from_frame(frame)
    parsed = _check_unique(frame, indexes)
    columns = _columns(frame)  # every value checked before anything is created
    coll = db.new_collection(name, schema=schema, indexes=parsed)
    _write(coll, columns, ids, len(frame), chunk_size, progress)
    return coll
