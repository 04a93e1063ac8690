"""The batched decode of :mod:`threadkit.db.reads`: many stored documents in one ``cbor2``
call (the items of one CBOR array), each decoded alone only where that call fails.

Property: for any documents, some of them damaged (cut short, or with bytes after the
item, or not CBOR at all), in chunks of any size, :func:`~threadkit.db.reads.decode_docs`
gives exactly what decoding each value alone gives for the values that decode (same
values, same types, same key order, same order), and leaves out the others with a
warning each.
"""

from __future__ import annotations

import logging
from typing import Any

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import threadkit as tk
from threadkit.db import reads

_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),
    st.text(max_size=12),
)
_values = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)
_docs = st.dictionaries(st.text(max_size=8), _values, max_size=6).map(lambda d: {"_id": "x", **d})


def _damaged(raw: bytes, how: int) -> bytes:
    if how == 1:
        return raw[:-1]  # cut short: runs into the next value
    if how == 2:
        return raw + b"\x01"  # a stray item after the document
    if how == 3:
        return b"\xff"  # a break code: not an item
    return raw


def _one_by_one(values: list[bytes]) -> tuple[list[Any], int]:
    out, bad = [], 0
    for value in values:
        try:
            out.append(cbor2.loads(value))
        except (cbor2.CBORDecodeError, ValueError, TypeError, EOFError, RecursionError):
            bad += 1
    return out, bad


def _same(a: Any, b: Any) -> bool:
    """Equal, with the same types and the same key order at every level."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(map(_same, a, b))
    return bool(a == b)


@settings(max_examples=200, deadline=None)
@given(
    docs=st.lists(st.tuples(_docs, st.sampled_from([0, 0, 0, 1, 2, 3])), max_size=60),
    chunk=st.integers(min_value=1, max_value=40),
)
def test_decoding_together_gives_what_decoding_each_gives(
    docs: list[tuple[dict[str, Any], int]], chunk: int
) -> None:
    values = [_damaged(cbor2.dumps(doc), how) for doc, how in docs]
    expected, bad = _one_by_one(values)
    warned: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: warned.append(record.getMessage())  # type: ignore[method-assign]
    log = logging.getLogger("threadkit.db")
    log.addHandler(handler)
    saved = reads._CHUNK
    reads._CHUNK = chunk
    try:
        got = reads.decode_docs(values, "c")
    finally:
        reads._CHUNK = saved
        log.removeHandler(handler)
    assert len(got) == len(expected) and all(map(_same, got, expected))
    assert sum("left out of the read of 'c'" in m for m in warned) == bad


def test_a_find_reads_past_a_damaged_document_in_the_same_chunk(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from threadkit.db import dockeys

    with tk.Peer(memory=True) as peer:
        db = peer.new_db("decode")
        coll = db.new_collection("c", indexes=["n"])
        coll.create(*[{"_id": f"d{i}", "n": i % 2, "s": "x" * i} for i in range(20)])
        before = coll.find(tk.where("n").eq(1))
        engine = db.engine
        key = dockeys.doc_key(dockeys.coll_key(engine.prefix, "c"), "d5")
        with db._repo.transaction(write=True) as txn:
            cut = cbor2.dumps({"_id": "d5", "n": 1, "s": "x" * 5})[:-2]
            txn.put(key, cut, db=engine.tables.docs)
        with caplog.at_level(logging.WARNING):
            after = coll.find(tk.where("n").eq(1))
        assert after == [d for d in before if d["_id"] != "d5"]
        assert coll.find() == [d for d in coll.find(tk.Query()) if d["_id"] != "d5"]
        assert any("left out of the read of 'c'" in r.getMessage() for r in caplog.records)
