"""Frames: dtypes from the schema, from_pandas round trips, read filters, the incremental
cache (decodes counted), Arrow/Parquet, bulk writes, the column decoder, bad inputs."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import cbor2
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import threadkit as tk
from threadkit.errors import (
    CollectionExists,
    InvalidDocument,
    InvalidInput,
    InvalidQuery,
    UniqueViolation,
)
from threadkit.frames import cache, cbor_columns
from threadkit.frames.dtypes import COLUMN_ORDER_KEY, schema_from_frame, schema_targets
from threadkit.frames.frame import (
    frame_from_documents,
    frame_to_arrow,
    to_arrow,
    to_pandas,
    to_parquet,
)
from threadkit.frames.ingest import create_many, frame_documents, from_pandas

UTC = "datetime64[ns, UTC]"


@pytest.fixture
def peer() -> Iterator[tk.Peer]:
    with tk.Peer(memory=True) as p:
        yield p


@pytest.fixture
def db(peer: tk.Peer) -> Any:
    return peer.new_db("frames")


def _sample() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "name": ["Ada", "Lin", None, "Zoë"],
            "age": pd.array([36, None, 5, 70], dtype="Int64"),
            "n": [1, 2, 3, 4],
            "score": [0.5, np.nan, 2.0, -1.25],
            "ok": [True, False, True, False],
            "maybe": pd.array([True, None, False, None], dtype="boolean"),
            "when": pd.to_datetime(
                ["2024-01-01 10:00:00", None, "2024-03-01 00:00:00.123456", "1999-12-31"],
                format="ISO8601",
            ),
            "meta.reads": [1, 2, 3, 4],
            "meta.tag": ["a", "b", None, "d"],
            "tags": [["x"], [], ["y", "z"], [1, "mixed"]],
            "s": pd.Series(["p", "q", "r", None], dtype="string"),
            "f32": np.array([1.5, 2.5, 3.5, 4.5], dtype="float32"),
        }
    )


def _normalised(frame: pd.DataFrame) -> pd.DataFrame:
    """What reading gives back for ``_sample()`` (the documented normalisations)."""
    out = frame.copy()
    for name in ("n", "meta.reads"):
        out[name] = out[name].astype("Int64")
    for name in ("name", "meta.tag", "s"):
        out[name] = out[name].astype("string")
    out["ok"] = out["ok"].astype("boolean")
    out["f32"] = out["f32"].astype("float64")
    out["when"] = out["when"].dt.tz_localize("UTC").astype(UTC)
    return out


# --- dtypes --------------------------------------------------------------------------


def test_round_trip_from_pandas_to_pandas(db: Any) -> None:
    frame = _sample()
    coll = from_pandas(db, "Sample", frame)
    out = to_pandas(coll)
    assert out.index.name == "_id"
    assert str(out.index.dtype) == "string"
    assert list(out.columns) == [*frame.columns, "_mod"]
    assert str(out["_mod"].dtype) == UTC
    back = out.drop(columns="_mod").reset_index(drop=True)
    pd.testing.assert_frame_equal(back, _normalised(frame))


def test_round_trip_with_ids_and_a_named_index(db: Any) -> None:
    frame = pd.DataFrame({"v": [1.0, 2.0]}, index=pd.Index(["b", "a"], name="_id"))
    coll = from_pandas(db, "ById", frame)
    out = to_pandas(coll)
    assert list(out.index) == ["a", "b"]  # _id order
    assert out.loc["b", "v"] == 1.0
    named = pd.DataFrame({"v": [1, 2]}, index=pd.Index([10, 20], name="year"))
    out = to_pandas(from_pandas(db, "Named", named))
    assert out["year"].tolist() == [10, 20]
    unnamed = pd.DataFrame({"v": [1, 2]}, index=[7, 9])
    assert "index" not in to_pandas(from_pandas(db, "Unnamed", unnamed)).columns


def test_schema_inferred_from_dtypes() -> None:
    schema = schema_from_frame(_sample())
    props = schema["properties"]
    assert props["age"] == {"type": "integer"}
    assert props["score"] == {"type": "number"}
    assert props["ok"] == {"type": "boolean"} == props["maybe"]
    assert props["name"] == {"type": "string"} == props["s"]
    assert props["when"] == {"type": "string", "format": "date-time"}
    assert props["meta"]["properties"]["reads"] == {"type": "integer"}
    assert props["tags"] == {"type": "array"}
    assert schema[COLUMN_ORDER_KEY][0] == "name"
    mixed = schema_from_frame(pd.DataFrame({"m": pd.Series([1, "a"], dtype=object)}))
    assert mixed["properties"]["m"] == {}


def test_dtypes_follow_the_schema(db: Any) -> None:
    schema = {
        "type": "object",
        "properties": {
            "i": {"type": "integer"},
            "x": {"type": ["number", "null"]},
            "b": {"type": "boolean"},
            "s": {"type": "string"},
            "t": {"type": "string", "format": "date-time"},
            "d": {"type": "string", "format": "date"},
            "arr": {"type": "array"},
            "meta": {"$ref": "#/definitions/Meta"},
        },
        "definitions": {"Meta": {"type": "object", "properties": {"reads": {"type": "integer"}}}},
    }
    coll = db.new_collection("Typed", schema=schema)
    coll.create(
        {
            "i": 1,
            "x": 2,
            "b": True,
            "s": "a",
            "t": "2024-01-01T00:00:00Z",
            "d": "2024-02-03",
            "arr": [1, [2]],
            "meta": {"reads": 3},
        },
        {"extra": "only here"},
    )
    out = to_pandas(coll)
    assert out.dtypes.astype(str).to_dict() == {
        "i": "Int64",
        "x": "float64",
        "b": "boolean",
        "s": "string",
        "t": UTC,
        "d": UTC,
        "arr": "object",
        "meta.reads": "Int64",
        "extra": "string",
        "_mod": UTC,
    }
    first = out.iloc[0]
    assert first["t"] == pd.Timestamp("2024-01-01", tz="UTC")
    assert first["d"] == pd.Timestamp("2024-02-03", tz="UTC")
    assert first["arr"] == [1, [2]]
    assert out["i"].isna().tolist() == [False, True]


def test_inferred_dtypes_and_misfits(db: Any) -> None:
    coll = db.new_collection("Loose")
    coll.create(
        {"i": 1, "f": 1, "m": 1, "b": False, "nested": {"deep": {"x": "y"}}, "nul": None},
        {"i": 2, "f": 2.5, "m": "one", "b": True},
    )
    out = to_pandas(coll)
    assert out.dtypes.astype(str).to_dict() == {
        "i": "Int64",
        "f": "float64",
        "m": "object",
        "b": "boolean",
        "nested.deep.x": "string",
        "nul": "object",
        "_mod": UTC,
    }
    assert out["m"].tolist() == [1, "one"]
    assert out["nul"].tolist() == [None, None]
    typed = db.new_collection(
        "Dates", schema={"properties": {"t": {"type": "string", "format": "date-time"}}}
    )
    typed.create({"t": "2024-01-01T00:00:00Z"}, {"t": "not a date"})
    assert str(to_pandas(typed)["t"].dtype) == "string"


def test_empty_collection(db: Any) -> None:
    coll = db.new_collection("Empty", schema={"properties": {"a": {"type": "integer"}}})
    out = to_pandas(coll)
    assert out.shape == (0, 1)
    assert str(out["a"].dtype) == "Int64"
    assert out.index.name == "_id"


# --- reading paths -------------------------------------------------------------------


def test_query_and_paging(db: Any) -> None:
    coll = db.new_collection("Q", indexes=["n"])
    coll.create([{"n": i, "k": "odd" if i % 2 else "even"} for i in range(10)])
    assert to_pandas(coll, tk.where("n").ge(7))["n"].tolist() == [7, 8, 9]
    paged = to_pandas(coll, tk.where("k").eq("odd").order_by_desc("n").limit(2))
    assert paged["n"].tolist() == [9, 7]
    with pytest.raises(InvalidQuery, match=r"expected a tk\.Query"):
        to_pandas(coll, "n > 1")  # type: ignore[arg-type]


def test_read_filter_applies_for_the_reader(db: Any) -> None:
    other = tk.Identity.generate()  # held by this process: it may read as it
    coll = db.new_collection(
        "Private",
        read_filter="if (instance.owner !== reader) { delete instance.secret } return instance",
    )
    me = coll.db_reader()
    coll.create({"owner": me, "secret": "mine"}, {"owner": str(other.public), "secret": "theirs"})
    mine = to_pandas(coll)
    theirs = to_pandas(coll, identity=other)
    with pytest.raises(tk.errors.PermissionDenied, match="cannot read as"):
        to_pandas(coll, identity=other.public)  # a bare public key proves nothing
    assert sorted(mine["secret"].dropna()) == ["mine"]
    assert sorted(theirs["secret"].dropna()) == ["theirs"]
    hidden = db.new_collection("Hidden", read_filter="return instance.public ? instance : null")
    hidden.create({"public": True, "v": 1}, {"public": False, "v": 2})
    assert to_pandas(hidden)["v"].tolist() == [1]
    hidden.create({"public": True, "v": 3})
    assert to_pandas(hidden)["v"].tolist() == [1, 3]


def test_returned_frame_is_a_copy(db: Any) -> None:
    coll = db.new_collection("Copy")
    coll.create({"a": 1})
    first = to_pandas(coll)
    first.loc[first.index[0], "a"] = 99
    first["new"] = 1
    again = to_pandas(coll)
    assert again["a"].tolist() == [1]
    assert "new" not in again.columns


# --- the incremental cache -----------------------------------------------------------


@pytest.fixture
def decodes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Documents decoded, one entry per decode call."""
    seen: list[int] = []
    real = cbor_columns.decode

    def counting(values: Any) -> Any:
        seen.append(len(values))
        return real(values)

    monkeypatch.setattr(cbor_columns, "decode", counting)
    return seen


