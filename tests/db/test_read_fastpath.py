"""The direct path of :func:`threadkit.db.planner.execute`: a query without read filter,
sort other than ascending ``_id``, or seek returns the batch's matches as they are (no
per-document rows, no re-sort).

Property: over the query oracle's scenarios, on a stored collection with any subset of
indexes, the direct path gives exactly what the row path gives (forced by a read filter
that shows every document as it is) and what the reference source gives — the same
documents in the same order, or the same error — on the first read after the writes
and again on a repeated one.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import threadkit as tk
from tests.db.test_query_oracle import INDEXED, scenarios
from threadkit.db.planner import InMemorySource, execute
from threadkit.errors import InvalidDocument, InvalidQuery

_names = itertools.count()


@pytest.fixture(scope="module")
def db() -> Iterator[Any]:
    with tk.Peer(memory=True) as peer:
        yield peer.new_db("fastpath")


def _outcome(run: Any) -> Any:
    try:
        return [{k: v for k, v in d.items() if k != "_mod"} for d in run()]
    except InvalidQuery as exc:
        return ("error", str(exc))


@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(scenario=scenarios(), everything=st.booleans())
def test_direct_path_equals_the_row_path_and_the_reference(
    db: Any, scenario: Any, everything: bool
) -> None:
    docs, query, _read_filter, subset = scenario
    if everything:
        subset = INDEXED
    name = f"f{next(_names)}"
    coll = db.new_collection(name, indexes=subset)
    try:
        try:
            coll.create(docs)
        except InvalidDocument:
            assume(False)
        expected = _outcome(lambda: execute(query, InMemorySource(docs, subset)))
        for _ in range(2):  # the first read after the writes, then again
            with coll.read_txn() as txn:
                source = txn._source()
                direct = _outcome(lambda src=source: execute(query, src))
                rows = _outcome(lambda src=source: execute(query, src, filter_many=list))
            assert direct == rows == expected
    finally:
        db.delete_collection(name)


def test_direct_path_keeps_id_order_and_pages(db: Any) -> None:
    coll = db.new_collection("paged", indexes=["n"])
    coll.create(*[{"_id": f"d{i:02d}", "n": i % 3} for i in range(30)])
    q = tk.where("n").eq(1)
    ids = [d["_id"] for d in coll.find(q)]
    assert ids == sorted(ids) and len(ids) == 10
    assert [d["_id"] for d in coll.find(q.skip(2).limit(3))] == ids[2:5]
    assert [d["_id"] for d in coll.find(q.order_by("_id").limit(2))] == ids[:2]
    assert [d["_id"] for d in coll.find(q.order_by_desc("_id").limit(2))] == ids[::-1][:2]
    assert [d["_id"] for d in coll.find(tk.Query().seek("d25"))] == [
        "d25",
        "d26",
        "d27",
        "d28",
        "d29",
    ]
