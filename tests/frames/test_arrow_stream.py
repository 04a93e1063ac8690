"""Collections and lazy results as Arrow C streams (``__arrow_c_stream__``), read by DuckDB,
Polars and pyarrow: the same table as ``to_arrow`` (column types, nullable integers,
date-times, nested fields as dot-named columns, arrays as lists), an empty collection, query
results, and no copy of the cached frame's buffers on the way to Polars."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import duckdb
import polars as pl
import pyarrow as pa
import pytest

import threadkit as tk

SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "age": {"type": "integer"},
        "score": {"type": "number"},
        "active": {"type": "boolean"},
        "born": {"type": "string", "format": "date-time"},
        "tags": {"type": "array", "items": {"type": "string"}},
        "address": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "zip": {"type": "integer"}},
        },
    },
}
DOCS = [
    {
        "_id": "p1",
        "name": "Ann",
        "age": 31,
        "score": 3.0,
        "active": True,
        "born": "1993-02-03T04:05:06.000000Z",
        "tags": ["x"],
        "address": {"city": "Oslo", "zip": 150},
    },
    {"_id": "p2", "name": "Ben", "score": 2.5, "tags": [], "address": {"city": "Lima"}},
    {"_id": "p3", "name": "Cid", "age": 47, "active": False, "address": {"city": "Oslo"}},
    {"_id": "p4", "name": "Dee", "age": 22, "score": -1.25},
]
TYPES = {
    "_id": pa.large_string(),
    "active": pa.bool_(),
    "address.city": pa.large_string(),
    "address.zip": pa.int64(),
    "age": pa.int64(),
    "born": pa.timestamp("ns", tz="UTC"),
    "name": pa.large_string(),
    "score": pa.float64(),
    "tags": pa.list_(pa.string()),
    "_mod": pa.timestamp("ns", tz="UTC"),
}


@pytest.fixture
def peer() -> Iterator[tk.Peer]:
    with tk.Peer(memory=True, network=False) as p:
        yield p


@pytest.fixture
def people(peer: tk.Peer) -> tk.Collection:
    coll = peer.new_db("arrow").new_collection("People", schema=SCHEMA, indexes=["age"])
    coll.create(*DOCS)
    return coll


def stream_table(source: Any) -> pa.Table:
    """What a consumer of the PyCapsule stream reads."""
    return pa.RecordBatchReader.from_stream(source).read_all()


def test_the_stream_is_the_arrow_table(people: tk.Collection) -> None:
    table = stream_table(people)
    assert table.equals(people.to_arrow())
    assert {f.name: f.type for f in table.schema} == TYPES
    assert table.column_names[0] == "_id" and table.column_names[-1] == "_mod"
    assert table.column("_id").to_pylist() == ["p1", "p2", "p3", "p4"]
    assert table.column("age").to_pylist() == [31, None, 47, 22]
    assert table.column("address.zip").to_pylist() == [150, None, None, None]
    assert table.column("tags").to_pylist() == [["x"], [], None, None]
    born = table.column("born").to_pylist()
    assert born[0] == datetime(1993, 2, 3, 4, 5, 6, tzinfo=UTC) and born[1:] == [None] * 3


def test_duckdb_reads_a_collection_by_its_name(people: tk.Collection) -> None:
    # the flattened field's column is named "address.city": DuckDB reads it quoted
    rows = duckdb.sql(
        'select "address.city" as city, avg(age), count(*) from people '
        "group by city order by city nulls last"
    ).fetchall()
    assert rows == [("Lima", None, 1), ("Oslo", 39.0, 2), (None, 22.0, 1)]
    typed = duckdb.sql("select * from people").types
    assert [str(t) for t in typed] == [
        "VARCHAR",
        "BOOLEAN",
        "VARCHAR",
        "BIGINT",
        "BIGINT",
        "TIMESTAMPTZ_NS",
        "VARCHAR",
        "DOUBLE",
        "VARCHAR[]",
        "TIMESTAMPTZ_NS",
    ]
    nulls = duckdb.sql("select _id from people where age is null").fetchall()
    assert nulls == [("p2",)]
    mods = duckdb.sql("select count(*) from people where _mod <= now()").fetchall()
    assert mods == [(4,)]


def test_polars_reads_a_collection(people: tk.Collection) -> None:
    frame = pl.DataFrame(people)
    assert frame.schema == {
        "_id": pl.String,
        "active": pl.Boolean,
        "address.city": pl.String,
        "address.zip": pl.Int64,
        "age": pl.Int64,
        "born": pl.Datetime("ns", "UTC"),
        "name": pl.String,
        "score": pl.Float64,
        "tags": pl.List(pl.String),
        "_mod": pl.Datetime("ns", "UTC"),
    }
    assert frame["age"].to_list() == [31, None, 47, 22]
    assert frame["tags"].to_list() == [["x"], [], None, None]
    # polars.from_arrow gives a struct Series for a stream that is not a pyarrow object
    series = pl.from_arrow(people)
    assert isinstance(series, pl.Series)
    assert series.struct.unnest().equals(frame)


def test_polars_reads_the_cached_frames_buffers(peer: tk.Peer) -> None:
    coll = peer.new_db("buffers").new_collection(
        "Points", schema={"properties": {"x": {"type": "number"}, "n": {"type": "integer"}}}
    )
    coll.create(*({"x": i / 2, "n": i} for i in range(1000)))
    cached = coll.df  # shares its buffers with the cached frame (copy-on-write)
    frame = pl.DataFrame(coll)

    def address(values: Any) -> int:
        return int(values.__array_interface__["data"][0])

    assert address(frame["x"].to_numpy(allow_copy=False)) == address(cached["x"].to_numpy())
    assert address(frame["n"].to_numpy(allow_copy=False)) == address(cached["n"].array._data)
    assert frame["n"].to_list() == list(range(1000))


def test_an_empty_collection(peer: tk.Peer) -> None:
    db = peer.new_db("empty")
    typed = db.new_collection("Typed", schema=SCHEMA)
    loose = db.new_collection("Loose")
    for coll in (typed, loose):
        table = stream_table(coll)
        assert table.num_rows == 0
        assert table.schema.equals(coll.to_arrow().schema)
        assert pl.DataFrame(coll).height == 0
        assert pl.DataFrame(coll).columns == table.column_names
    assert duckdb.sql("select count(*) from typed").fetchall() == [(0,)]
    assert duckdb.sql("select count(*) from loose").fetchall() == [(0,)]


def test_query_results(people: tk.Collection) -> None:
    lazy = people.lazy("age > 25").sort_values("age", ascending=False)
    table = stream_table(lazy)
    assert table.equals(lazy.to_arrow())
    assert table.column("_id").to_pylist() == ["p3", "p1"]
    assert pl.DataFrame(lazy)["name"].to_list() == ["Cid", "Ann"]
    assert duckdb.sql("select name from lazy").fetchall() == [("Cid",), ("Ann",)]
    nothing = people.lazy("age > 25").head(0)
    assert stream_table(nothing).num_rows == 0
    # an array column takes its Arrow type from its values: with none, the null type
    empty = stream_table(nothing).schema
    assert empty.field("tags").type == pa.null()
    assert empty.remove(empty.get_field_index("tags")).equals(
        table.schema.remove(table.schema.get_field_index("tags"))
    )
    # coll.query gives a pandas DataFrame, which each tool reads its own way: pandas'
    # stream has _id (the index) as a column; Polars and DuckDB leave the index out
    result = people.query("age > 25")
    assert sorted(stream_table(result).column("_id").to_pylist()) == ["p1", "p3"]
    assert pl.from_pandas(result, include_index=True)["_id"].to_list() == ["p1", "p3"]
    assert "_id" not in pl.DataFrame(result).columns
    assert duckdb.sql("select name from result order by name").fetchall() == [("Ann",), ("Cid",)]


def test_the_stream_follows_writes(people: tk.Collection) -> None:
    assert pl.DataFrame(people).height == 4
    people.create({"_id": "p5", "name": "Eve", "age": 60})
    people.delete("p1")
    frame = pl.DataFrame(people)
    assert frame["_id"].to_list() == ["p2", "p3", "p4", "p5"]
    assert duckdb.sql("select max(age) from people").fetchall() == [(60,)]


def test_a_requested_schema_is_honoured(people: tk.Collection) -> None:
    wanted = pa.schema([(n, pa.string() if n == "name" else t) for n, t in TYPES.items()])
    capsule = people.__arrow_c_stream__(wanted.__arrow_c_schema__())
    reader = pa.RecordBatchReader._import_from_c_capsule(capsule)
    assert reader.schema == wanted
    assert reader.read_all().column("name").to_pylist() == ["Ann", "Ben", "Cid", "Dee"]
