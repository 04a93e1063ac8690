"""A query answered from a cached frame of the whole collection, without reading the store.

When the frame of every document is cached and current, the rows a
:class:`~threadkit.db.query.Query` matches can be found with vectorised operations
on its columns and on the per-row kinds the cache keeps (:mod:`.build`): each
criterion is false, true or *unknown* (the field holds another JSON type) on each
row, combined as :func:`~threadkit.db.query.matches` does (AND is the minimum, OR the
maximum, false < unknown < true). The rows are then the frame's rows, when the
column plan of the selected rows is the whole frame's (same columns, same dtypes);
:func:`select` returns None in every case it cannot answer exactly — a criterion on
``_id``, ``_mod``, a dotted path or an object, a column whose values it cannot compare
exactly (arrays, big integers, date-times, mixed types), ``contains``, any unknown
outcome (the store's query raises the error, naming the document), or a different
plan — and the caller reads the store instead.

The selected rows hold what building from the matching documents gives; the columns
keep the whole frame's order, which the caller corrects where the documents could
order them otherwise (:mod:`.cache`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from threadkit.db.query import Criterion, Op, Query
from threadkit.frames import build as fb
from threadkit.frames import cbor_columns as cc

__all__ = ["Values", "can_answer", "exact_floats", "frame_values", "matching_rows", "select"]

F, U, T = 0, 1, 2
_EXACT = 2**53  # a float64 holds every integer up to this exactly
_NUMBER = (cc.INT, cc.FLOATI, cc.FLOATF)
_KINDS = {
    "number": (_NUMBER, ("Int64", "float64")),
    "string": ((cc.STR,), ("string",)),
    "boolean": ((cc.FALSE, cc.TRUE), ("boolean",)),
}
_COMPARE = {
    Op.EQ: np.equal,
    Op.NE: np.not_equal,
    Op.GT: np.greater,
    Op.GE: np.greater_equal,
    Op.LT: np.less,
    Op.LE: np.less_equal,
}


class _Unanswerable(Exception):
    """The frame cannot answer this exactly."""


Values = Callable[[str, str, npt.NDArray[np.bool_]], Any]
"""``values(path, dtype, rows)``: a column's values on ``rows`` (those of the criterion's
type), exactly comparable — floats for numbers, Python objects otherwise."""


def exact_floats(values: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """``values``, when each is exactly the number it stands for (|v| ≤ 2**53, finite);
    otherwise the columns cannot decide (:func:`matching_rows` gives None)."""
    if values.size and np.nanmax(np.abs(values), initial=0.0) > _EXACT:
        raise _Unanswerable  # large integers may not be exact as floats
    return values


def frame_values(frame: Any) -> Values:
    """The :data:`Values` of a frame's columns."""

    def values(path: str, dtype: str, rows: npt.NDArray[np.bool_]) -> Any:
        column = frame[path]
        if dtype in ("Int64", "float64"):
            return exact_floats(column.to_numpy(dtype="float64", na_value=np.nan)[rows])
        return column.to_numpy(dtype=object, na_value=None)[rows]

    return values


def _criterion(
    n: int,
    values: Values,
    kinds: Mapping[str, fb.KindArray],
    dtypes: Mapping[str, str],
    c: Criterion,
) -> npt.NDArray[np.int8]:
    path = c.path
    if "." in path or path in ("_id", "_mod") or any(p.startswith(path + ".") for p in kinds):
        # a column "a.b" is a nested field or a key with a dot in it; "a" may be an object
        raise _Unanswerable
    row_kinds = kinds.get(path)
    if row_kinds is None:
        row_kinds = np.zeros(n, dtype=np.int8)  # no document has the path
    present = row_kinds != cc.MISSING
    if c.op is Op.EXISTS:
        return np.where(present == bool(c.value), T, F).astype(np.int8)
    if c.op not in _COMPARE and c.op is not Op.IN:
        raise _Unanswerable
    spec = _KINDS.get(c.value_type)
    if spec is None:
        raise _Unanswerable
    wanted, allowed = spec
    if (row_kinds == cc.OBJ).any() or (row_kinds == cc.STR_BAD).any():
        raise _Unanswerable  # arrays and big integers: the JSON type is not in the kinds
    valued = present & (row_kinds != cc.NULL)
    typed = np.isin(row_kinds, wanted)
    out = np.where(valued & ~typed, U, F).astype(np.int8)
    if not typed.any():
        return out
    dtype = dtypes.get(path)
    if dtype not in allowed:
        raise _Unanswerable
    found = values(path, dtype, typed)
    items = c.value if c.op is Op.IN else (c.value,)
    assert isinstance(items, tuple)
    if c.value_type == "number" and not all(
        isinstance(v, int | float) and -_EXACT <= v <= _EXACT for v in items
    ):
        raise _Unanswerable
    if c.op is Op.IN:
        hit = np.zeros(found.shape, dtype=bool)
        for item in items:
            hit |= np.asarray(np.equal(found, item), dtype=bool)
    else:
        hit = np.asarray(_COMPARE[c.op](found, c.value), dtype=bool)
    out[np.nonzero(typed)[0][hit]] = T
    return out


