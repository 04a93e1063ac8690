"""``coll.to_parquet(dir, partition_by=...)``: a hive-partitioned Parquet dataset, streamed in
batches, that pyarrow, DuckDB, Polars and Dask read back as the collection's table; bad input
raises before anything is written, and a failure part way leaves the target as it was."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.dataset as ds
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import threadkit as tk
from threadkit.errors import InvalidInput, InvalidQuery

SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "age": {"type": "integer"},
        "city": {"type": "string"},
        "address": {"type": "object", "properties": {"zip": {"type": "integer"}}},
    },
}
# dask's parquet reader calls reset_index(inplace=True), deprecated in pandas 3.1
pytestmark = pytest.mark.filterwarnings("ignore:The inplace keyword")

CITIES = ["Oslo", "Lima", "São Paulo/SP", "Kyiv"]


def _docs(n: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for i in range(n):
        doc: dict[str, Any] = {"_id": f"d{i:04d}", "name": f"n{i}", "age": i % 7}
        if i % 9:
            doc["city"] = CITIES[i % len(CITIES)]  # every ninth has no city: the null partition
        if i % 2:
            doc["address"] = {"zip": i}
        # lists of ints early, of floats later: one type for the column across batches
        doc["tags"] = [i, i + 1] if i < n // 2 else [i + 0.5]
        doc["loose"] = i if i % 3 else f"t{i}"  # mixed: JSON text
        out.append(doc)
    return out


@pytest.fixture
def people() -> Iterator[Any]:
    with tk.Peer(memory=True) as peer:
        coll = peer.new_db("export").new_collection("People", schema=SCHEMA)
        coll.create(*_docs(200))
        yield coll


def _rows(table: pa.Table, columns: list[str]) -> list[tuple[Any, ...]]:
    """The table's rows as tuples (values as Python sees them), in _id order."""
    data = table.select(columns).to_pylist()
    return sorted(tuple(row[c] for c in columns) for row in data)


def _expected(coll: Any, columns: list[str], query: Any = None) -> list[tuple[Any, ...]]:
    return _rows(coll.to_arrow(query), columns)


def _hive(path: Path) -> pa.Table:
    return ds.dataset(path, format="parquet", partitioning="hive").to_table()


COLUMNS = ["_id", "name", "age", "city", "address.zip", "tags", "loose"]


def test_written_in_batches_reads_back_as_the_collection(people: Any, tmp_path: Path) -> None:
    target = tmp_path / "people"
    people.to_parquet(target, partition_by="city", batch_size=64)
    dirs = sorted(p.name for p in target.iterdir())
    assert dirs == sorted(
        [
            "city=Kyiv",
            "city=Lima",
            "city=Oslo",
            "city=S%C3%A3o%20Paulo%2FSP",
            "city=__HIVE_DEFAULT_PARTITION__",
        ]
    )
    table = _hive(target)
    assert table.num_rows == len(people)
    assert table.schema.field("tags").type == pa.list_(pa.float64())  # unified over batches
    assert table.schema.field("loose").type == pa.large_string()  # mixed: JSON text
    whole = people.to_arrow()
    assert whole.schema.field("tags").type == pa.list_(pa.float64())
    assert _rows(table, COLUMNS) == _expected(people, COLUMNS)
    # one schema in every file: the columns of the whole collection, not of its batch
    files = [ds.dataset(p, format="parquet").schema for p in target.rglob("*.parquet")]
    assert len({str(schema) for schema in files}) == 1


def test_duckdb_polars_and_dask_read_the_dataset(people: Any, tmp_path: Path) -> None:
    target = tmp_path / "people"
    people.to_parquet(target, partition_by=["city", "age"], batch_size=50)
    cols = ["_id", "name", "age", "city"]
    expected = _expected(people, cols)

    glob = f"{target}/**/*.parquet"
    got = duckdb.sql(
        f"select _id, name, cast(age as bigint), city from read_parquet('{glob}',"
        " hive_partitioning=true)"
    ).fetchall()
    assert sorted(got) == expected
    by_city = duckdb.sql(
        f"select city, count(*) from read_parquet('{glob}', hive_partitioning=true)"
        " group by city order by city nulls last"
    ).fetchall()
    assert by_city == [
        (c, sum(1 for d in people.find() if d.get("city") == c)) for c in sorted(CITIES)
    ] + [(None, sum(1 for d in people.find() if "city" not in d))]

    frame = pl.scan_parquet(target, hive_partitioning=True).select(cols).collect()
    assert sorted(frame.iter_rows()) == expected

    dd = pytest.importorskip("dask.dataframe")
    # a partition of nulls has no value to infer the column's type from: Dask is told it
    partitioning = {
        "flavor": "hive",
        "schema": pa.schema([("city", pa.string()), ("age", pa.int64())]),
    }
    back = dd.read_parquet(target, dataset={"partitioning": partitioning}).compute()
    rows = back[cols].astype(object).where(back[cols].notna(), None)
    assert sorted(map(tuple, rows.itertuples(index=False))) == expected


def test_dask_reads_a_dataset_without_null_partitions(tmp_path: Path) -> None:
    dd = pytest.importorskip("dask.dataframe")
    with tk.Peer(memory=True) as peer:
        coll = peer.new_db("d").new_collection("C")
        coll.create(*[{"city": CITIES[i % 4], "n": i} for i in range(40)])
        coll.to_parquet(tmp_path / "c", partition_by="city", batch_size=7)
        back = dd.read_parquet(tmp_path / "c").compute()
        assert sorted(zip(back["_id"], back["city"].astype(str), back["n"], strict=True)) == sorted(
            (d["_id"], d["city"], d["n"]) for d in coll.find()
        )


