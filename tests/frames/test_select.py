"""Queries answered from the cached frame of the whole collection (:mod:`threadkit.frames.select`).

Property: with ``coll.df`` cached, ``coll.query(text)`` gives exactly the frame (or the
error) it gives with nothing cached, for the random documents and pandas expressions of
the expression oracle (which checks the latter against pandas). Columns may come in
another order where documents list their fields in different orders.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import pandas as pd
import pytest
from hypothesis import HealthCheck, event, given, settings

import threadkit as tk
from tests.frames.test_expr_oracle import expressions, rows
from threadkit.errors import InvalidQuery
from threadkit.frames import cache
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


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(docs=rows(), expression=expressions())
def test_a_warm_frame_answers_as_a_cold_read(
    db: Any, docs: list[dict[str, Any]], expression: tuple[str, dict[str, Any]]
) -> None:
    text, local_vars = expression
    name = f"s{next(_names)}"
    coll = db.new_collection(name)
    try:
        if docs:
            coll.create(docs)
        cache.clear(db)
        cold = _query(coll, text, local_vars)
        cache.clear(db)
        _ = coll.df  # the whole frame, cached
        warm = _query(coll, text, local_vars)
        if not isinstance(warm, tuple):
            entry = cache._db_cache(db).entries[(name, cache._EVERYTHING, None)]
            query = compile_for(coll, text, local_vars)
            used = select(
                entry.frame, entry.kinds, entry.columns, entry.targets, entry.order, query
            )
            event("answered from the frame" if used is not None else "read from the store")
        if isinstance(cold, tuple) or isinstance(warm, tuple):
            assert warm == cold
            event("outcome: error")
        else:
            # columns keep the whole frame's order when documents list fields differently
            pd.testing.assert_frame_equal(warm, cold, check_like=True)
            event(f"outcome: {len(warm)} rows")
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
