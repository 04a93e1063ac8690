"""The Arrow stream and the partitioned Parquet export (issue 16), beside same-run baselines.

100,000 small documents in a durable repo (``city``, ``age``, ``name``, ``score``):

- ``arrow_duckdb_group_by``: ``duckdb.sql("select city, avg(age) from coll group by
  city")``, DuckDB reading the collection through ``__arrow_c_stream__`` with the
  collection's frame cached — vs the same SQL over the ``pyarrow.Table`` of the same
  documents already in memory (what the stream can at best be); ``detail`` has the same
  with nothing cached (``cold_best_ms``: the frame built first).
- ``arrow_polars_from_arrow``: ``polars.from_arrow(coll)``, frame cached — vs
  ``polars.from_arrow`` of that in-memory table.
- ``parquet_partitioned``: ``coll.to_parquet(dir, partition_by="city")``, streamed from
  LMDB in batches — vs ``pyarrow.dataset.write_dataset`` of the in-memory table with the
  same hive partitioning; both read back by DuckDB and Polars as a dataset and checked.
"""

from __future__ import annotations

import random
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.harness import Figure, figure

__all__ = ["run"]

CITIES = ["Oslo", "Lima", "Pune", "Kyiv", "Quito", "Accra", "Hanoi", "Perth", "Turin", "Cusco"]
DOCS = 100_000
SQL = "select city, avg(age) from {} group by city order by city"


def _duckdb_coll(coll: Any) -> list[Any]:
    """``SQL`` over the collection (DuckDB finds ``coll`` among this frame's locals)."""
    import duckdb

    return duckdb.sql(SQL.format("coll")).fetchall()


def _duckdb_table(arrow_table: Any) -> list[Any]:
    """The same SQL over an in-memory ``pyarrow.Table``."""
    import duckdb

    return duckdb.sql(SQL.format("arrow_table")).fetchall()


def _docs(n: int) -> list[dict[str, Any]]:
    rng = random.Random(11)
    return [
        {
            "name": f"person-{i:06d}",
            "age": rng.randint(0, 99),
            "city": CITIES[i % len(CITIES)],
            "score": round(rng.random() * 100, 3),
        }
        for i in range(n)
    ]


def _ms(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1000


def _pair(
    name: str,
    work: Callable[[], object],
    base: Callable[[], object],
    base_name: str,
    rounds: int,
    **detail: Any,
) -> Figure:
    ms, base_ms = [], []
    for _ in range(rounds):  # alternating: the baseline, then the workload
        base_ms.append(_ms(base))
        ms.append(_ms(work))
    return figure(
        name,
        "1/s",
        base_name,
        [1000 / m for m in ms],
        [1000 / m for m in base_ms],
        docs=DOCS,
        best_ms=round(min(ms), 2),
        median_ms=round(statistics.median(ms), 2),
        baseline_best_ms=round(min(base_ms), 2),
        **detail,
    )


def run(rounds: int = 5) -> list[Figure]:
    """DuckDB and Polars over the stream, and the partitioned export."""
    import duckdb
    import polars as pl
    import pyarrow.dataset as ds

    from threadkit.frames import cache
    from threadkit.peer import Peer

    rounds = max(1, min(rounds, 5))
    with tempfile.TemporaryDirectory() as tmp, Peer(Path(tmp) / "repo") as peer:
        db = peer.new_db("bench")
        coll = db.new_collection("People")
        docs = _docs(DOCS)
        for i in range(0, DOCS, 10_000):
            coll.create(docs[i : i + 10_000])
        arrow_table = coll.to_arrow()  # the same documents, in memory: the baselines' input
        assert _duckdb_coll(coll) == _duckdb_table(arrow_table)
        assert pl.from_arrow(coll).struct.unnest().equals(pl.from_arrow(arrow_table))

        def cold() -> object:
            cache.clear(db)
            return _duckdb_coll(coll)

        cold_ms = [_ms(cold) for _ in range(rounds)]
        out = [
            _pair(
                "arrow_duckdb_group_by_frame_warm",
                lambda: _duckdb_coll(coll),
                lambda: _duckdb_table(arrow_table),
                "the same SQL over the in-memory pyarrow.Table",
                rounds,
                cold_best_ms=round(min(cold_ms), 2),
                cold_median_ms=round(statistics.median(cold_ms), 2),
            ),
            _pair(
                "arrow_polars_from_arrow_frame_warm",
                lambda: pl.from_arrow(coll),
                lambda: pl.from_arrow(arrow_table),
                "polars.from_arrow of the in-memory pyarrow.Table",
                rounds,
            ),
        ]
        target = Path(tmp) / "out"

        def ours() -> None:
            coll.to_parquet(target, partition_by="city", overwrite=True)

        def theirs() -> None:
            shutil.rmtree(target, ignore_errors=True)
            ds.write_dataset(
                arrow_table,
                target,
                format="parquet",
                partitioning=["city"],
                partitioning_flavor="hive",
            )

        glob = f"{target}/**/*.parquet"
        check = f"select count(*) from read_parquet('{glob}', hive_partitioning=true)"
        ours()
        assert duckdb.sql(check).fetchall() == [(DOCS,)]
        assert pl.scan_parquet(target, hive_partitioning=True).collect().height == DOCS
        out.append(
            _pair(
                "parquet_partitioned_by_city",
                ours,
                theirs,
                "pyarrow.dataset.write_dataset of the in-memory table, same partitioning",
                rounds,
                what="coll.to_parquet(dir, partition_by='city'), streamed from LMDB in batches",
            )
        )
    return out
