"""A query answered by one columnar scan with nothing cached (:mod:`threadkit.frames.scan`).

Properties, over the random documents and pandas expressions of the expression oracle:

- :func:`~threadkit.frames.scan.scan_select` gives exactly the frame built from the
  documents ``coll.find`` returns (or None, and then ``coll.query`` still does);
- ``coll.query`` gives that frame on the first query after the cache was cleared (the
  scan), on the second (which builds the whole frame) and on a third (answered from it);
- a walk that asks only for some paths (``decode(values, only=...)``) gives exactly the
  cells the full walk gives for them and the paths under them, and no others.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import cbor2
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import threadkit as tk
from tests.frames.test_expr_oracle import expressions, rows
from threadkit.errors import InvalidQuery
from threadkit.frames import cache
from threadkit.frames.cbor_columns import decode
from threadkit.frames.frame import frame_from_documents
from threadkit.frames.lazy import compile_for
from threadkit.frames.scan import scan_select

_names = itertools.count()


@pytest.fixture(scope="module")
def db() -> Iterator[Any]:
    with tk.Peer(memory=True) as peer:
        yield peer.new_db("scan")


def _outcome(run: Any) -> Any:
    try:
        return run()
    except InvalidQuery as exc:
        return ("error", str(exc))


def _same(got: Any, expected: Any) -> None:
    if isinstance(expected, tuple) or isinstance(got, tuple):
        assert got == expected
    else:
        pd.testing.assert_frame_equal(got, expected)


@pytest.mark.slow
@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(docs=rows(), expression=expressions(), indexed=st.booleans())
def test_a_scan_answers_as_the_store(
    db: Any, docs: list[dict[str, Any]], expression: tuple[str, dict[str, Any]], indexed: bool
) -> None:
    text, local_vars = expression
    name = f"s{next(_names)}"
    coll = db.new_collection(name, indexes=["i", "s"] if indexed else [])
    try:
        if docs:
            coll.create(docs)

        def reference() -> Any:
            found = coll.find(compile_for(coll, text, local_vars))
            return frame_from_documents(found, coll.config.schema)

        expected = _outcome(reference)
        query = _outcome(lambda: compile_for(coll, text, local_vars))
        if not isinstance(query, tuple):
            scanned = _outcome(lambda: scan_select(coll, query))
            event("scan answered" if scanned is not None else "scan left it to the store")
            if scanned is not None:
                _same(scanned, expected)
        cache.clear(db)
        for _ in range(3):  # the scan, the whole frame's build, an answer from it
            _same(_outcome(lambda: coll.query(text, local_vars)), expected)
    finally:
        db.delete_collection(name)


_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),
    st.text(max_size=5),
    st.lists(st.integers(), max_size=2),
)
_keys = st.sampled_from(["a", "b", "a.b", "c", "ab"])
_value = st.recursive(_leaf, lambda inner: st.dictionaries(_keys, inner, max_size=3), max_leaves=8)
_doc = st.dictionaries(_keys, _value, max_size=4)


@settings(max_examples=200, deadline=None)
@given(docs=st.lists(_doc, min_size=1, max_size=8), only=st.lists(_keys, max_size=2))
def test_a_walk_of_some_paths_gives_their_cells(
    docs: list[dict[str, Any]], only: list[str]
) -> None:
    values = [cbor2.dumps(d) for d in docs]
    full, some = decode(values), decode(values, only=only)
    assert some.n == full.n

    def asked(path: str) -> bool:
        return any(path == p or path.startswith(p + ".") for p in only)

    assert list(some.columns) == [p for p in full.columns if asked(p)]
    for path, cells in some.columns.items():
        other = full.columns[path]
        for mine, theirs in zip(
            (cells.rows, cells.kinds, cells.a, cells.b),
            (other.rows, other.kinds, other.a, other.b),
            strict=True,
        ):
            assert np.array_equal(mine, theirs)


def test_the_first_query_scans_and_the_second_builds_the_frame(db: Any) -> None:
    coll = db.new_collection("scanned")
    coll.create([{"_id": f"d{i:02d}", "n": i, "s": "x" * (i % 3)} for i in range(30)])
    cache.clear(db)
    whole = (coll.name, cache._EVERYTHING, None)
    first = coll.query("n > 25")
    assert list(first.index) == ["d26", "d27", "d28", "d29"]
    assert whole not in cache._db_cache(db).entries  # nothing cached by the scan
    second = coll.query("n < 2")
    assert list(second.index) == ["d00", "d01"]
    assert whole in cache._db_cache(db).entries  # the second built the whole frame
    pd.testing.assert_frame_equal(
        first, frame_from_documents(coll.find(tk.where("n").gt(25)), coll.config.schema)
    )
