"""Event values decoded at once are what decoding each value alone gives."""

from __future__ import annotations

from typing import Any

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from threadkit.db.eventvalues import decode_values
from threadkit.db.purge import MARKER

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=30)
    | st.binary(max_size=30)
)
DATA = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
ENTRIES = st.lists(
    st.tuples(
        # 24 and 500 are not actions, but their heads are two and three bytes long
        st.sampled_from([0, 1, 2, 3, 10, 11, 12, 13, 24, 500]),
        DATA,
        st.none() | st.binary(min_size=1, max_size=60),
        st.text(min_size=1, max_size=70),
        st.binary(min_size=1, max_size=70),
        st.sampled_from([(), (None,), (b"seen",), (None, None), (None, b"purge"), (b"s", b"p")]),
    ),
    max_size=40,
)


def _oracle(values: list[bytes]) -> tuple[list[int], list[Any], list[Any], list[Any]]:
    rows = [cbor2.loads(v) for v in values]
    data = [dict(MARKER) if len(r) > 6 and r[6] is not None else r[1] for r in rows]
    return [r[0] for r in rows], data, [r[3] for r in rows], [r[4] for r in rows]


@settings(max_examples=150, deadline=None)
@given(ENTRIES, st.sampled_from([1, 3, 1 << 14]))
def test_decoded_at_once_as_one_by_one(entries: list[Any], chunk: int) -> None:
    values = [
        cbor2.dumps([code, data, base, author, record, *more])
        for code, data, base, author, record, more in entries
    ]
    decoded = decode_values(values, chunk=chunk)
    codes, data, authors, records = _oracle(values)
    assert decoded.codes.tolist() == codes
    assert list(decoded.data) == data
    assert list(decoded.authors) == authors
    assert list(decoded.records) == records
    assert len(decoded.data) == len(decoded.authors) == len(decoded.records) == len(values)


def test_lists_of_equal_length_stay_one_per_event() -> None:
    values = [cbor2.dumps([1, [i, i], None, "k", b"r", None, None]) for i in range(3)]
    values.append(cbor2.dumps([1, [9, 9], None, "k", b"r"]))
    assert list(decode_values(values).data) == [[0, 0], [1, 1], [2, 2], [9, 9]]


def test_a_value_that_is_not_cbor_fails() -> None:
    with pytest.raises(cbor2.CBORDecodeError):
        decode_values([cbor2.dumps([0, {}, None, "k", b"r"])[:-3]])


def test_an_empty_value_fails() -> None:
    with pytest.raises(cbor2.CBORDecodeError):
        decode_values([cbor2.dumps([0, {}, None, "k", b"r"]), b""])
