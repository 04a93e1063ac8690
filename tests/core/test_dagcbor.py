"""DAG-CBOR nodes: canonical encoding, links as tag 42, and strict decoding."""

from __future__ import annotations

import contextlib
import datetime
import decimal
import fractions
import re
import uuid
from typing import Any

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from threadkit.core.cid import cid_of
from threadkit.core.dagcbor import Link, decode, encode, link_tag
from threadkit.errors import MalformedRecord

links = st.binary(max_size=16).map(lambda b: Link(cid_of(b)))
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**64), 2**64 - 1),
    st.text(max_size=20),
    st.binary(max_size=20),
    links,
)
nodes = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=5),
        st.dictionaries(st.text(max_size=8), children, max_size=5),
    ),
    max_leaves=25,
)


def _typed(node: Any) -> Any:
    """A structure that tells Link from bytes and bool from int, for exact comparisons."""
    if isinstance(node, Link):
        return ("link", bytes(node))
    if isinstance(node, bytes):
        return ("bytes", node)
    if isinstance(node, bool):
        return ("bool", node)
    if isinstance(node, int):
        return ("int", node)
    if isinstance(node, dict):
        return ("map", {k: _typed(v) for k, v in node.items()})
    if isinstance(node, list | tuple):
        return ("list", [_typed(v) for v in node])
    return (type(node).__name__, node)


def _map_keys_in_order(data: bytes) -> list[list[str]]:
    """The keys of every map in ``data``, in the order they were written."""
    found: list[list[str]] = []

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            found.append(list(value))
            for v in value.values():
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)
        elif isinstance(value, cbor2.CBORTag):
            walk(value.value)

    walk(cbor2.loads(data, tag_hook=lambda _d, tag: tag))
    return found


# -- round trips ------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(nodes)
def test_round_trip(node: Any) -> None:
    data = encode(node)
    back = decode(data)
    assert _typed(back) == _typed(node)
    assert encode(back) == data  # canonical: one encoding per value


@settings(max_examples=200, deadline=None)
@given(nodes)
def test_map_keys_length_first_then_bytewise(node: Any) -> None:
    for keys in _map_keys_in_order(encode(node)):
        encoded = [k.encode() for k in keys]
        assert encoded == sorted(encoded, key=lambda k: (len(k), k))


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.text(max_size=8), st.integers(-(2**64), 2**64 - 1), max_size=10))
def test_encoding_ignores_insertion_order(node: dict[str, int]) -> None:
    assert encode(dict(reversed(list(node.items())))) == encode(node)


def test_known_map_order() -> None:
    assert encode({"b": 1, "aa": 2, "a": 3}).hex() == "a361610361620162616102"


def test_link_is_tag_42_with_identity_multibase_prefix() -> None:
    cid = cid_of(b"x")
    data = encode(Link(cid))
    assert data == bytes.fromhex("d82a5825") + b"\x00" + cid
    assert data == cbor2.dumps(link_tag(cid))
    back = decode(data)
    assert isinstance(back, Link)
    assert back == cid


def test_bytes_stay_bytes() -> None:
    cid = cid_of(b"x")
    back = decode(encode({"raw": cid, "link": Link(cid)}))
    assert type(back["raw"]) is bytes
    assert type(back["link"]) is Link


def test_tuples_encode_as_lists() -> None:
    assert encode((1, 2)) == encode([1, 2])


def test_minimal_integer_encoding() -> None:
    assert encode(0) == b"\x00"
    assert encode(23) == b"\x17"
    assert encode(24) == b"\x18\x18"
    assert encode(255) == b"\x18\xff"
    assert encode(256) == b"\x19\x01\x00"
    assert encode(-1) == b"\x20"


class _Opaque:
    pass


@pytest.mark.parametrize("value", [_Opaque(), [_Opaque()], {"k": _Opaque()}])
def test_unencodable_objects(value: object) -> None:
    with pytest.raises(MalformedRecord):
        encode(value)


@pytest.mark.parametrize(
    "value",
    [
        {1, 2},  # cbor2 writes tag 258
        frozenset([1]),
        complex(1, 2),  # tag 43000
        datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC),  # tag 0
        datetime.date(2020, 1, 1),  # tag 1004
        decimal.Decimal("1.5"),  # tag 4
        fractions.Fraction(1, 3),  # tag 30
        uuid.UUID(int=1),  # tag 37
        re.compile("a"),  # tag 35
        2**64,  # tag 2 bignum: DAG-CBOR integers are 64-bit
        -(2**64) - 1,  # tag 3
        {1: "x"},  # int map key
        {b"k": 1},  # bytes map key
        float("nan"),
        float("inf"),
    ],
    ids=repr,
)
def test_encode_refuses_what_dag_cbor_cannot_hold(value: object) -> None:
    """encode() writes DAG-CBOR only: no tags but 42, string keys, no NaN/Infinity."""
    with pytest.raises((MalformedRecord, TypeError, ValueError)):
        encode(value)