def test_unchanged_collection_is_not_decoded_again(db: Any, decodes: list[int]) -> None:
    coll = db.new_collection("Cached")
    ids = coll.create([{"n": i} for i in range(50)])
    to_pandas(coll)
    assert decodes == [50]
    for _ in range(3):
        assert len(to_pandas(coll)) == 50
    assert decodes == [50]
    coll.save({"_id": ids[3], "n": 1000})
    out = to_pandas(coll)  # visible at once: listeners are told inside the commit
    assert out.loc[ids[3], "n"] == 1000
    assert decodes == [50, 1]
    coll.delete(ids[0])
    coll.create({"n": -1})
    out = to_pandas(coll)
    assert len(out) == 50 and ids[0] not in out.index
    assert decodes == [50, 1, 1]  # the deleted one is not decoded


def test_other_collections_do_not_invalidate(db: Any, decodes: list[int]) -> None:
    coll = db.new_collection("Mine")
    coll.create({"n": 1})
    other = db.new_collection("Other")
    to_pandas(coll)
    other.create({"n": 2})
    to_pandas(coll)
    assert decodes == [1]


def test_query_entries_are_incremental(db: Any, decodes: list[int]) -> None:
    # indexed: a query that scans is answered from the whole frame (tests/frames/test_select.py)
    coll = db.new_collection("QI", indexes=["n"])
    ids = coll.create([{"n": i} for i in range(20)])
    query = tk.where("n").ge(10)
    assert len(to_pandas(coll, query)) == 10
    coll.save({"_id": ids[0], "n": 50})  # now matches
    coll.save({"_id": ids[15], "n": 1})  # no longer matches
    out = to_pandas(coll, query)
    assert sorted(out["n"]) == [*range(10, 15), *range(16, 20), 50]
    assert decodes[-1] == 1  # only the document that now matches


