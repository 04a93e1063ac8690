"""The value model and the limits: refused at every door before anything is written, records
outside them from a member skipped, and readers of a repository that holds such documents
still reading the rest."""

from __future__ import annotations

import datetime as dt
import decimal
import json
import logging
import math
from collections.abc import Iterator
from typing import Any

import cbor2
import numpy as np
import pandas as pd
import pytest
import replicas
from hypothesis import given, settings
from hypothesis import strategies as st

import threadkit as tk
from threadkit.core.records import create_record
from threadkit.core.writerproof import delegate
from threadkit.db import dockeys
from threadkit.db.database import Database
from threadkit.db.events import BODY_VERSION
from threadkit.db.query import MAX_QUERY_DEPTH, Query, where
from threadkit.db.values import MAX_DEPTH, MAX_ID_BYTES, MAX_INT, MIN_INT, value_problem
from threadkit.errors import (
    InvalidDocument,
    InvalidIndex,
    InvalidName,
    InvalidQuery,
    InvalidScript,
)
from threadkit.peer import Peer


def nested(depth: int) -> dict[str, Any]:
    """A document ``depth`` levels deep (the document itself is level 1)."""
    doc: dict[str, Any] = {}
    node = doc
    for _ in range(depth - 1):
        node["a"] = {}
        node = node["a"]
    return doc


BAD_VALUES = [
    ({1, 2}, "a Python set at v"),
    (b"x", "a Python bytes at v"),
    ((1, 2), "a Python tuple at v"),
    (decimal.Decimal("1.5"), "a Python Decimal at v"),
    (1j, "a Python complex at v"),
    (float("nan"), "NaN at v"),
    (float("inf"), "infinity at v"),
    (float("-inf"), "-infinity at v"),
    (1e999, "infinity at v"),
    (dt.datetime.now(dt.UTC), "a Python datetime at v"),
    (dt.datetime(2024, 1, 1), "a Python datetime at v"),  # naive: cbor2 refused it
    (object(), "a Python object at v"),
    ({1: "a"}, "the key 1 at v"),
    ({"ok": [1, {"deep": float("nan")}]}, "NaN at v.ok[1].deep"),
    (2**64, "the integer 18446744073709551616 at v"),
    (MAX_INT + 1, "outside the signed 64-bit range"),
    (MIN_INT - 1, "outside the signed 64-bit range"),
    ("\ud800", "lone surrogate at v"),
    ({"\udfff": 1}, "not valid Unicode"),
    (np.int64(3), "a Python int64 at v"),
    (nested(MAX_DEPTH), "nested more than 100 levels deep"),  # v sits one level down
]


@pytest.fixture
def peer() -> Iterator[Peer]:
    with Peer(memory=True) as p:
        yield p


@pytest.fixture
def db(peer: Peer) -> Database:
    return peer.new_db("values")


def head(db: Database) -> int:
    return db._repo.get_head(db.id, db.log_id).counter


# ------------------------------------------------------------------ the model itself

JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(MIN_INT, MAX_INT),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(),
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=12,
)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.text(max_size=5), JSON_VALUES))
def test_every_json_value_is_accepted_and_survives_cbor_and_strict_json(doc: dict) -> None:
    assert value_problem(doc) is None
    assert cbor2.loads(cbor2.dumps(doc)) == doc
    json.dumps(doc, allow_nan=False)  # what the daemon sends


@pytest.mark.parametrize(("value", "message"), BAD_VALUES)
def test_values_outside_the_model_are_named_with_their_path(value: Any, message: str) -> None:
    problem = value_problem({"v": value})
    assert problem is not None and message in problem


def test_the_limits_themselves_are_inside() -> None:
    assert value_problem({"a": MAX_INT, "b": MIN_INT, "c": 2**53 + 1, "d": -0.0}) is None
    assert value_problem(nested(MAX_DEPTH)) is None
    assert value_problem(nested(MAX_DEPTH + 1)) is not None
    assert value_problem({"é": "ünïcødé 😀"}) is None


# --------------------------------------------------------------------------- the doors


