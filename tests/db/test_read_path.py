"""The batched read path of stored collections (:mod:`threadkit.db.reads`).

Property: a stored collection, with any subset of indexes, answers every query of the
query oracle's scenarios exactly as the reference :class:`InMemorySource` does (which
``test_query_oracle`` checks against the brute-force oracle): same documents in the same
order, or the same error. This covers the index scans yielding encoded ids, the batched
fetch and decode, the skipped re-check of a criterion the index proves, and the compiled
matcher.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator
from typing import Any

import cbor2
import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

import threadkit as tk
from tests.db.test_query_oracle import INDEXED, scenarios
from threadkit.db import dockeys, reads
from threadkit.db.planner import InMemorySource, execute, explain
from threadkit.db.query import Query, where
from threadkit.errors import InvalidDocument, InvalidQuery

_names = itertools.count()


@pytest.fixture(scope="module")
def db() -> Iterator[Any]:
    with tk.Peer(memory=True) as peer:
        yield peer.new_db("reads")


def _outcome(run: Any) -> Any:
    try:
        return run()
    except InvalidQuery as exc:
        return ("error", str(exc))


@pytest.mark.slow
@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(scenario=scenarios(), everything=st.booleans())
def test_stored_collections_answer_as_the_reference(
    db: Any, scenario: Any, everything: bool
) -> None:
    docs, query, _read_filter, subset = scenario
    if everything:
        subset = INDEXED  # every path indexed: lookups are planned more often
    name = f"c{next(_names)}"
    coll = db.new_collection(name, indexes=subset)
    try:
        try:
            coll.create(docs)
        except InvalidDocument:
            assume(False)  # ids or values the stored value model refuses
        expected = _outcome(lambda: execute(query, InMemorySource(docs, subset)))
        got = _outcome(lambda: [_without_mod(d) for d in coll.find(query)])
        assert got == expected
        with coll.read_txn() as txn:
            plan = explain(query, txn._source())
        event("plan: full scan" if plan.full_scan else f"plan: {len(plan.lookups)} lookup(s)")
    finally:
        db.delete_collection(name)


def _without_mod(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k != "_mod"}


def test_an_index_read_skips_a_document_that_does_not_decode(
    db: Any, caplog: pytest.LogCaptureFixture
) -> None:
    coll = db.new_collection("broken", indexes=["n"])
    coll.create({"_id": "a", "n": 1}, {"_id": "b", "n": 1}, {"_id": "c", "n": 1})
    engine = db.engine
    key = dockeys.doc_key(dockeys.coll_key(engine.prefix, "broken"), "b")
    with db._repo.transaction(write=True) as txn:
        txn.put(key, cbor2.dumps({"_id": "b", "n": 1})[:-1], db=engine.tables.docs)
    with caplog.at_level(logging.WARNING):
        found = coll.find(where("n").eq(1))
    assert [d["_id"] for d in found] == ["a", "c"]
    assert any("left out of the read of 'broken'" in r.getMessage() for r in caplog.records)


def test_the_compiled_matcher_hands_other_types_to_the_full_check() -> None:
    match = reads.compile_matcher(where("n").gt(1).and_("s").eq("x"))
    assert match({"_id": "a", "n": 2, "s": "x"}) is True
    assert match({"_id": "a", "n": 0, "s": 5}) is False  # false decides, whatever s holds
    with pytest.raises(InvalidQuery, match="holds a string"):
        match({"_id": "a", "n": "2", "s": "x"})
    assert reads.compile_matcher(Query())({"_id": "a"}) is True
