"""Reads a chunk at a time: :func:`threadkit.db.reads.scan_batches` and
:func:`~threadkit.db.reads.load_batches` read and decode one chunk after another, and
:func:`threadkit.db.planner.execute` matches each chunk as it comes, keeping only its
matches, and sorts by ``_id`` only when the chunks did not come in ``_id`` order.

Property: over the query oracle's scenarios, on a stored collection with any subset of
indexes and chunks of 1 to 5 documents (so every read crosses chunk boundaries), a query
gives exactly what the reference source gives — the same documents in the same order, or
the same error — on the direct path and on the row path. Examples: chunks out of order at
a boundary, absent ids at chunk edges, a damaged or id-less stored document in a later
chunk than a document the matcher raises on, and the other way round.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import cbor2
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import threadkit as tk
from tests.db.test_query_oracle import scenarios
from threadkit.db import dockeys, reads
from threadkit.db.indexkeys import encode_id
from threadkit.db.planner import InMemorySource, execute
from threadkit.db.query import Query, where
from threadkit.errors import InvalidDocument, InvalidQuery

_names = itertools.count()


@pytest.fixture(scope="module")
def db() -> Iterator[Any]:
    with tk.Peer(memory=True) as peer:
        yield peer.new_db("chunks")


@pytest.fixture
def small_chunks() -> Iterator[None]:
    saved = reads._CHUNK
    reads._CHUNK = 2
    try:
        yield
    finally:
        reads._CHUNK = saved


def _outcome(run: Any) -> Any:
    try:
        return [{k: v for k, v in d.items() if k != "_mod"} for d in run()]
    except InvalidQuery as exc:
        return ("error", str(exc))


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(scenario=scenarios(), chunk=st.integers(min_value=1, max_value=5))
def test_chunked_reads_equal_the_reference(db: Any, scenario: Any, chunk: int) -> None:
    docs, query, _read_filter, subset = scenario
    name = f"k{next(_names)}"
    coll = db.new_collection(name, indexes=subset)
    saved = reads._CHUNK
    reads._CHUNK = chunk
    try:
        try:
            coll.create(docs)
        except InvalidDocument:
            assume(False)
        expected = _outcome(lambda: execute(query, InMemorySource(docs, subset)))
        with coll.read_txn() as txn:
            source = txn._source()
            direct = _outcome(lambda: execute(query, source))
            rows = _outcome(lambda: execute(query, source, filter_many=list))
        assert direct == rows == expected
    finally:
        reads._CHUNK = saved
        db.delete_collection(name)


class _Chunked(InMemorySource):
    """A reference source whose full scan comes in the given chunks, as given."""

    def __init__(self, chunks: list[list[dict[str, Any]]]) -> None:
        super().__init__([doc for chunk in chunks for doc in chunk])
        self.chunks = chunks

    def scan_batches(self) -> Iterator[list[dict[str, Any]]]:
        return iter([[dict(doc) for doc in chunk] for chunk in self.chunks])


def test_chunks_out_of_id_order_are_sorted() -> None:
    a, b, c, d = ({"_id": i, "n": 1} for i in "abcd")
    # each chunk in order, but not across the boundary
    assert [x["_id"] for x in execute(Query(), _Chunked([[b, c], [a, d]]))] == list("abcd")
    assert [x["_id"] for x in execute(where("n").eq(1), _Chunked([[c], [a], [b, d]]))] == list(
        "abcd"
    )
    assert [x["_id"] for x in execute(Query(), _Chunked([[a, b], [], [c, d]]))] == list("abcd")
    # out of order inside the first chunk
    assert [x["_id"] for x in execute(Query(), _Chunked([[b, a], [c, d]]))] == list("abcd")


def test_load_batches_skips_absent_ids_at_chunk_edges(db: Any, small_chunks: None) -> None:
    coll = db.new_collection("edges")
    coll.create(*[{"_id": f"d{i}", "n": i} for i in range(7)])
    wanted = ["a", "d0", "d1", "x", "y", "d4", "d5", "d6", "z"]
    refs = [encode_id(i) for i in wanted]
    with db._repo.transaction() as txn:
        chunks = list(reads.load_batches(db.engine, txn, "edges", refs))
        scanned = list(reads.scan_batches(db.engine, txn, "edges"))
    assert [[d["_id"] for d in c] for c in chunks] == [["d0"], ["d1"], ["d4"], ["d5", "d6"], []]
    assert [len(c) for c in scanned] == [2, 2, 2, 1]
    assert [d["_id"] for c in scanned for d in c] == [f"d{i}" for i in range(7)]


def _put_raw(db: Any, collection: str, instance_id: str, value: bytes) -> None:
    engine = db.engine
    key = dockeys.doc_key(dockeys.coll_key(engine.prefix, collection), instance_id)
    with db._repo.transaction(write=True) as txn:
        txn.put(key, value, db=engine.tables.docs)


def test_a_stored_id_out_of_key_order_is_sorted(db: Any, small_chunks: None) -> None:
    coll = db.new_collection("moved", indexes=["n"])
    coll.create(*[{"_id": f"d{i}", "n": i % 2} for i in range(8)])
    _put_raw(db, "moved", "d2", cbor2.dumps({"_id": "d9", "n": 0}))
    for query in (Query(), where("n").eq(0), where("n").lt(5)):
        with coll.read_txn() as txn:
            source = txn._source()
            direct = execute(query, source)
            rows = execute(query, source, filter_many=list)
        assert direct == rows
        ids = [d["_id"] for d in direct]
        assert ids == sorted(ids) and "d9" in ids


@pytest.mark.parametrize("bad_first", [False, True])
def test_the_first_error_in_id_order_wins_across_chunks(
    db: Any, small_chunks: None, bad_first: bool
) -> None:
    name = f"errors{int(bad_first)}"
    coll = db.new_collection(name)
    coll.create(*[{"_id": f"d{i}", "n": i} for i in range(9)])
    mismatch, no_id = ("d6", "d1") if bad_first else ("d1", "d6")
    _put_raw(db, name, mismatch, cbor2.dumps({"_id": mismatch, "n": "text"}))
    _put_raw(db, name, no_id, cbor2.dumps({"n": 3}))
    expected: type[Exception] = InvalidDocument if bad_first else InvalidQuery
    with pytest.raises(expected):
        coll.find(where("n").gt(2))
    with coll.read_txn() as txn, pytest.raises(expected):
        execute(where("n").gt(2), txn._source(), filter_many=list)
