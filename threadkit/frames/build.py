"""Build a DataFrame from decoded cells: per-row kinds, the column plan, the columns.

Three steps, each a pure function of its inputs so that a frame built in pieces
(the incremental cache) equals one built at once:

1. :func:`classify` — the kind of every row's value at every path
   (:mod:`.cbor_columns` kinds; date-time text that does not parse becomes ``STR_BAD``);
2. :func:`plan` — which columns there are and their dtypes, from the kind counts
   and the schema targets (rules in :mod:`.dtypes`);
3. :func:`build` — the DataFrame, indexed by ``_id``.

:func:`build_frame` runs the three from encoded documents and a schema; it is the
one way a frame is made from documents, whether they come from the store (the
embedded collection's cache) or from a daemon (``tk.Client``).

Examples
--------
>>> import cbor2
>>> from threadkit.frames.cbor_columns import decode
>>> rows = classify(decode([cbor2.dumps({"_id": "a", "n": 1}), cbor2.dumps({"_id": "b"})]), {})
>>> build(rows, plan(counts(rows.kinds), {}, [], list(rows.kinds))).dtypes.to_dict()
{'n': Int64Dtype()}
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeAlias

import cbor2
import numpy as np
import numpy.typing as npt

from threadkit.errors import InvalidDocument
from threadkit.frames import cbor_columns as cc
from threadkit.frames.cbor_columns import Batch, Cells
from threadkit.frames.dtypes import schema_targets

__all__ = ["Built", "Plan", "Rows", "build", "build_frame", "classify", "counts", "plan"]

KindArray: TypeAlias = npt.NDArray[np.int8]
Plan: TypeAlias = list[tuple[str, str]]
"""Columns in order, each with its dtype name: ``Int64``, ``float64``, ``boolean``,
``string``, ``datetime`` (parsed text), ``mod`` (nanoseconds) or ``object``."""

_NAT = np.iinfo(np.int64).min
_DATES = ("date-time", "date")
_N_KINDS = 10


@dataclass
class Rows:
    """A decoded batch with the kind of each row's value at each path.

    Attributes
    ----------
    batch : Batch
        The cells.
    kinds : dict[str, ndarray]
        Path → int8 array of length ``batch.n`` (``MISSING`` where absent), in
        the order the paths were met.
    parsed : dict[str, ndarray]
        Date-time path → int64 nanoseconds since the epoch (UTC) per row.
    """

    batch: Batch
    kinds: dict[str, KindArray]
    parsed: dict[str, npt.NDArray[np.int64]] = field(default_factory=dict)


def _last(cells: Cells) -> Cells:
    """The cells with at most one per row (the last one, as a JSON object's last key wins)."""
    rows = cells.rows
    if rows.size < 2:
        return cells
    order = np.argsort(rows, kind="stable")
    rows = rows[order]
    keep = np.ones(rows.size, dtype=bool)
    keep[:-1] = rows[1:] != rows[:-1]
    if keep.all() and (order[1:] > order[:-1]).all():
        return cells
    pick = order[keep]
    return Cells(cells.rows[pick], cells.kinds[pick], cells.a[pick], cells.b[pick])


def classify(batch: Batch, targets: Mapping[str, str]) -> Rows:
    """The per-row kinds of a batch; date-time targets are parsed here.

    Parameters
    ----------
    batch : Batch
        Decoded documents.
    targets : Mapping[str, str]
        Schema targets (:func:`threadkit.frames.dtypes.schema_targets`).
    """
    batch.columns = {path: _last(cells) for path, cells in batch.columns.items()}
    kinds: dict[str, KindArray] = {}
    parsed: dict[str, npt.NDArray[np.int64]] = {}
    for path, cells in batch.columns.items():
        row_kinds = np.zeros(batch.n, dtype=np.int8)
        row_kinds[cells.rows] = cells.kinds
        if targets.get(path) in _DATES:
            parsed[path] = _parse_dates(batch, cells, row_kinds)
        kinds[path] = row_kinds
    return Rows(batch, kinds, parsed)


def counts(kinds: Mapping[str, KindArray]) -> dict[str, npt.NDArray[np.int64]]:
    """How many rows hold each kind, per path."""
    return {p: np.bincount(k, minlength=_N_KINDS) for p, k in kinds.items()}


def _dtype(path: str, found: set[int], target: str | None) -> str:
    present = found - {cc.MISSING, cc.NULL}
    if path == "_mod":
        return "mod" if present <= {cc.INT} else "object"
    fits = {
        "integer": ({cc.INT, cc.FLOATI}, "Int64"),
        "number": ({cc.INT, cc.FLOATI, cc.FLOATF}, "float64"),
        "boolean": ({cc.TRUE, cc.FALSE}, "boolean"),
        "string": ({cc.STR, cc.STR_BAD}, "string"),
        "date-time": ({cc.STR}, "datetime"),
        "date": ({cc.STR}, "datetime"),
        "array": ({cc.OBJ}, "object"),
    }
    if target in fits:
        allowed, dtype = fits[target]
        if present <= allowed:
            return dtype
        if target in _DATES and present <= {cc.STR, cc.STR_BAD}:
            return "string"
        return "object"
    if not present:
        return "object"
    if present <= {cc.INT}:
        return "Int64"
    if present <= {cc.INT, cc.FLOATI, cc.FLOATF}:
        return "float64"
    if present <= {cc.TRUE, cc.FALSE}:
        return "boolean"
    if present <= {cc.STR, cc.STR_BAD}:
        return "string"
    return "object"


def plan(
    kind_counts: Mapping[str, npt.NDArray[np.int64]],
    targets: Mapping[str, str],
    order: Sequence[str],
    met: Iterable[str],
) -> Plan:
    """The columns and their dtypes.

    Parameters
    ----------
    kind_counts : Mapping[str, ndarray]
        From :func:`counts`.
    targets : Mapping[str, str]
        Schema targets; every declared leaf is a column even when no row has it.
    order : Sequence[str]
        Preferred order (the column-order annotation, then the schema's leaves).
    met : Iterable[str]
        Every path in the order it was first met in the documents.

    Returns
    -------
    Plan
        ``[(path, dtype), ...]``: ``order`` first, then other paths as met,
        ``_mod`` last; ``_id`` is not a column (it is the index).
    """
    present = {p for p, c in kind_counts.items() if c[cc.MISSING] < c.sum() and p != "_id"} | set(
        targets
    )
    paths = [p for p in dict.fromkeys([*order, *met]) if p in present and p != "_mod"]
    paths += [p for p in present if p not in paths and p != "_mod"]
    if "_mod" in present:
        paths.append("_mod")
    out: Plan = []
    for path in paths:
        found = kind_counts.get(path)
        kinds = set(np.nonzero(found)[0].tolist()) if found is not None else set()
        out.append((path, _dtype(path, kinds, targets.get(path))))
    return out


# --- columns -------------------------------------------------------------------------


def _float_values(a: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
    return a.view(np.float64)


def _strings(batch: Batch, cells: Cells, which: npt.NDArray[np.bool_]) -> Any:
    """A pyarrow ``large_string`` array of length ``batch.n`` from the chosen text cells."""
    import pyarrow as pa

    rows, starts, lengths = cells.rows[which], cells.a[which], cells.b[which]
    n = batch.n
    sizes = np.zeros(n, dtype=np.int64)
    sizes[rows] = lengths
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(sizes, out=offsets[1:])
    total = int(offsets[-1])
    buf = np.frombuffer(batch.raw, dtype=np.uint8)
    if total:
        order = np.argsort(rows, kind="stable")
        rows_o, starts_o, lengths_o = rows[order], starts[order], lengths[order]
        data = buf[_positions(starts_o, lengths_o, offsets[rows_o], total, buf.size)]
    else:
        data = np.zeros(0, dtype=np.uint8)
    valid = np.zeros(n, dtype=bool)
    valid[rows] = True
    nulls = n - int(rows.size)
    bitmap = pa.py_buffer(np.packbits(valid, bitorder="little")) if nulls else None
    array = pa.Array.from_buffers(
        pa.large_string(),
        n,
        [bitmap, pa.py_buffer(offsets), pa.py_buffer(data)],
        null_count=nulls,
    )
    array.validate(full=True)
    return array


def _positions(
    starts: npt.NDArray[np.int64],
    lengths: npt.NDArray[np.int64],
    firsts: npt.NDArray[np.int64],
    total: int,
    size: int,
) -> npt.NDArray[np.signedinteger[Any]]:
    """The buffer position of every byte of the strings, in output order: one running sum.

    ``firsts`` is where each string starts in the output. The step into a string's first
    byte jumps from the previous string's last byte to its start, every other step is 1;
    in 32 bits when the buffer allows (half the memory traffic of 64).
    """
    dtype = np.int32 if size < 2**31 else np.int64
    keep = lengths > 0  # an empty string has no byte: it would share the next one's first
    starts, lengths, firsts = starts[keep], lengths[keep], firsts[keep]
    step = np.ones(total, dtype=dtype)
    ends = starts + lengths
    step[firsts[1:]] = starts[1:] - ends[:-1] + 1
    step[0] = starts[0]
    return np.cumsum(step, dtype=dtype)


def _parse_dates(batch: Batch, cells: Cells, row_kinds: KindArray) -> npt.NDArray[np.int64]:
    """Parse the text cells of a date-time column; marks unparseable rows ``STR_BAD``."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.compute as pc

    out = np.full(batch.n, _NAT, dtype=np.int64)
    text = cells.kinds == cc.STR
    if not text.any():
        return out
    rows = cells.rows[text]
    strings = _strings(batch, cells, text).take(pa.array(rows))
    try:
        stamps = pc.cast(strings, pa.timestamp("ns", tz="UTC"))
        values = stamps.cast(pa.int64()).to_numpy(zero_copy_only=False)
        bad = np.zeros(rows.size, dtype=bool)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        series = pd.to_datetime(
            pd.Series(strings.to_pylist(), dtype=object),
            utc=True,
            format="ISO8601",
            errors="coerce",
        ).astype("datetime64[ns, UTC]")
        bad = series.isna().to_numpy()
        values = series.to_numpy(dtype="datetime64[ns]", na_value=np.datetime64("NaT"))
        values = values.view(np.int64)
    out[rows] = values
    row_kinds[rows[bad]] = cc.STR_BAD
    return out


def _objects(batch: Batch, cells: Cells) -> npt.NDArray[np.object_]:
    out = np.full(batch.n, None, dtype=object)
    raw = batch.raw
    kinds = cells.kinds
    for kind, convert in (
        (cc.INT, lambda a, b: a.tolist()),
        (cc.FLOATI, lambda a, b: _float_values(a).tolist()),
        (cc.FLOATF, lambda a, b: _float_values(a).tolist()),
        (cc.TRUE, lambda a, b: [True] * a.size),
        (cc.FALSE, lambda a, b: [False] * a.size),
        (
            cc.STR,
            lambda a, b: [
                raw[s : s + n].decode("utf-8") for s, n in zip(a.tolist(), b.tolist(), strict=True)
            ],
        ),
        (
            cc.OBJ,
            lambda a, b: [
                cbor2.loads(raw[s : s + n]) for s, n in zip(a.tolist(), b.tolist(), strict=True)
            ],
        ),
    ):
        which = kinds == kind
        if which.any():
            values = convert(cells.a[which], cells.b[which])
            target = cells.rows[which]
            holder = np.empty(len(values), dtype=object)
            holder[:] = values
            out[target] = holder
    return out


def _column(rows: Rows, path: str, dtype: str) -> Any:
    import pandas as pd

    batch = rows.batch
    n = batch.n
    cells = batch.columns.get(path)
    if cells is None:
        none = np.zeros(0, dtype=np.int64)
        cells = Cells(none, np.zeros(0, dtype=np.int8), none, none)
    kinds = cells.kinds
    if dtype == "Int64":
        values = np.zeros(n, dtype=np.int64)
        mask = np.ones(n, dtype=bool)
        ints = kinds == cc.INT
        values[cells.rows[ints]] = cells.a[ints]
        whole = kinds == cc.FLOATI
        values[cells.rows[whole]] = _float_values(cells.a[whole]).astype(np.int64)
        mask[cells.rows[ints | whole]] = False
        return pd.arrays.IntegerArray(values, mask)
    if dtype == "float64":
        out = np.full(n, np.nan)
        ints = kinds == cc.INT
        out[cells.rows[ints]] = cells.a[ints].astype(np.float64)
        floats = (kinds == cc.FLOATI) | (kinds == cc.FLOATF)
        out[cells.rows[floats]] = _float_values(cells.a[floats])
        return out
    if dtype == "boolean":
        values = np.zeros(n, dtype=bool)
        mask = np.ones(n, dtype=bool)
        values[cells.rows[kinds == cc.TRUE]] = True
        mask[cells.rows[(kinds == cc.TRUE) | (kinds == cc.FALSE)]] = False
        return pd.arrays.BooleanArray(values, mask)
    if dtype == "string":
        import pyarrow as pa

        text = _strings(batch, cells, kinds == cc.STR)
        return pd.arrays.ArrowStringArray(pa.chunked_array([text]))
    if dtype in ("datetime", "mod"):
        if dtype == "mod":
            stamps = np.full(n, _NAT, dtype=np.int64)
            ints = kinds == cc.INT
            stamps[cells.rows[ints]] = cells.a[ints]
        else:
            stamps = rows.parsed.get(path, np.full(n, _NAT, dtype=np.int64))
        return pd.array(stamps.view("datetime64[ns]")).tz_localize("UTC")
    return _objects(batch, cells)


def build(rows: Rows, columns: Plan) -> Any:
    """The DataFrame of a batch, with exactly the planned columns and dtypes.

    Raises
    ------
    InvalidDocument
        When a row has no text ``_id``.
    """
    import pandas as pd
    import pyarrow as pa

    batch = rows.batch
    ids = batch.columns.get("_id")
    id_kinds = rows.kinds.get("_id")
    if batch.n and (ids is None or id_kinds is None or (id_kinds != cc.STR).any()):
        raise InvalidDocument("every document in a frame needs a text _id")
    if ids is None:
        id_array = pa.array([], type=pa.large_string())
    else:
        id_array = _strings(batch, ids, ids.kinds == cc.STR)
    index = pd.Index(pd.arrays.ArrowStringArray(pa.chunked_array([id_array])), name="_id")
    data = {path: _column(rows, path, dtype) for path, dtype in columns}
    return pd.DataFrame(data, index=index, columns=[path for path, _ in columns], copy=False)


@dataclass
class Built:
    """A frame built from documents, with what an incremental update of it needs.

    Attributes
    ----------
    frame : pandas.DataFrame
        Indexed by ``_id``, one column per planned path.
    kinds : dict[str, ndarray]
        The per-row kinds (:attr:`Rows.kinds`).
    columns : Plan
        The column plan the frame was built with.
    targets : dict[str, str]
        The schema targets (:func:`threadkit.frames.dtypes.schema_targets`).
    order : list[str]
        The preferred column order from the schema.
    uniform : bool
        Every document lists its fields in one order (:attr:`.cbor_columns.Batch.uniform`).
    """

    frame: Any
    kinds: dict[str, KindArray]
    columns: Plan
    targets: dict[str, str]
    order: list[str]
    uniform: bool = False


def build_frame(values: Sequence[bytes], schema: Mapping[str, Any]) -> Built:
    """The DataFrame of encoded documents, dtypes from ``schema``: classify, plan, build.

    Parameters
    ----------
    values : Sequence[bytes]
        One CBOR-encoded JSON object per row, in the order the rows should have.
    schema : Mapping[str, Any]
        The collection's JSON Schema (``{}`` for none).

    Returns
    -------
    Built
        The frame and its plan.

    Raises
    ------
    InvalidDocument
        When a document has no text ``_id``.
    StoreError
        When a value is not a CBOR map with text keys.

    Examples
    --------
    >>> import cbor2
    >>> schema = {"properties": {"n": {"type": "number"}}}
    >>> build_frame([cbor2.dumps({"_id": "a", "n": 1})], schema).frame.dtypes.to_dict()
    {'n': dtype('float64')}
    """
    targets, order = schema_targets(schema)
    rows = classify(cc.decode(values), targets)
    columns = plan(counts(rows.kinds), targets, order, rows.kinds)
    return Built(build(rows, columns), rows.kinds, columns, targets, order, rows.batch.uniform)