def test_config_change_rebuilds(db: Any) -> None:
    coll = db.new_collection("Evolving")
    coll.create({"when": "2024-01-01T00:00:00Z"})
    assert str(to_pandas(coll)["when"].dtype) == "string"
    db.update_collection(
        "Evolving", schema={"properties": {"when": {"type": "string", "format": "date-time"}}}
    )
    assert str(to_pandas(coll)["when"].dtype) == UTC


def test_feed_overflow_rebuilds(db: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cache, "FEED_SIZE", 4)
    coll = db.new_collection("Busy")
    coll.create({"n": 0})
    to_pandas(coll)
    for i in range(1, 20):
        coll.create({"n": i})
    assert to_pandas(coll)["n"].tolist() == list(range(20))


def test_dtype_change_rebuilds(db: Any) -> None:
    coll = db.new_collection("Drift")
    ids = coll.create({"v": 1}, {"v": 2})
    assert str(to_pandas(coll)["v"].dtype) == "Int64"
    coll.save({"_id": ids[0], "v": "one"})
    assert to_pandas(coll)["v"].tolist() == ["one", 2]
    coll.delete(ids[0])
    assert str(to_pandas(coll)["v"].dtype) == "Int64"


_ops = st.lists(
    st.tuples(
        st.sampled_from(["create", "save", "delete"]),
        st.integers(0, 7),
        st.one_of(
            st.none(),
            st.integers(-5, 5),
            st.floats(-2, 2),
            st.text("ab", max_size=2),
            st.booleans(),
        ),
    ),
    max_size=12,
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops=_ops)
def test_incremental_equals_fresh(ops: list[tuple[str, int, Any]]) -> None:
    with tk.Peer(memory=True) as peer:
        db = peer.new_db("inc")
        coll = db.new_collection("Inc")
        slots = [f"id{i}" for i in range(8)]
        for action, slot, value in ops:
            doc: dict[str, Any] = {"_id": slots[slot], "k": slot}
            if value is not None:
                doc["v" if slot % 2 else "w"] = value
            if action == "create" and not coll.has(slots[slot]):
                coll.create(doc)
            elif action == "save":
                coll.save(doc)
            elif action == "delete":
                coll.delete(slots[slot])
            incremental = to_pandas(coll)
            cache.clear(db)
            fresh = to_pandas(coll)
            pd.testing.assert_frame_equal(incremental, fresh, check_like=True)


