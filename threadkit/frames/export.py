"""A collection as a hive-partitioned Parquet dataset, written in batches.

``coll.to_parquet(directory, partition_by="city")`` writes one directory per value
(``city=Oslo/part-0.parquet``…) with :func:`pyarrow.dataset.write_dataset`, the layout
DuckDB (``read_parquet('dir/**/*.parquet', hive_partitioning=true)``), Polars
(``pl.scan_parquet(dir, hive_partitioning=True)``), Dask (``dd.read_parquet(dir)``)
and pyarrow (``pyarrow.dataset.dataset(dir, partitioning="hive")``) read as one dataset.

The whole collection of the store (no query, no read filter) is streamed: one read
snapshot, read ``batch_size`` documents at a time in two passes — the first finds the
columns and their types (the plan a frame of the whole collection has,
:func:`threadkit.frames.build.plan`), the second builds each batch with that plan and
hands it to the writer — so only a batch is in memory at a time, and every file of the
dataset has one schema. A query, a read filter or a daemon's collection (``tk.Client``)
writes the frame of the matching documents (what ``to_pandas`` gives) the same way.

Everything the caller gives is checked before a file is written: the partition columns
(known columns of one scalar type each, not ``_id``), the target (a directory that is
empty, absent, or replaced with ``overwrite=True``). The dataset is written into a new
directory beside the target and moved into place when complete, so a failure part way
(too many partitions, a full disk) leaves the target as it was.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

from threadkit.errors import InvalidInput
from threadkit.frames.dtypes import schema_targets
from threadkit.frames.frame import frame_to_arrow

if TYPE_CHECKING:
    from threadkit.frames import build as fb

__all__ = ["check_target", "partition_columns", "write_partitioned"]

Batches = Callable[[], Iterator[list[bytes]]]
"""A function iterating one snapshot's encoded documents in lists (``raw_batches``)."""

BATCH_SIZE = 50_000
_SCALAR = {"Int64", "float64", "boolean", "string", "datetime", "mod"}


def partition_columns(partition_by: str | Sequence[str]) -> list[str]:
    """The partition column names, checked for form (a name or a list of distinct names).

    Examples
    --------
    >>> partition_columns("city"), partition_columns(["city", "year"])
    (['city'], ['city', 'year'])
    >>> partition_columns([])
    Traceback (most recent call last):
    ...
    threadkit.errors.InvalidInput: partition_by needs at least one column name
    """
    names = [partition_by] if isinstance(partition_by, str) else partition_by
    if not isinstance(names, Sequence) or not all(isinstance(n, str) and n for n in names):
        raise InvalidInput(
            f"partition_by takes a column name or a list of them, not {partition_by!r}"
        )
    if not names:
        raise InvalidInput("partition_by needs at least one column name")
    if len(set(names)) != len(names):
        raise InvalidInput(f"partition_by names a column twice: {list(names)}")
    if "_id" in names:
        raise InvalidInput("partition_by cannot be _id: one directory per document")
    return list(names)


def check_target(path: str | os.PathLike[str], overwrite: bool) -> Path:
    """The dataset's directory, checked: absent, empty, or to be replaced (``overwrite``).

    Raises
    ------
    InvalidInput
        When ``path`` is a file, or a directory with files in it and ``overwrite`` is False.
    """
    target = Path(os.fspath(path))
    if target.exists() and not target.is_dir():
        raise InvalidInput(f"{target} is a file; a partitioned dataset is written to a directory")
    if target.is_dir() and any(target.iterdir()) and not overwrite:
        raise InvalidInput(f"{target} is not empty; pass overwrite=True to replace what is in it")
    return target


def _check_plan(names: list[str], columns: dict[str, str]) -> None:
    for name in names:
        dtype = columns.get(name)
        if dtype is None:
            known = ", ".join(sorted(columns)) or "(none: the collection is empty)"
            raise InvalidInput(f"cannot partition by {name!r}: no such column; columns: {known}")
        if dtype not in _SCALAR:
            raise InvalidInput(
                f"cannot partition by {name!r}: it holds arrays, objects or values of several"
                " types; partition by a column of one scalar type"
            )


def _object_column(values: list[Any], arrow_type: Any) -> Any:
    import pyarrow as pa

    if arrow_type is None:
        return pa.array(
            [None if v is None else json.dumps(v, default=str) for v in values],
            type=pa.large_string(),
        )
    return pa.array(values, type=arrow_type, from_pandas=True)


def _infer(values: list[Any]) -> Any:
    """The Arrow type of an object column's values; None when only JSON text holds them."""
    import pyarrow as pa

    try:
        return pa.array(values, from_pandas=True).type
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OverflowError):
        return None


def _unify(types: list[Any]) -> Any:
    """One Arrow type for every batch's type of a column; None (JSON text) when there is none."""
    import pyarrow as pa

    if any(t is None for t in types):
        return None
    known = [t for t in types if not pa.types.is_null(t)]
    if not known:
        return pa.null()
    try:
        fields = [pa.schema([pa.field("v", t)]) for t in known]
        return pa.unify_schemas(fields, promote_options="permissive").field("v").type
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        return None


def _table(frame: Any, objects: dict[str, Any]) -> Any:
    """A batch's frame as an Arrow table; object columns of the type every batch shares."""
    table = frame_to_arrow(frame)
    for name, arrow_type in objects.items():
        at = table.schema.get_field_index(name)
        column = _object_column(frame[name].to_list(), arrow_type)
        table = table.set_column(at, name, column)
    return table