@pytest.mark.parametrize(("value", "message"), BAD_VALUES)
def test_every_write_path_refuses_before_writing(db: Database, value: Any, message: str) -> None:
    coll = db.new_collection("c")
    coll.create({"_id": "kept", "v": 1})
    before = head(db)
    doc = {"_id": "x", "v": value}
    attempts = [
        lambda: coll.create(doc),
        lambda: coll.create({"v": value}),  # a generated id
        lambda: coll.save(doc),
        lambda: coll.save({"_id": "kept", "v": value}),
        lambda: coll.verify(doc),
    ]
    for attempt in attempts:
        with pytest.raises(InvalidDocument, match="holds") as caught:
            attempt()
        assert message in str(caught.value)
    with pytest.raises(InvalidDocument), coll.write_txn() as txn:
        txn.create({"_id": "y"})
        txn.save(doc)
    assert head(db) == before
    assert [d["_id"] for d in coll.find()] == ["kept"]
    assert coll.find_by_id("kept")["v"] == 1


def test_depth_limit_is_exact(db: Database) -> None:
    coll = db.new_collection("c")
    coll.create({"_id": "deep", **nested(MAX_DEPTH)})
    assert coll.find_by_id("deep")["a"]["a"]["a"] == {"a": nested(MAX_DEPTH - 4)}
    with pytest.raises(InvalidDocument, match="nested more than 100"):
        coll.create(nested(MAX_DEPTH + 1))
    with pytest.raises(InvalidDocument, match="nested more than 100"):
        coll.create(nested(3000))  # was a RecursionError


def test_integer_range_round_trips(db: Database) -> None:
    coll = db.new_collection("c", indexes=["n"])
    coll.create({"_id": "hi", "n": MAX_INT}, {"_id": "lo", "n": MIN_INT})
    assert coll.find_by_id("hi")["n"] == MAX_INT
    assert [d["_id"] for d in coll.find(where("n").gt(2**62))] == ["hi"]
    assert coll.to_pandas()["n"].tolist() == [MAX_INT, MIN_INT]


