"""Notebook views through tk.Client equal the embedded ones: the same frame operations on
an embedded peer and on a daemon subprocess give equal DataFrames (dtypes included), equal
query results and equal Arrow schemas; what needs the record log is a clear error."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pandas.testing as pdt
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from api_procs import Daemon

import threadkit as tk
from threadkit import errors
from threadkit.api.client import RemoteCollection

pytestmark = pytest.mark.slow

UTC = "datetime64[ns, UTC]"
SCHEMA = {
    "type": "object",
    "properties": {
        "_id": {"type": "string"},
        "name": {"type": "string"},
        "age": {"type": "integer"},
        "score": {"type": "number"},
        "active": {"type": "boolean"},
        "born": {"type": "string", "format": "date-time"},
        "day": {"type": "string", "format": "date"},
        "tags": {"type": "array", "items": {"type": "string"}},
        "address": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "zip": {"type": "integer"}},
        },
    },
    "required": ["name"],
}
DOCS = [
    {
        "_id": "p1",
        "name": "Ann",
        "age": 31,
        "score": 3.0,
        "active": True,
        "born": "1993-02-03T04:05:06.000000Z",
        "day": "2024-05-01",
        "tags": ["x"],
        "address": {"city": "Oslo", "zip": 150},
        "note": "first",
        "mixed": 1,
    },
    {
        "_id": "p2",
        "name": "Ben",
        "age": 22,
        "score": 2.5,
        "active": False,
        "born": "2002-07-08T00:00:00.000000Z",
        "tags": [],
        "address": {"city": "Lima"},
        "mixed": "one",
        "extra": {"n": 7},
    },
    {
        "_id": "p3",
        "name": "Cid",
        "age": 47,
        "active": True,
        "day": "2023-01-02",
        "tags": ["x", "y"],
        "address": {"city": "Oslo", "zip": 151},
        "note": "third",
    },
    {"_id": "p4", "name": "Dee", "score": -1.25, "address": {"city": "Rome"}},
    {"_id": "p5", "name": "Eve", "age": 60, "score": 10, "active": False, "extra": {"n": 1}},
]
INDEXES = [{"path": "name", "unique": True}, {"path": "age"}]


@pytest.fixture(scope="module")
def sides(daemon: Daemon) -> Iterator[tuple[Any, Any]]:
    """An embedded peer and a client of the daemon (the two one-line alternatives)."""
    with (
        tk.Peer(memory=True, network=False) as peer,
        tk.Client(daemon.target, timeout=20) as client,
    ):
        yield peer, client


@pytest.fixture(scope="module")
def people(sides: tuple[Any, Any]) -> tuple[Any, Any]:
    """The same collection, with the same documents, on both sides: (embedded, remote)."""
    out = []
    for peer in sides:
        db = peer.new_db("frames")
        coll = db.new_collection("People", schema=SCHEMA, indexes=INDEXES)
        assert coll.create(*DOCS) == [d["_id"] for d in DOCS]
        out.append(coll)
    embedded, remote = out
    assert isinstance(embedded, tk.Collection)
    assert isinstance(remote, RemoteCollection)
    return embedded, remote


def assert_same_frame(embedded: pd.DataFrame, remote: pd.DataFrame) -> None:
    """Equal columns, dtypes, index and values; ``_mod`` (a write time) checked by form."""
    assert list(remote.columns) == list(embedded.columns)
    assert remote.dtypes.to_dict() == embedded.dtypes.to_dict()
    if "_mod" in embedded.columns:
        assert embedded.columns[-1] == "_mod"
        assert str(remote["_mod"].dtype) == UTC
        assert remote["_mod"].notna().all()
    pdt.assert_frame_equal(
        remote.drop(columns="_mod", errors="ignore"),
        embedded.drop(columns="_mod", errors="ignore"),
        check_exact=True,
    )


def outcome(fn: Callable[[], Any]) -> Any:
    """A frame, or the class of the threadkit error it raised."""
    try:
        return fn()
    except errors.ThreadkitError as exc:
        return type(exc)


def assert_same_outcome(embedded: Any, remote: Any) -> None:
    if isinstance(embedded, type):
        assert remote is embedded
    else:
        assert isinstance(remote, pd.DataFrame), remote
        assert_same_frame(embedded, remote)


def test_whole_collection_frame_is_schema_typed(people: tuple[Any, Any]) -> None:
    embedded, remote = people
    frame = remote.df
    assert_same_frame(embedded.df, frame)
    assert_same_frame(embedded.to_pandas(), remote.to_pandas())
    # the schema's dtypes, not pandas' guesses from the JSON values
    assert frame.dtypes.astype(str).to_dict() == {
        "name": "string",
        "age": "Int64",
        "score": "float64",
        "active": "boolean",
        "born": UTC,
        "day": UTC,
        "tags": "object",
        "address.city": "string",
        "address.zip": "Int64",
        "note": "string",
        "mixed": "object",
        "extra.n": "Int64",
        "_mod": UTC,
    }
    assert frame.index.name == "_id"
    assert frame.index.tolist() == ["p1", "p2", "p3", "p4", "p5"]
    assert frame.loc["p1", "tags"] == ["x"]


QUERIES = [
    None,
    tk.where("age").gt(30),
    tk.where("address.city").eq("Oslo"),
    tk.where("name").eq("Ann").or_(tk.where("name").eq("Eve")),
    tk.Query().order_by("age"),
    tk.Query().order_by_desc("name").skip(1).limit(2),
    tk.where("score").le(2.5).order_by_desc("score"),
    tk.where("name").eq("Nobody"),
    tk.where("age").eq("old"),  # a type mismatch: an error on both sides
]


@pytest.mark.parametrize("query", QUERIES, ids=repr)
def test_to_pandas_with_a_query(people: tuple[Any, Any], query: Any) -> None:
    embedded, remote = people
    expected = outcome(lambda: embedded.to_pandas(query))
    assert_same_outcome(expected, outcome(lambda: remote.to_pandas(query)))


def test_query_must_be_a_query(people: tuple[Any, Any]) -> None:
    for coll in people:
        with pytest.raises(errors.InvalidQuery):
            coll.to_pandas("age > 3")


TEXTS = [
    "age > 30",
    "age > 30 and address.city in ['Oslo', 'Lima']",
    "18 <= age < 50",
    "not active",
    "active",
    "score >= 2.5 or tags.isna()",
    "`address.city` == 'Oslo'",
    "name.isin(['Ann', 'Cid'])",
    "note.notna()",
    "extra.n > 2",
    "born > '2000-01-01'",  # compiled against the schema: date-time text
    "day == '2024-05-01'",
    "age > 'x'",  # refused by the compiler, from the schema
    "age * 2 > 3",
    "age >",
]


@pytest.mark.parametrize("text", TEXTS)
def test_query_text(people: tuple[Any, Any], text: str) -> None:
    embedded, remote = people
    expected = outcome(lambda: embedded.query(text))
    got = outcome(lambda: remote.query(text))
    assert_same_outcome(expected, got)


def test_query_text_sees_the_callers_variables(people: tuple[Any, Any]) -> None:
    embedded, remote = people
    cutoff = pd.Timestamp("2000-01-01", tz="UTC")  # noqa: F841 (used as @cutoff)
    cities = ["Lima", "Rome"]  # noqa: F841 (used as @cities)
    expected = embedded.query("born < @cutoff or address.city in @cities")
    got = remote.query("born < @cutoff or address.city in @cities")
    assert_same_frame(expected, got)
    assert got.index.tolist() == ["p1", "p2", "p4"]
    given = remote.query("age > @limit", {"limit": 40})
    assert_same_frame(embedded.query("age > @limit", {"limit": 40}), given)
    assert given.index.tolist() == ["p3", "p5"]


def test_column_expressions(people: tuple[Any, Any]) -> None:
    embedded, remote = people
    assert dir(remote.c) == dir(embedded.c)
    assert "address" in dir(remote.c)
    for make in [
        lambda c: c.age > 30,
        lambda c: (c.age > 20) & (c.address.city == "Oslo"),
        lambda c: ~c.active,
        lambda c: c.name.isin(["Ben", "Dee"]),
        lambda c: c.born.between("1990-01-01", "2000-01-01"),
        lambda c: c.extra.n.notna() | (c.score < 0),
        lambda c: c.age == "x",
    ]:
        expected = outcome(lambda m=make: embedded[m(embedded.c)])
        assert_same_outcome(expected, outcome(lambda m=make: remote[m(remote.c)]))
        assert_same_outcome(expected, outcome(lambda m=make: remote.query(m(remote.c))))


def test_lazy_sort_and_head(people: tuple[Any, Any]) -> None:
    embedded, remote = people
    for make in [
        lambda c: c.lazy("age > 20").sort_values("age", ascending=False).head(2),
        lambda c: c.lazy().sort_values(["name"]).head(3),
        lambda c: c.lazy(c.c.active).head(0),
    ]:
        assert_same_frame(make(embedded).to_pandas(), make(remote).to_pandas())
    assert make(remote).to_pandas().empty
    assert len(remote.lazy("age > 20")) == 4


def test_arrow_and_parquet(people: tuple[Any, Any], tmp_path: Path) -> None:
    embedded, remote = people
    for query in (None, tk.where("age").gt(30)):
        a, b = embedded.to_arrow(query), remote.to_arrow(query)
        assert b.schema == a.schema
        assert b.column_names[0] == "_id" and b.column_names[-1] == "_mod"
        assert b.drop_columns(["_mod"]).equals(a.drop_columns(["_mod"]))
    embedded.to_parquet(tmp_path / "embedded.parquet")
    remote.to_parquet(tmp_path / "remote.parquet", tk.Query().order_by("age"))
    written = pq.read_table(tmp_path / "remote.parquet")
    assert written.schema == pq.read_table(tmp_path / "embedded.parquet").schema
    assert written.column("_id").to_pylist() == ["p4", "p2", "p1", "p3", "p5"]


def test_arrow_streams_read_by_duckdb_and_polars(people: tuple[Any, Any]) -> None:
    embedded, remote = people
    tables = [pa.RecordBatchReader.from_stream(c).read_all() for c in (embedded, remote)]
    assert tables[1].schema == tables[0].schema
    assert tables[1].drop_columns(["_mod"]).equals(tables[0].drop_columns(["_mod"]))
    frames = [pl.DataFrame(c).drop("_mod") for c in (embedded, remote)]
    assert frames[1].equals(frames[0])
    assert frames[1]["age"].to_list() == [31, 22, 47, None, 60]
    grouped = 'select "address.city" as city, avg(age) from {} group by city order by city'
    assert (
        duckdb.sql(grouped.format("remote")).fetchall()
        == duckdb.sql(grouped.format("embedded")).fetchall()
    )
    lazy = [c.lazy("age > 30").sort_values("age") for c in (embedded, remote)]
    assert [pl.DataFrame(x)["_id"].to_list() for x in lazy] == [["p1", "p3", "p5"]] * 2


def test_identity_is_refused_remotely(people: tuple[Any, Any]) -> None:
    _, remote = people
    other = tk.Identity.generate().public
    for call in (
        lambda: remote.to_pandas(identity=other),
        lambda: remote.to_arrow(None, other),
        lambda: remote.query("age > 3", identity=str(other)),
    ):
        with pytest.raises(errors.InvalidInput, match="get_token"):
            call()


def _ingest_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "_id": ["r1", "r2", "r3", "r4", "r5"],
            "name": ["Ada", "Lin", None, "Zoë", "Kim"],
            "age": pd.array([36, None, 5, 70, 12], dtype="Int64"),
            "score": [0.5, float("nan"), 2.0, -1.25, 1e9],
            "ok": [True, False, True, False, True],
            "when": pd.to_datetime(
                [
                    "2024-01-01 10:00",
                    None,
                    "2024-03-01 00:00:00.123456",
                    "1999-12-31",
                    "2000-01-01",
                ],
                format="ISO8601",
            ),
            "meta.reads": [1, 2, 3, 4, 5],
            "tags": [["x"], [], ["y", "z"], [1, "mixed"], None],
        }
    )


def test_from_pandas_and_create_many(sides: tuple[Any, Any]) -> None:
    frame = _ingest_frame()
    results = []
    for peer in sides:
        db = peer.new_db("ingest")
        calls: list[tuple[int, int]] = []
        coll = db.from_pandas(
            "Rows",
            frame,
            indexes=["name"],
            chunk_size=2,
            progress=lambda done, total, calls=calls: calls.append((done, total)),
        )
        assert calls == [(2, 5), (4, 5), (5, 5)]
        more = frame.assign(_id=[f"s{i}" for i in range(5)], name=list("abcde"))
        assert coll.create_many(more, chunk_size=3, progress=False) == more["_id"].tolist()
        results.append((db.collection_info("Rows"), coll.to_pandas(), coll.query("age > 10")))
    (info_a, frame_a, query_a), (info_b, frame_b, query_b) = results
    assert info_b == info_a
    assert_same_frame(frame_a, frame_b)
    assert_same_frame(query_a, query_b)
    assert str(frame_b["when"].dtype) == UTC and str(frame_b["age"].dtype) == "Int64"
    assert len(frame_b) == 10


def test_create_many_failing_chunk_says_the_same(sides: tuple[Any, Any]) -> None:
    frame = pd.DataFrame({"name": ["a", "b", "c", "a"], "n": [1, 2, 3, 4]})
    seen = []
    for peer in sides:
        coll = peer.new_db("dupes").new_collection("Rows", indexes=[tk.Index("name", unique=True)])
        with pytest.raises(errors.UniqueViolation) as info:
            coll.create_many(frame, chunk_size=2)
        seen.append((info.value.__notes__, sorted(coll.to_pandas()["name"])))
    assert seen[1] == seen[0]
    assert seen[0] == (
        ["rows 2-3 of 4 were not written; rows 0-1 were (one transaction per 2 rows)"],
        ["a", "b"],
    )


def test_schema_change_is_seen_by_a_client_that_cached_the_old_one(
    sides: tuple[Any, Any], daemon: Daemon
) -> None:
    text = "when == '2024-05-01 12:00'"
    old = {"properties": {"when": {"type": "string"}}}
    new = {"properties": {"when": {"type": "string", "format": "date-time"}}}
    doc = {"_id": "w", "when": "2024-05-01T12:00:00.000000Z"}
    results = []
    for peer in sides:
        db = peer.new_db("schema-change")
        coll = db.new_collection("Times", schema=old)
        coll.create(doc)
        before = coll.query(text)  # plain text: compared as written, no match
        if isinstance(peer, tk.Client):
            # another client changes the schema; this one still has the old one cached
            with tk.Client(daemon.target, timeout=20) as other:
                other.get_db(db.id).update_collection("Times", schema=new)
            assert peer.schemas[(db.id.to_bytes(), "Times")]["properties"]["when"] == {
                "type": "string"
            }
        else:
            db.update_collection("Times", schema=new)
        after = coll.query(text)  # a date-time now: the text is read as a time
        results.append((before, after))
    (before_a, after_a), (before_b, after_b) = results
    assert_same_frame(before_a, before_b)
    assert_same_frame(after_a, after_b)
    assert before_b.empty and str(before_b["when"].dtype) == "string"
    assert after_b.index.tolist() == ["w"] and str(after_b["when"].dtype) == UTC


def test_empty_and_schema_less_collections(sides: tuple[Any, Any]) -> None:
    frames = []
    for peer in sides:
        db = peer.new_db("empty")
        typed = db.new_collection("Typed", schema=SCHEMA)
        loose = db.new_collection("Loose")
        loose.create({"_id": "a", "n": 1, "x": {"y": True}}, {"_id": "b", "n": 2.5, "s": "t"})
        frames.append((typed.df, loose.df, typed.to_arrow().schema))
    (typed_a, loose_a, arrow_a), (typed_b, loose_b, arrow_b) = frames
    assert_same_frame(typed_a, typed_b)
    assert typed_b.empty and "address.zip" in typed_b.columns
    assert_same_frame(loose_a, loose_b)
    assert arrow_b == arrow_a


def test_missing_collection(sides: tuple[Any, Any]) -> None:
    for peer in sides:
        db = peer.new_db("gone")
        coll = db.new_collection("Gone")
        db.delete_collection("Gone")
        with pytest.raises(errors.CollectionNotFound):
            coll.to_pandas()
        with pytest.raises(errors.CollectionNotFound):
            coll.query("a > 1")


def test_time_travel_and_history_are_clear_errors_remotely(people: tuple[Any, Any]) -> None:
    embedded, remote = people
    # embedded: they work
    assert isinstance(embedded.at(embedded.db.heads()), pd.DataFrame)
    assert isinstance(embedded.diff(embedded.db.heads()), pd.DataFrame)
    assert len(embedded.db.history("People")) > len(DOCS)  # the documents and the collection
    # remote: a clear error of the tree, saying why and what to do
    for call in (
        lambda: remote.at(pd.Timestamp.now(tz="UTC")),
        lambda: remote.diff("2024-01-01"),
        lambda: remote.db.history("People"),
        lambda: remote.db.conflicts(),
        lambda: remote.db.heads(),
        lambda: remote.db.dag(),
        lambda: remote.db.plot_dag(),
        lambda: remote.db.logs(),
        lambda: remote.db.lost_writes(),
    ):
        with pytest.raises(errors.InvalidInput, match=r"record log.*embedded peer"):
            call()
