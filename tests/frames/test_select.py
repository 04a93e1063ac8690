"""Queries answered from the cached frame of the whole collection (:mod:`threadkit.frames.select`).

Property: ``coll.query(text)`` gives exactly the frame (or the error) built from the
documents ``coll.find`` returns for it — with the whole frame cached, and with nothing
cached (when it may build the whole frame) — for the random documents and pandas
expressions of the expression oracle (which checks ``find`` against pandas).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import pandas as pd
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import threadkit as tk
from tests.frames.test_expr_oracle import expressions, rows
from threadkit.errors import InvalidQuery
from threadkit.frames import cache
from threadkit.frames.frame import frame_from_documents
from threadkit.frames.lazy import compile_for
from threadkit.frames.select import select

_names = itertools.count()


@pytest.fixture(scope="module")
def db() -> Iterator[Any]:
    with tk.Peer(memory=True) as peer:
        yield peer.new_db("select")


def _query(coll: Any, text: str, local_vars: dict[str, Any]) -> Any:
    try:
        return coll.query(text, local_vars)
    except InvalidQuery as exc:
        return ("error", str(exc))


def _reference(coll: Any, text: str, local_vars: dict[str, Any]) -> Any:
    """What the store's query gives, as a frame built from its documents (no cache)."""
    try:
        docs = coll.find(compile_for(coll, text, local_vars))
    except InvalidQuery as exc:
        return ("error", str(exc))
    return frame_from_documents(docs, coll.config.schema)


@pytest.mark.slow
@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(docs=rows(), expression=expressions(), indexed=st.booleans())
def test_frames_answer_as_the_store(
    db: Any, docs: list[dict[str, Any]], expression: tuple[str, dict[str, Any]], indexed: bool
) -> None:
    text, local_vars = expression
    name = f"s{next(_names)}"
    coll = db.new_collection(name, indexes=["i", "s"] if indexed else [])
    try:
        if docs:
            coll.create(docs)
        expected = _reference(coll, text, local_vars)
        cache.clear(db)
        cold = _query(coll, text, local_vars)  # nothing cached: may build the whole frame
        cache.clear(db)
        _ = coll.df  # the whole frame, cached
        warm = _query(coll, text, local_vars)
        for got in (cold, warm):
            if isinstance(expected, tuple) or isinstance(got, tuple):
                assert got == expected
                event("outcome: error")
            else:
                pd.testing.assert_frame_equal(got, expected)
        if not isinstance(warm, tuple):
            entry = cache._db_cache(db).entries[(name, cache._EVERYTHING, None)]
            query = compile_for(coll, text, local_vars)
            used = select(
                entry.frame, entry.kinds, entry.columns, entry.targets, entry.order, query
            )
            event("answered from the frame" if used is not None else "read from the store")
    finally:
        db.delete_collection(name)


def test_the_whole_frame_is_used_and_kept_current(db: Any) -> None:
    coll = db.new_collection("kept", indexes=["n"])
    coll.create([{"_id": f"d{i}", "n": i, "s": "x" * (i % 3)} for i in range(20)])
    whole = coll.df
    entry = cache._db_cache(db).entries[(coll.name, cache._EVERYTHING, None)]
    picked = select(
        entry.frame, entry.kinds, entry.columns, entry.targets, entry.order, _q("n > 15")
    )
    assert picked is not None and list(picked.index) == ["d16", "d17", "d18", "d19"]
    first = coll.query("n > 15")
    assert list(first.index) == ["d16", "d17", "d18", "d19"]
    first.loc["d16", "n"] = -1  # a frame handed out is the caller's
    assert coll.query("n > 15").loc["d16", "n"] == 16  # the same selection, kept
    coll.save({"_id": "d3", "n": 99, "s": ""})  # the cached frame must follow the write
    got = coll.query("n > 15")
    assert sorted(got.index) == ["d16", "d17", "d18", "d19", "d3"]
    assert got.loc["d3", "n"] == 99
    assert len(whole) == 20
    kept = [key for key in cache._db_cache(db).entries if key[0] == coll.name]
    assert kept == [(coll.name, cache._EVERYTHING, None)]  # nothing built for the query


def test_a_mismatch_is_left_to_the_store(db: Any) -> None:
    coll = db.new_collection("mixed")
    coll.create({"_id": "a", "v": 1}, {"_id": "b", "v": "one"})
    _ = coll.df
    entry = cache._db_cache(db).entries[(coll.name, cache._EVERYTHING, None)]
    assert (
        select(
            entry.frame, entry.kinds, entry.columns, entry.targets, entry.order, tk.where("v").gt(0)
        )
        is None
    )
    with pytest.raises(InvalidQuery, match="'b'"):
        coll.query(tk.where("v").gt(0))


def _q(text: str) -> Any:
    from threadkit.frames.expr import compile_query

    return compile_query(text)


def test_a_key_with_a_dot_is_not_a_nested_field(db: Any) -> None:
    coll = db.new_collection("dots")
    coll.create({"_id": "flat", "a.b": 1}, {"_id": "nested", "a": {"b": 2}})
    _ = coll.df  # one column "a.b" holds both
    assert coll.query(tk.where("a.b").gt(0)).index.tolist() == ["nested"]
    assert coll.query(tk.where("a.b").eq(1)).index.tolist() == []


def test_field_order_is_tracked_through_writes(db: Any) -> None:
    coll = db.new_collection("order")
    coll.create([{"_id": f"d{i}", "x": i, "y": i} for i in range(5)])
    _ = coll.df
    entry = cache._db_cache(db).entries[(coll.name, cache._EVERYTHING, None)]
    assert entry.uniform  # one field order: rows are answered without reading them again
    coll.save({"_id": "d9", "y": 9, "x": 9})  # the other order
    got = coll.query("x > 8")
    assert not entry.uniform
    assert list(got.columns) == ["y", "x", "_mod"]  # as a frame of that document has them
    expected = frame_from_documents(coll.find(tk.where("x").gt(8)), coll.config.schema)
    pd.testing.assert_frame_equal(got, expected)


def test_batches_know_whether_documents_share_one_field_order() -> None:
    import cbor2

    from threadkit.frames.cbor_columns import decode

    def uniform(*docs: dict[str, Any]) -> bool:
        return decode([cbor2.dumps(d) for d in docs]).uniform

    assert uniform({"a": 1, "b": {"c": 1, "d": 2}}, {"a": 2, "b": {"c": 3}}, {"a": 3})
    assert not uniform({"a": 1, "b": 2}, {"b": 1, "a": 2})
    assert not uniform({"a": 1, "b": {"c": 1, "d": 2}}, {"a": 1, "b": {"d": 1}})
