"""A query answered by one columnar scan, when no frame of the collection is cached.

Every stored document is walked once into the columns the query's criteria name
(:mod:`.cbor_columns`, stepping over every other value), the criteria are decided on
those columns as on a cached frame (:func:`.select.matching_rows`,
the same three-valued rules), and only the matching documents are built into the
DataFrame — the frame a query's documents give (:func:`.build.build_frame`), so the
result is the one the store's query path gives. Nothing is cached: this is what a
query costs with nothing cached. :func:`scan_select` returns None wherever the columns
cannot decide exactly (see :func:`.select.matching_rows`); the caller then reads the
store.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from threadkit.db.query import Query
from threadkit.frames import build as fb
from threadkit.frames import cbor_columns as cc
from threadkit.frames.dtypes import schema_targets
from threadkit.frames.select import Values, can_answer, exact_floats, matching_rows
from threadkit.frames.source import CollectionSource

__all__ = ["scan_select"]


def _cell_values(rows: fb.Rows) -> Values:
    """The :data:`.select.Values` of decoded cells: what a frame built from them holds."""
    batch = rows.batch
    columns: dict[tuple[str, str], Any] = {}  # one per path: criteria often share a field

    def column(path: str, dtype: str) -> Any:
        cells = batch.columns[path]  # at most one cell per row (classify keeps the last)
        if dtype in ("Int64", "float64"):
            out = np.full(batch.n, np.nan)
            ints = cells.kinds == cc.INT
            out[cells.rows[ints]] = cells.a[ints]
            floats = (cells.kinds == cc.FLOATI) | (cells.kinds == cc.FLOATF)
            out[cells.rows[floats]] = cells.a[floats].view(np.float64)
            return out
        out_obj = np.full(batch.n, None, dtype=object)
        raw = batch.raw
        for row, kind, a, b in zip(
            cells.rows.tolist(),
            cells.kinds.tolist(),
            cells.a.tolist(),
            cells.b.tolist(),
            strict=True,
        ):
            if kind == cc.STR:
                out_obj[row] = raw[a : a + b].decode("utf-8")
            elif kind in (cc.TRUE, cc.FALSE):
                out_obj[row] = kind == cc.TRUE
        return out_obj

    def values(path: str, dtype: str, which: npt.NDArray[np.bool_]) -> Any:
        key = (path, dtype)
        if key not in columns:
            columns[key] = column(path, dtype)
        found = columns[key][which]
        return exact_floats(found) if dtype in ("Int64", "float64") else found

    return values


def scan_select(coll: CollectionSource, query: Query) -> Any:
    """``query``'s documents as a DataFrame, by one columnar scan; None when it cannot say.

    Parameters
    ----------
    coll : CollectionSource
        The collection (without a read filter: the caller checks).
    query : Query
        Criteria only, as :func:`.select.can_answer` takes them.

    Returns
    -------
    pandas.DataFrame or None
        The frame of the matching documents (as the store's query path builds it), or
        None when the columns cannot decide exactly or a document was left out.
    """
    if not can_answer(query):
        return None
    raw = coll.raw_documents()
    schema = coll.config.schema
    targets, order = schema_targets(schema)
    batch = cc.decode(raw, only=_paths(query))
    if batch.n != len(raw):
        return None  # a document was left out: rows no longer line up with the values
    rows = fb.classify(batch, targets)
    columns = fb.plan(fb.counts(rows.kinds), targets, order, rows.kinds)
    mask = matching_rows(batch.n, _cell_values(rows), rows.kinds, dict(columns), query)
    if mask is None:
        return None
    picked = [raw[i] for i in np.flatnonzero(mask).tolist()]
    return fb.build_frame(picked, schema).frame


def _paths(query: Query) -> list[str]:
    """Every path a criterion of ``query`` names (its ``or`` branches' too)."""
    paths = [c.path for c in query.ands]
    for branch in query.ors:
        paths += _paths(branch)
    return list(dict.fromkeys(paths))