class _Plan:
    """The columns of the whole snapshot: one pass classifying every batch."""

    def __init__(self, batches: Batches, schema: dict[str, Any]) -> None:
        # imported here: they import numpy, and the views import this module with a peer
        from threadkit.frames import build as fb
        from threadkit.frames import cbor_columns as cc

        self.targets, self.order = schema_targets(schema)
        total: dict[str, Any] = {}
        met: dict[str, None] = {}
        for values in batches():
            rows = fb.classify(cc.decode(values), self.targets)
            for path, found in fb.counts(rows.kinds).items():
                total[path] = found + total[path] if path in total else found
            met.update(dict.fromkeys(rows.kinds))
        self.columns = fb.plan(total, self.targets, self.order, met)

    def frames(self, batches: Batches, columns: fb.Plan | None = None) -> Iterator[Any]:
        """Each batch's frame, with the whole snapshot's columns (or ``columns``)."""
        from threadkit.frames import build as fb
        from threadkit.frames import cbor_columns as cc

        for values in batches():
            rows = fb.classify(cc.decode(values), self.targets)
            yield fb.build(rows, self.columns if columns is None else columns)


def write_partitioned(
    path: str | os.PathLike[str],
    partition_by: str | Sequence[str],
    *,
    snapshot: AbstractContextManager[Batches] | None,
    schema: dict[str, Any],
    frame: Callable[[], Any],
    overwrite: bool = False,
    max_partitions: int = 1024,
    batch_size: int = BATCH_SIZE,
) -> None:
    """Write a hive-partitioned Parquet dataset of a collection.

    Parameters
    ----------
    path : str or PathLike
        The dataset's directory.
    partition_by : str or Sequence[str]
        The column (or columns, outermost first) whose values name the directories.
    snapshot : context manager of Batches, optional
        The stored documents in one snapshot (``Collection.raw_batches(batch_size)``):
        streamed in batches. None: ``frame()`` is written.
    schema : dict
        The collection's JSON Schema (the columns' dtypes, as in ``to_pandas``).
    frame : callable
        The frame to write when there is no snapshot (a query's, a read filter's, a
        daemon's).
    overwrite : bool
        Replace the directory's contents when it has any.
    max_partitions : int
        At most this many directories (pyarrow's default); more is an error.
    batch_size : int
        Documents per batch (the snapshot's reads and the writer's row groups).

    Raises
    ------
    InvalidInput
        For a bad ``partition_by`` (no such column, ``_id``, a column of arrays,
        objects or mixed values), a target that is a file or not empty without
        ``overwrite``, a ``batch_size`` or ``max_partitions`` below 1, or more
        partitions than ``max_partitions``; nothing is written then.
    """
    import pyarrow as pa
    import pyarrow.dataset as ds

    names = partition_columns(partition_by)
    for what, value in (("batch_size", batch_size), ("max_partitions", max_partitions)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InvalidInput(f"{what} must be a positive integer, not {value!r}")
    target = check_target(path, overwrite)
    source: AbstractContextManager[Batches | None] = snapshot if snapshot else nullcontext()
    with source as batches:
        if batches is not None:
            plan = _Plan(batches, schema)
            columns = dict(plan.columns)
            _check_plan(names, {"_id": "string", **columns})
            loose = [(name, dtype) for name, dtype in plan.columns if dtype == "object"]
            found: dict[str, list[Any]] = {name: [] for name, _ in loose}
            for part in plan.frames(batches, loose) if loose else ():
                for name, _ in loose:
                    found[name].append(_infer(part[name].to_list()))
            objects = {name: _unify(types) for name, types in found.items()}
            tables: Iterator[Any] = (_table(f, objects) for f in plan.frames(batches))
        else:
            whole = frame()
            columns = {str(c): "object" if whole[c].dtype == object else "Int64" for c in whole}
            _check_plan(names, {"_id": "string", **columns})
            tables = iter([frame_to_arrow(whole)])
        first = next(tables, None)
        if first is None:  # no documents: an empty dataset (what was there is replaced)
            if target.is_dir() and any(target.iterdir()):
                shutil.rmtree(target)  # check_target let it through: overwrite is on
            target.mkdir(parents=True, exist_ok=True)
            return
        arrow_schema = first.schema

        def batches_out() -> Iterator[Any]:
            yield from first.to_batches()
            for table in tables:
                yield from table.cast(arrow_schema).to_batches()

        target.parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        try:
            ds.write_dataset(
                pa.RecordBatchReader.from_batches(arrow_schema, batches_out()),
                work,
                format="parquet",
                partitioning=names,
                partitioning_flavor="hive",
                basename_template="part-{i}.parquet",
                existing_data_behavior="overwrite_or_ignore",
                max_partitions=max_partitions,
                max_rows_per_group=batch_size,
            )
        except pa.ArrowInvalid as exc:
            shutil.rmtree(work, ignore_errors=True)
            if "max_partitions" in str(exc) or "partitions" in str(exc):
                raise InvalidInput(
                    f"partitioning by {names} makes more than {max_partitions} directories;"
                    " pass a larger max_partitions or partition by fewer values"
                ) from exc
            raise
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise
    _move_into_place(work, target)


def _move_into_place(work: Path, target: Path) -> None:
    """The finished dataset at ``target``, replacing what was there."""
    if not target.exists():
        work.rename(target)
        return
    aside = Path(tempfile.mkdtemp(prefix=f".{target.name}.old.", dir=target.parent))
    aside.rmdir()
    target.rename(aside)
    work.rename(target)
    shutil.rmtree(aside, ignore_errors=True)