def _evaluate(
    n: int,
    values: Values,
    kinds: Mapping[str, fb.KindArray],
    dtypes: Mapping[str, str],
    query: Query,
) -> npt.NDArray[np.int8]:
    if not query.ands and not query.ors:
        return np.full(n, T, dtype=np.int8)
    result = np.full(n, F, dtype=np.int8)
    if query.ands:
        ands = np.full(n, T, dtype=np.int8)
        for c in query.ands:
            np.minimum(ands, _criterion(n, values, kinds, dtypes, c), out=ands)
        result = ands
    for branch in query.ors:
        np.maximum(result, _evaluate(n, values, kinds, dtypes, branch), out=result)
    return result


def matching_rows(
    n: int,
    values: Values,
    kinds: Mapping[str, fb.KindArray],
    dtypes: Mapping[str, str],
    query: Query,
) -> npt.NDArray[np.bool_] | None:
    """Which of ``n`` rows ``query`` matches, or None when that cannot be told exactly.

    Parameters
    ----------
    n : int
        Number of rows.
    values : Values
        The rows' column values (:func:`frame_values`, or read from decoded cells).
    kinds : Mapping[str, ndarray]
        Per path, each row's cell kind (:attr:`.build.Rows.kinds`).
    dtypes : Mapping[str, str]
        Per path, the dtype the column plan of all ``n`` rows gives it.
    query : Query
        Criteria only (no sort, seek, skip or limit).

    Returns
    -------
    ndarray of bool or None
        None for a criterion the columns cannot decide exactly, and when some row
        decides an error (the store's query reports it, naming the document).
    """
    if query.sort or query.seek_id or query.skip_count or query.limit_count:
        return None
    try:
        outcome = _evaluate(n, values, kinds, dtypes, query)
    except _Unanswerable:
        return None
    if (outcome == U).any():
        return None
    mask: npt.NDArray[np.bool_] = outcome == T
    return mask


def can_answer(query: Query) -> bool:
    """Whether the shape of ``query`` lets :func:`select` answer it (the data may still not).

    Examples
    --------
    >>> from threadkit.db.query import where
    >>> can_answer(where("age").gt(3)), can_answer(where("_id").eq("a"))
    (True, False)
    """
    if query.sort or query.seek_id or query.skip_count or query.limit_count:
        return False
    return _shape_ok(query)


def _shape_ok(query: Query) -> bool:
    for c in query.ands:
        if "." in c.path or c.path in ("_id", "_mod"):
            return False
        if c.op is Op.EXISTS:
            continue
        if (c.op not in _COMPARE and c.op is not Op.IN) or c.value_type not in _KINDS:
            return False
    return all(_shape_ok(branch) for branch in query.ors)


def select(
    frame: Any,
    kinds: Mapping[str, fb.KindArray],
    columns: fb.Plan,
    targets: Mapping[str, str],
    order: Sequence[str],
    query: Query,
) -> Any:
    """The rows of a whole-collection frame that ``query`` matches, or None.

    Parameters
    ----------
    frame : pandas.DataFrame
        The cached frame of every document, in ``_id`` order.
    kinds, columns, targets, order
        The cache entry's per-row kinds, column plan, schema targets and column order.
    query : Query
        Criteria only (no sort, seek, skip or limit).

    Returns
    -------
    pandas.DataFrame or None
        The matching rows (not a copy), or None when the frame cannot answer exactly.
    """
    mask = matching_rows(len(frame), frame_values(frame), kinds, dict(columns), query)
    if mask is None:
        return None
    picked = {path: k[mask] for path, k in kinds.items()}
    if fb.plan(fb.counts(picked), targets, order, picked) != columns:
        return None
    return frame[mask]
