"""The total order of ``db.history()``'s columnar read is the stable sort of every order key."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from hypothesis import given, settings
from hypothesis import strategies as st

from threadkit.frames.history_columns import _order_keys, _total_order

SIZE = 3
KEYS = st.lists(st.binary(min_size=SIZE, max_size=SIZE), max_size=40)


@settings(max_examples=200, deadline=None)
@given(KEYS, KEYS)
def test_total_order_is_the_stable_sort_of_both(stored: list[bytes], extra: list[bytes]) -> None:
    packed = np.array(stored, dtype=f"S{SIZE}")
    more = np.array(extra, dtype=f"S{SIZE}")
    both = np.concatenate([packed, more])
    expected = np.argsort(both, kind="stable")
    assert _total_order(packed, more).tolist() == expected.tolist()


@settings(max_examples=100, deadline=None)
@given(st.lists(st.binary(min_size=SIZE + 1, max_size=12), min_size=1, max_size=30))
def test_order_keys_are_the_last_bytes_of_each_key(keys: list[bytes]) -> None:
    array = pa.array(keys, pa.binary())
    cut = _order_keys(array, SIZE)
    expected = pc.binary_slice(array, -SIZE).to_pylist()
    assert [bytes(row) for row in cut.view(np.uint8).reshape(len(keys), SIZE)] == expected