def test_ids(db: Database) -> None:
    coll = db.new_collection("c")
    longest = "é" * (MAX_ID_BYTES // 2)
    coll.create({"_id": longest})
    assert coll.find_by_id(longest)["_id"] == longest
    before = head(db)
    for bad in ("a" * (MAX_ID_BYTES + 1), "a" * 5000, "é" * 65, "\ud800"):
        for attempt in (
            lambda b=bad: coll.create({"_id": b}),
            lambda b=bad: coll.save({"_id": b}),
            lambda b=bad: coll.find_by_id(b),
            lambda b=bad: coll.has(b),
            lambda b=bad: coll.delete(b),
        ):
            with pytest.raises(InvalidDocument, match="_id"):
                attempt()
    assert head(db) == before


def test_names(peer: Peer, db: Database) -> None:
    db.new_collection("n" * 64)
    for bad in ("a" * 65, "a" * 600):
        with pytest.raises(InvalidName, match="at most 64"):
            db.new_collection(bad)  # was MDB_BAD_VALSIZE
        with pytest.raises(InvalidName, match="at most 64"):
            peer.new_db(bad)
    assert [c.name for c in db.list_collections()] == ["n" * 64]


def test_index_paths_and_scripts(db: Database) -> None:
    db.new_collection("ok", indexes=["p" * 128])
    with pytest.raises(InvalidIndex, match="at most 128 bytes"):
        db.new_collection("c", indexes=["p" * 129])
    with pytest.raises(InvalidIndex, match="not valid Unicode"):
        db.new_collection("c", indexes=["\ud800"])  # was a UnicodeEncodeError from cbor2
    with pytest.raises(InvalidScript, match="not valid Unicode"):
        db.new_collection("c", write_validator="// \ud800\nreturn true")
    with pytest.raises(InvalidScript, match="not valid Unicode"):
        db.new_collection("c", read_filter="// \ud800\nreturn instance")
    assert "c" not in db


def test_indexed_text_too_long_for_a_key(db: Database) -> None:
    coll = db.new_collection("c", indexes=["name"])
    coll.create({"_id": "a", "name": "x" * 300})  # fits with a short name, path and id
    before = head(db)
    with pytest.raises(InvalidDocument, match="too long to index"):
        coll.create({"name": "x" * 1000})  # was MDB_BAD_VALSIZE
    with pytest.raises(InvalidDocument, match="too long to index"):
        coll.save({"_id": "a", "name": "x" * 1000})
    plain = db.new_collection("d")
    plain.create({"_id": "long", "name": "y" * 1000})
    with pytest.raises(InvalidIndex, match="too long for an index entry"):
        db.update_collection("d", indexes=["name"])
    assert head(db) == before + 2
    assert db.collection_info("d")["indexes"] == []


def test_queries(db: Database) -> None:
    query = where("a").eq(1)
    for _ in range(MAX_QUERY_DEPTH - 1):
        query = where("a").eq(1).or_(query)
    db.new_collection("c").find(query)
    with pytest.raises(InvalidQuery, match="nested more than 32"):
        where("a").eq(1).or_(query)
    deep = {"ors": []}
    node = deep
    for _ in range(3000):
        node["ors"] = [{"ors": []}]
        node = node["ors"][0]
    with pytest.raises(InvalidQuery, match="nested more than 32"):
        Query.from_json(deep)
    with pytest.raises(InvalidQuery, match="too deeply"):
        Query.from_json("[" * 100_000)  # was a RecursionError


def test_from_pandas_maps_missing_values_and_dates() -> None:
    with Peer(memory=True) as peer:
        db = peer.new_db("frames")
        frame = pd.DataFrame(
            {
                "x": [1.5, np.nan],
                "when": pd.to_datetime(["2024-05-01T12:00:00", None]),
                "tz": pd.to_datetime(["2024-05-01T12:00:00+02:00", None]),
            }
        )
        coll = db.from_pandas("F", frame)
        docs = coll.find()
        assert docs[0]["when"] == "2024-05-01T12:00:00.000000Z"
        assert docs[0]["tz"] == "2024-05-01T10:00:00.000000Z"
        assert set(docs[1]) == {"_id", "_mod"}  # NaN and NaT leave the field out


@pytest.mark.parametrize(
    ("column", "message"),
    [
        (np.array([1, 2**64 - 1], dtype=np.uint64), "row 1: the integer 18446744073709551615"),
        ([{"a": 1}, nested(MAX_DEPTH)], "row 1: an object or array at a"),
        (["ok", "\ud800"], "row 1: text with a lone surrogate"),
        ([[1], [[[]]]], None),
    ],
)
def test_from_pandas_checks_every_row_before_writing(column: Any, message: str | None) -> None:
    with Peer(memory=True) as peer:
        db = peer.new_db("frames")
        frame = pd.DataFrame(
            {"c": pd.Series(column, dtype=object if isinstance(column, list) else None)}
        )
        if message is None:
            db.from_pandas("F", frame)
            return
        with pytest.raises(InvalidDocument, match=message.replace("[", r"\[")):
            db.from_pandas("F", frame, chunk_size=1)
        assert "F" not in db
        with pytest.raises(InvalidDocument):
            db.from_pandas("G", pd.DataFrame({"_id": ["a" * 200], "c": [1]}))


# ----------------------------------------------------------- records from a member


def _hostile(member: Database, events: list[Any], prev: bytes | None) -> Any:
    """A record signed with the member's valid log key, its body written by hand."""
    proof = delegate(member.log_key, thread_id=member.id, log=member.log_key.public).to_node()
    body = cbor2.dumps({"v": BODY_VERSION, "events": events, "w": proof})
    return create_record(body, log_key=member.log_key, key=member.key, prev=prev)


def _create(stamp: int, collection: str, instance_id: str, data: Any) -> dict[str, Any]:
    return {"t": [stamp, 0], "a": 0, "c": collection, "i": instance_id, "d": data}


def test_records_outside_the_model_are_skipped_and_the_log_goes_on(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    coll = db.new_collection("c", indexes=["v"])
    coll.create({"_id": "mine", "v": 1})
    with Peer(memory=True) as other:
        member = replicas.replica(other, db)
        replicas.know_log(db, member)
        wall = db.hlc.now().wall + 1000
        bad_bodies = [
            [_create(wall + 1, "c", "nan", {"v": float("nan")})],
            [_create(wall + 2, "c", "bytes", {"v": b"raw"})],
            [_create(wall + 3, "c", "tag", {"v": cbor2.CBORTag(1234, "x")})],
            [_create(wall + 4, "c", "big", {"v": 2**80})],
            [_create(wall + 5, "c", "deep", nested(150))],
            [_create(wall + 6, "c", "deeper", nested(600))],  # beyond cbor2's decoder
            [_create(wall + 7, "c", "x" * 5000, {"v": 1})],
            [_create(wall + 8, "c" * 600, "id", {"v": 1})],
            [_create(wall + 9, "c", "keys", {1: 2})],
            [
                _create(wall + 10, "c", "fine", {"v": 2}),
                _create(wall + 11, "c", "nan2", {"v": [float("inf")]}),
            ],
        ]
        records, prev = [], None
        for events in bad_bodies:
            record = _hostile(member, events, prev)
            records.append(record)
            prev = record.cid
        good = _hostile(member, [_create(wall + 20, "c", "good", {"v": 3})], prev)
        with caplog.at_level(logging.WARNING, logger="threadkit.db"):
            result = db.apply_records(member.log_id, [*records, good])
        assert result.gap is None
        assert len([r for r in caplog.records if "skipped" in r.getMessage()]) == len(records)
    assert sorted(d["_id"] for d in coll.find()) == ["good", "mine"]
    assert coll.to_pandas().index.tolist() == ["good", "mine"]
    assert len(db.history("c")) == 3  # the collection, mine, good
    assert db._repo.get_head(db.id, member.log_id).counter == len(records) + 1


def test_a_conflict_on_a_long_path_is_recorded(peer: Peer) -> None:
    a = peer.new_db("conflicts")
    coll = a.new_collection("c")
    path = ["k" * 100, "l" * 100, "m" * 100]
    coll.create({"_id": "x"})
    with Peer(memory=True) as other:
        b = replicas.replica(other, a)
        replicas.sync(a, b)
        for db, value in ((a, 1), (b, 2)):
            db["c"].save({"_id": "x", path[0]: {path[1]: {path[2]: value}}})
        replicas.sync(a, b)  # was MDB_BAD_VALSIZE writing the lost write's key
        assert replicas.snapshot(a) == replicas.snapshot(b)
        lost = [w for w in a.lost_writes("c") if w["kind"] == "overwritten"]
        assert {w["path"] for w in lost} == {".".join(path)}
        assert lost == [w for w in b.lost_writes("c") if w["kind"] == "overwritten"]


# ------------------------------------------------- a repository written before the checks


def _store_raw(db: Database, collection: str, instance_id: str, doc: Any) -> None:
    """Put a document straight into the store, as a version without the checks could."""
    coll = dockeys.coll_key(db.prefix, collection)
    with db._repo.transaction(write=True) as txn:
        txn.put(dockeys.doc_key(coll, instance_id), cbor2.dumps(doc), db=db.engine.tables.docs)


def test_readers_of_old_documents_outside_the_model(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    coll = db.new_collection("c")
    coll.create({"_id": "good", "v": 1})
    for i, value in enumerate([float("nan"), {1, 2}, b"x", 2**70, {1: "int key"}]):
        _store_raw(db, "c", f"old{i}", {"_id": f"old{i}", "v": value})
    _store_raw(db, "c", "too-deep", {"_id": "too-deep", **nested(450)})  # beyond cbor2's decoder
    with caplog.at_level(logging.WARNING):
        assert len(coll.find()) == 6  # was CBORDecodeError for the whole collection
        frame = coll.to_pandas()  # was StoreError for the whole collection
    assert math.isnan(coll.find_by_id("old0")["v"])
    with pytest.raises(tk.errors.UnreadableDocument, match="does not decode"):
        coll.find_by_id("too-deep")
    assert "good" in frame.index and "old4" not in frame.index and "too-deep" not in frame.index
    messages = [r.getMessage() for r in caplog.records]
    assert any("'old4' is left out" in m for m in messages)
    assert any("left out of the scan of 'c'" in m for m in messages)