# --- arrow and parquet ---------------------------------------------------------------


def test_to_arrow_and_parquet(db: Any, tmp_path: Any) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    coll = from_pandas(db, "Arrow", _sample())
    table = to_arrow(coll)
    assert table.column_names[0] == "_id"
    assert table.schema.field("age").type == pa.int64()
    assert table.schema.field("when").type == pa.timestamp("ns", tz="UTC")
    assert table.schema.field("tags").type == pa.large_string()  # mixed lists → JSON text
    path = tmp_path / "sample.parquet"
    to_parquet(coll, path)
    back = pq.read_table(path)
    assert back.num_rows == 4 and back.column_names == table.column_names


def test_frame_from_documents_equals_to_pandas(db: Any) -> None:
    """Documents fetched elsewhere (as JSON, like tk.Client's) give the collection's frame."""
    import json

    coll = from_pandas(db, "Fetched", _sample())
    coll.create({"extra": {"n": 1}, "loose": "x"}, {"loose": 2})  # undeclared and mixed fields
    schema = coll.config.schema
    for query in (None, tk.where("n").gt(1), tk.Query().order_by_desc("score").limit(3)):
        wire = [json.loads(json.dumps(doc)) for doc in coll.find(query)]
        frame = frame_from_documents(wire, schema)
        expected = to_pandas(coll, query)
        pd.testing.assert_frame_equal(frame, expected, check_exact=True)
        assert frame_to_arrow(frame).equals(to_arrow(coll, query))
    empty = frame_from_documents([], schema)
    pd.testing.assert_frame_equal(empty, to_pandas(coll, tk.where("n").gt(99)))
    with pytest.raises(InvalidDocument):
        frame_from_documents([{"n": 1}], schema)


# --- writing -------------------------------------------------------------------------


def test_one_transaction_per_chunk_and_progress(db: Any) -> None:
    coll = db.new_collection("Bulk")
    records: list[Any] = []
    db.on_record(lambda _db, record: records.append(record))
    seen: list[tuple[int, int]] = []
    frame = pd.DataFrame({"n": range(25)})
    ids = create_many(coll, frame, chunk_size=10, progress=lambda d, t: seen.append((d, t)))
    assert len(ids) == 25 and len(records) == 3
    assert seen == [(10, 25), (20, 25), (25, 25)]
    assert to_pandas(coll)["n"].tolist() == list(range(25))