def test_a_query_is_exported_as_its_result(people: Any, tmp_path: Path) -> None:
    query = tk.where("age").gt(3)
    people.to_parquet(tmp_path / "q", query, partition_by="age")
    table = _hive(tmp_path / "q")
    assert _rows(table, COLUMNS) == _expected(people, COLUMNS, query)
    assert {int(p.name.split("=")[1]) for p in (tmp_path / "q").iterdir()} == {4, 5, 6}
    with pytest.raises(InvalidQuery):
        people.to_parquet(tmp_path / "bad", "age > 3", partition_by="age")
    assert not (tmp_path / "bad").exists()


def test_empty_collection_gives_an_empty_directory(tmp_path: Path) -> None:
    with tk.Peer(memory=True) as peer:
        coll = peer.new_db("e").new_collection("Empty", schema=SCHEMA)
        coll.to_parquet(tmp_path / "e", partition_by="city")
        assert (tmp_path / "e").is_dir() and not any((tmp_path / "e").iterdir())
        (tmp_path / "e" / "old.parquet").write_text("x")
        with pytest.raises(InvalidInput, match="not empty"):
            coll.to_parquet(tmp_path / "e", partition_by="city")
        coll.to_parquet(tmp_path / "e", partition_by="city", overwrite=True)
        assert not any((tmp_path / "e").iterdir())  # replaced by the empty dataset
        with pytest.raises(InvalidInput, match="no such column"):
            peer.new_db("f").new_collection("Bare").to_parquet(tmp_path / "f", partition_by="x")


@pytest.mark.parametrize(
    ("partition_by", "message"),
    [
        ("nope", "no such column"),
        (["city", "nope"], "no such column"),
        ("_id", "one directory per document"),
        ("tags", "arrays, objects"),
        ("loose", "arrays, objects"),
        ([], "at least one column"),
        (["city", "city"], "twice"),
        ([1], "column name"),
        (3, "column name"),
    ],
)
def test_bad_partition_columns_write_nothing(
    people: Any, tmp_path: Path, partition_by: Any, message: str
) -> None:
    with pytest.raises(InvalidInput, match=message):
        people.to_parquet(tmp_path / "out", partition_by=partition_by)
    assert list(tmp_path.iterdir()) == []


def test_targets_that_are_not_free(people: Any, tmp_path: Path) -> None:
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("mine")
    with pytest.raises(InvalidInput, match="not empty; pass overwrite=True"):
        people.to_parquet(busy, partition_by="city")
    assert [p.name for p in busy.iterdir()] == ["keep.txt"]
    afile = tmp_path / "file"
    afile.write_text("x")
    with pytest.raises(InvalidInput, match="is a file"):
        people.to_parquet(afile, partition_by="city", overwrite=True)
    assert afile.read_text() == "x"

    people.to_parquet(busy, partition_by="city", overwrite=True)
    assert not (busy / "keep.txt").exists()
    assert _hive(busy).num_rows == len(people)
    empty = tmp_path / "empty"
    empty.mkdir()
    people.to_parquet(empty, partition_by="city")  # an empty directory is free
    assert _hive(empty).num_rows == len(people)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["busy", "empty", "file"]  # no leftovers


def test_too_many_partitions_leave_the_target_as_it_was(people: Any, tmp_path: Path) -> None:
    target = tmp_path / "out"
    people.to_parquet(target, partition_by="city")
    before = sorted(os.fspath(p.relative_to(target)) for p in target.rglob("*"))
    with pytest.raises(InvalidInput, match="more than 3 directories"):
        people.to_parquet(target, partition_by="name", overwrite=True, max_partitions=3)
    assert sorted(os.fspath(p.relative_to(target)) for p in target.rglob("*")) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    for bad in (0, -1, True, 1.5):
        with pytest.raises(InvalidInput, match="positive integer"):
            people.to_parquet(tmp_path / "x", partition_by="city", batch_size=bad)
    assert not (tmp_path / "x").exists()


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    docs=st.lists(
        st.fixed_dictionaries(
            {"g": st.sampled_from(["a", "b", "c"]), "k": st.integers(0, 3)},
            optional={
                "x": st.one_of(st.integers(-5, 5), st.floats(-5, 5, allow_nan=False)),
                "s": st.text(max_size=3),
                "o": st.fixed_dictionaries({"y": st.booleans()}),
            },
        ),
        max_size=30,
    ),
    batch=st.integers(1, 12),
)
def test_any_batch_size_gives_the_collections_table(
    tmp_path: Path, docs: list[dict[str, Any]], batch: int
) -> None:
    """Streamed in batches of any size, the dataset holds what to_arrow gives, typed alike."""
    with tk.Peer(memory=True) as peer:
        coll = peer.new_db("p").new_collection("C")
        if docs:
            coll.create(*docs)
        target = tmp_path / f"t{batch}-{len(docs)}-{os.urandom(4).hex()}"
        if not docs:  # no schema, no documents: no column g
            with pytest.raises(InvalidInput, match="no such column"):
                coll.to_parquet(target, partition_by="g", batch_size=batch)
            assert not target.exists()
            return
        coll.to_parquet(target, partition_by="g", batch_size=batch)
        table = _hive(target)
        whole = coll.to_arrow()
        columns = [c for c in whole.column_names if c != "g"]
        for name in columns:
            assert table.schema.field(name).type == whole.schema.field(name).type, name
        assert _rows(table, ["g", *columns]) == _rows(whole, ["g", *columns])
