"""Event values decoded without each event's author and record equal decoding each alone.

:mod:`threadkit.db.eventvalues` groups values by their last bytes and decodes one
(author, record) per group; these values share their tails as a store's do (the
events of a record), and some are made to look alike without being alike.
"""

from __future__ import annotations

import random
from typing import Any

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from threadkit.db.eventvalues import decode_chunks, decode_values

# (author, record) pairs whose tails need a byte string head of one, two and three bytes
SOURCES = [
    ("k", b"r"),
    ("k" * 5, b"\x01" * 6),
    ("bbaareiheggdsonjxhajnbo7cdffus5ue4hokfwb62iokqjtddw74cdbaoq", b"\x01q\x12 " + b"\x07" * 32),
    ("a" * 59, b"\x01q\x12 " + b"\x08" * 32),  # the same record suffix as none other
    ("w" * 300, b"\x02" * 36),
]
DATA = st.recursive(
    st.none() | st.integers(-(2**70), 2**70) | st.text(max_size=12) | st.binary(max_size=40),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=8,
)
EVENTS = st.lists(
    st.tuples(
        st.sampled_from([0, 1, 2, 3, 10, 11]),
        DATA,
        st.none() | st.binary(min_size=1, max_size=50),
        st.integers(0, len(SOURCES) - 1),
        st.sampled_from([(), (None,), (None, b"purge")]),
    ),
    max_size=60,
)


def _check(values: list[bytes], chunk: int) -> None:
    rows = [cbor2.loads(v) for v in values]
    decoded = decode_values(values, chunk=chunk)
    assert decoded.codes.tolist() == [r[0] for r in rows]
    assert list(decoded.data) == [
        {"_purged": True} if len(r) > 6 and r[6] is not None else r[1] for r in rows
    ]
    assert decoded.authors == [r[3] for r in rows]
    assert decoded.records == [r[4] for r in rows]
    assert len(decoded.tails) == len({(repr(a), r) for a, r in decoded.tails})


@settings(max_examples=150, deadline=None)
@given(EVENTS, st.sampled_from([1, 4, 7, 1 << 14]))
def test_values_of_a_few_records_decode_as_one_by_one(events: list[Any], chunk: int) -> None:
    values = [
        cbor2.dumps([code, data, base, *SOURCES[source], *more])
        for code, data, base, source, more in events
    ]
    _check(values, chunk)


def test_a_tail_that_looks_like_another_groups_is_read_as_it_is() -> None:
    # the same record (so the same last bytes), another author: a second value's tail
    record = b"\x01q\x12 " + bytes(range(32))
    values = [cbor2.dumps([0, {"n": i}, None, author, record]) for i, author in enumerate("xyx")]
    values.append(cbor2.dumps([1, {"n": 9}, None, "longer author", record]))
    _check(values, 1 << 14)


def test_data_that_holds_the_tail_bytes_is_kept_whole() -> None:
    author, record = SOURCES[2]
    tail = cbor2.dumps(author) + cbor2.dumps(record)
    values = [
        cbor2.dumps([0, {"copy": tail, "text": author}, None, author, record]),
        cbor2.dumps([1, [record, author], tail, author, record]),
        cbor2.dumps([0, tail, None, author, record]),
    ]
    _check(values, 1 << 14)


def test_a_tail_not_written_as_cbor2_writes_it_is_decoded_as_it_is() -> None:
    # "abc" with a two-byte head (78 03): the same string, other bytes
    odd = b"\x85\x00\xa1\x61n\x01\xf6\x78\x03abc\x41r"
    values = [cbor2.dumps([0, {"n": 0}, None, "abc", b"r"]), odd, odd]
    random.Random(1).shuffle(values)
    _check(values, 1 << 14)


def test_chunks_are_dropped_as_they_are_decoded() -> None:
    values = [cbor2.dumps([0, {"n": i}, None, *SOURCES[i % 3]]) for i in range(10)]
    chunks = [values[:4], values[4:]]
    whole = decode_values(values)
    decoded = decode_chunks(chunks)
    assert chunks == [[], []]
    assert decoded.data == whole.data and decoded.authors == whole.authors
    from_generator = decode_chunks(part for part in (values[:3], values[3:]))
    assert from_generator.records == whole.records


@pytest.mark.parametrize("value", [b"\x85\x00", b"\x85\x00\xf6", b"\x85\x01\xa0\xf6\x61k"])
@pytest.mark.parametrize("where", [0, 1])
def test_values_too_short_for_five_items_fail_as_cbor(value: bytes, where: int) -> None:
    values = [cbor2.dumps([0, {}, None, "k", b"r"])]
    values.insert(where, value)
    with pytest.raises(cbor2.CBORDecodeError):
        decode_values(values)