def test_from_pandas_with_indexes(db: Any) -> None:
    frame = pd.DataFrame({"name": ["a", "b"], "meta.n": [1, 2]})
    coll = from_pandas(db, "Indexed", frame, indexes=[tk.Index("name", unique=True), "meta.n"])
    assert {i.path for i in coll.config.indexes} == {"name", "meta.n"}
    assert coll.find(tk.where("meta.n").eq(2))[0]["name"] == "b"


def test_frame_documents_rules() -> None:
    frame = pd.DataFrame(
        {
            "a": [1, None],
            "m.x": ["p", None],
            "o": pd.Series([{"k": np.int64(1)}, np.array([1, 2])], dtype=object),
            "t": pd.to_datetime(["2024-01-01", None]).tz_localize("Europe/Oslo"),
        }
    )
    assert frame_documents(frame) == [
        {"a": 1.0, "m": {"x": "p"}, "o": {"k": 1}, "t": "2023-12-31T23:00:00.000000Z"},
        {"o": [1, 2]},
    ]


@pytest.mark.parametrize(
    ("frame", "error", "match"),
    [
        (pd.DataFrame({0: [1]}), InvalidDocument, "column names must be strings"),
        (pd.DataFrame({"a..b": [1]}), InvalidDocument, "not a dot path"),
        (pd.DataFrame({"a": [1], "a.b": [2]}), InvalidDocument, "cannot nest"),
        (pd.DataFrame({"d": pd.to_timedelta([1], unit="s")}), InvalidDocument, "no JSON form"),
        (pd.DataFrame({"f": [float("inf")]}), InvalidDocument, "JSON cannot hold"),
        (pd.DataFrame({"o": [object()]}), InvalidDocument, "no JSON form"),
        (pd.DataFrame({"o": [{1: "x"}]}), InvalidDocument, "non-string key"),
        (pd.DataFrame({"_id": ["a", "a"]}), InvalidDocument, "_id values repeat"),
        (pd.DataFrame({"_id": [1]}), InvalidDocument, "_id values must be"),
        (
            pd.DataFrame({"t": pd.to_datetime([1], unit="ns")}),
            InvalidDocument,
            "nanoseconds",
        ),
    ],
)
def test_from_pandas_refuses(db: Any, frame: pd.DataFrame, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        from_pandas(db, "Bad", frame)
    assert "Bad" not in db


def test_bad_arguments(db: Any) -> None:
    frame = pd.DataFrame({"name": ["a", "a"]})
    with pytest.raises(InvalidInput, match="expected a pandas DataFrame"):
        from_pandas(db, "X", [{"a": 1}])
    with pytest.raises(InvalidInput, match="chunk_size"):
        from_pandas(db, "X", frame, chunk_size=0)
    with pytest.raises(InvalidInput, match="progress"):
        from_pandas(db, "X", frame, progress="yes")  # type: ignore[arg-type]
    with pytest.raises(UniqueViolation, match="repeats 'a'"):
        from_pandas(db, "X", frame, indexes=[tk.Index("name", unique=True)])
    assert "X" not in db
    from_pandas(db, "X", frame)
    with pytest.raises(CollectionExists):
        from_pandas(db, "X", frame)
    with pytest.raises(InvalidDocument, match="column names repeat"):
        create_many(db["X"], pd.DataFrame([[1, 2]], columns=["a", "a"]))


def test_failing_chunk_says_what_was_written(db: Any) -> None:
    coll = db.new_collection("Strict", schema={"properties": {"n": {"type": "integer"}}})
    frame = pd.DataFrame({"n": pd.Series([1, 2, "x", 4], dtype=object)})
    with pytest.raises(tk.errors.SchemaViolation) as info:
        create_many(coll, frame, chunk_size=2)
    assert "rows 0-1 were" in " ".join(info.value.__notes__)
    assert coll.count() == 2


def test_create_many_with_ids_and_a_unique_index_refuses_a_chunk_whole(db: Any) -> None:
    """Ids the rows bring and unique values are checked in batch, with the same errors."""
    coll = db.new_collection("People", indexes=[{"path": "email", "unique": True}])
    coll.create({"_id": "p2", "email": "b@x"})
    rows = pd.DataFrame({"_id": ["p1", "p3"], "email": ["a@x", "c@x"]})
    assert create_many(coll, rows) == ["p1", "p3"]
    for frame, error in [
        (pd.DataFrame({"_id": ["p4", "p2"], "email": ["d@x", "e@x"]}), "'p2' already exists"),
        (pd.DataFrame({"_id": ["p4", "p5"], "email": ["d@x", "b@x"]}), "already holds 'b@x'"),
        (pd.DataFrame({"email": ["f@x", "f@x"]}), "already holds 'f@x'"),
    ]:
        with pytest.raises(tk.errors.ThreadkitError, match=error):
            create_many(coll, frame)
        assert sorted(d["_id"] for d in coll.find()) == ["p1", "p2", "p3"]


# --- the column decoder --------------------------------------------------------------


def test_decoder_handles_every_value_kind() -> None:
    docs = [
        {
            "_id": "a",
            "big": 2**64,
            "neg": -(2**63),
            "f": 1.5,
            "i": 3.0,
            "arr": [1, {"x": [2]}],
            "é": "ünï",
            "nul": None,
            "t": True,
            "m": {"n": {"o": 1}},
        },
        {"_id": "b", "m": {}, "f": float("inf")},
    ]
    batch = cbor_columns.decode([cbor2.dumps(d) for d in docs])
    kinds = {p: c.kinds.tolist() for p, c in batch.columns.items()}
    assert kinds["big"] == [cbor_columns.OBJ]
    assert kinds["neg"] == [cbor_columns.INT]
    assert kinds["f"] == [cbor_columns.FLOATF, cbor_columns.FLOATF]
    assert kinds["i"] == [cbor_columns.FLOATI]
    assert kinds["arr"] == [cbor_columns.OBJ]
    assert kinds["nul"] == [cbor_columns.NULL]
    assert kinds["m.n.o"] == [cbor_columns.INT]
    assert batch.text("é") == ["ünï", None]


def test_decoder_falls_back_for_irregular_cbor() -> None:
    indefinite = b"\xbf" + cbor2.dumps("_id") + cbor2.dumps("a") + b"\xff"  # streaming map
    half = b"\xa2" + cbor2.dumps("_id") + cbor2.dumps("b") + cbor2.dumps("h") + b"\xf9\x3e\x00"
    batch = cbor_columns.decode([indefinite, half])
    assert batch.text("_id") == ["a", "b"]
    assert batch.columns["h"].kinds.tolist() == [cbor_columns.FLOATF]
    # a stored value that is no JSON object is left out (only an old repository holds one)
    batch = cbor_columns.decode([cbor2.dumps([1, 2]), cbor2.dumps({"_id": "c"}), b"\xff\x00"])
    assert batch.n == 1 and batch.text("_id") == ["c"]


def test_decoder_many_distinct_keys() -> None:
    docs = [{"_id": str(i), f"key{i}": i} for i in range(100)]
    batch = cbor_columns.decode([cbor2.dumps(d) for d in docs])
    assert len(batch.columns) == 101
    assert batch.columns["key42"].rows.tolist() == [42]


def test_schema_targets_order_annotation() -> None:
    schema = {
        "properties": {"b": {"type": "integer"}, "a": {"type": "number"}},
        COLUMN_ORDER_KEY: ["a", "zzz"],
    }
    assert schema_targets(schema) == ({"b": "integer", "a": "number"}, ["a", "zzz", "b"])


def test_importing_frames_stays_cheap() -> None:
    code = (
        "import sys, threadkit, threadkit.frames.frame, threadkit.frames.expr, "
        "threadkit.frames.columns, threadkit.frames.lazy, threadkit.frames.ingest, "
        "threadkit.frames.dtypes; "
        "print(sorted(m for m in ('pandas', 'pyarrow') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