# -- strict decoding --------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(nodes, st.data())
def test_truncated(node: Any, data: st.DataObject) -> None:
    encoded = encode(node)
    cut = data.draw(st.integers(0, len(encoded) - 1))
    with pytest.raises(MalformedRecord):
        decode(encoded[:cut])


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\xff",  # break outside indefinite item
        b"\x1c",  # reserved additional info
        b"\x61",  # text, length 1, missing
        b"\x62\xff\xfe",  # invalid UTF-8
        b"\xa1\x61",  # map, key truncated
        b"\x5a\xff\xff\xff\xff",  # byte string claiming 4 GiB
    ],
)
def test_not_cbor(data: bytes) -> None:
    with pytest.raises(MalformedRecord):
        decode(data)


@pytest.mark.parametrize("data", ["text", None, 5])
def test_non_bytes(data: object) -> None:
    with pytest.raises(MalformedRecord):
        decode(data)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "data",
    [
        b"\xd8\x2b\x00",  # tag 43
        b"\xd8\x18\x41\x00",  # tag 24 (embedded CBOR)
        b"\xd9\x01\x00\x00",  # tag 256
        b"\xc0\x74" + b"2013-03-21T20:04:00Z",  # tag 0 (date/time string)
        b"\xc1\x00",  # tag 1 (epoch date/time)
        b"\xc2\x41\x01",  # tag 2 (bignum)
        b"\xc3\x41\x01",  # tag 3 (negative bignum)
        b"\xc4\x82\x01\x02",  # tag 4 (decimal fraction)
        b"\xd8\x1c\x81\x00",  # tag 28 (shareable)
        b"\xd8\x1e\x82\x01\x02",  # tag 30 (rational)
        b"\xd8\x25\x50" + bytes(16),  # tag 37 (UUID)
        b"\xd9\x01\x02\x81\x01",  # tag 258 (set)
        b"\xd9\xd9\xf7\x01",  # tag 55799 (self-described CBOR)
    ],
)
def test_unknown_tag(data: bytes) -> None:
    """DAG-CBOR allows tag 42 only; any other tag is refused, whatever cbor2 knows of it."""
    with pytest.raises(MalformedRecord):
        decode(data)


@pytest.mark.parametrize(
    "data",
    [
        b"\xd8\x2a\x41\x01",  # tag 42 without the 0x00 prefix
        b"\xd8\x2a\x60",  # tag 42 around a string
        b"\xd8\x2a\x00",  # tag 42 around an int
    ],
)
def test_bad_link(data: bytes) -> None:
    with pytest.raises(MalformedRecord):
        decode(data)


@pytest.mark.parametrize(
    "data",
    [
        b"\x9f\x01\xff",  # indefinite array
        b"\xbf\x61\x61\x01\xff",  # indefinite map
        b"\x5f\x41\x01\xff",  # indefinite byte string
        b"\x7f\x61\x61\xff",  # indefinite text string
        b"\x81\x9f\xff",  # nested
    ],
)
def test_indefinite_length(data: bytes) -> None:
    with pytest.raises(MalformedRecord):
        decode(data)


@pytest.mark.parametrize(
    "data",
    [
        b"\xa2\x61a\x01\x61a\x02",
        b"\xa2\x61a\x01\x61a\x01",
        b"\x81\xa2\x61b\x01\x61b\x02",
    ],
)
def test_duplicate_map_keys(data: bytes) -> None:
    with pytest.raises(MalformedRecord):
        decode(data)


def test_deep_nesting() -> None:
    with pytest.raises(MalformedRecord):
        decode(b"\x81" * 100_000 + b"\x00")


@pytest.mark.parametrize("data", [b"\x01\x02", b"\xa0\xa0", encode({"a": 1}) + b"\x00"])
def test_trailing_bytes(data: bytes) -> None:
    """A block is exactly one node; bytes after it are not silently dropped."""
    with pytest.raises(MalformedRecord):
        decode(data)


@pytest.mark.parametrize(
    "data",
    [
        b"\xa1\x01\x02",  # int key
        b"\xa1\x41a\x02",  # bytes key
    ],
)
def test_non_string_map_keys(data: bytes) -> None:
    """DAG-CBOR maps are keyed by strings only."""
    with pytest.raises(MalformedRecord):
        decode(data)


@pytest.mark.parametrize("value", [1.5, 0.5, -2.0, 1e300])
def test_floats_are_always_64_bit(value: float) -> None:
    """DAG-CBOR (and go-ipld-cbor, which ThreadDB uses) writes every float as 64-bit."""
    data = encode(value)
    assert data[0] == 0xFB
    assert len(data) == 9


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=64))
def test_decode_only_raises_malformed(data: bytes) -> None:
    with contextlib.suppress(MalformedRecord):
        decode(data)
