"""Index key encoding: bytes order equals value order, round trips, malformed input."""

from __future__ import annotations

import math
import sys
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from threadkit.db.indexkeys import (
    JSON_TYPES,
    TAG_BOOL,
    TAG_NUMBER,
    TAG_OTHER,
    TAG_STRING,
    OtherValue,
    decode_id,
    decode_value,
    encode_id,
    encode_value,
    json_type,
    key_type,
    type_range,
    value_end,
)
from threadkit.errors import InvalidInput

BIG = 2**53
# ints around 2**53 and beyond the double range, where float(n) loses information
edge_ints = st.sampled_from(
    [BIG - 1, BIG, BIG + 1, BIG + 2, BIG + 3, 2**64 + 1, 2**1023, 2**1024 + 7, 10**400]
).flatmap(lambda n: st.sampled_from([n, -n]))
ints = st.one_of(st.integers(), st.integers(-(2**70), 2**70), edge_ints)
floats = st.floats(allow_nan=False)  # includes ±inf, ±0.0, subnormals
numbers = st.one_of(ints, floats)
strings = st.text(alphabet=st.characters(codec=None), max_size=8) | st.text("a\x00b", max_size=5)


def _cmp(a: Any, b: Any) -> int:
    return int(a > b) - int(a < b)


def _sign(a: bytes, b: bytes) -> int:
    return (a > b) - (a < b)


@settings(max_examples=500)
@given(numbers, numbers)
def test_number_order(a: int | float, b: int | float) -> None:
    assert _sign(encode_value(a), encode_value(b)) == _cmp(a, b)


@settings(max_examples=300)
@given(strings, strings)
def test_string_order_is_code_point_order(a: str, b: str) -> None:
    assert _sign(encode_value(a), encode_value(b)) == _cmp(a, b)


@settings(max_examples=300)
@given(strings, strings)
def test_id_order(a: str, b: str) -> None:
    assert _sign(encode_id(a), encode_id(b)) == _cmp(a, b)


@given(st.booleans(), st.booleans())
def test_bool_order(a: bool, b: bool) -> None:
    assert _sign(encode_value(a), encode_value(b)) == _cmp(a, b)


@settings(max_examples=300)
@given(st.one_of(numbers, strings, st.booleans()), strings, st.data())
def test_value_then_id_sorts_by_pair(value: object, id_a: str, data: st.DataObject) -> None:
    """Encodings are prefix-free: value ‖ id keys sort by (value, id) within a type."""
    kind = json_type(value)
    other = data.draw(
        {"number": numbers, "string": strings, "boolean": st.booleans()}[kind], label="other"
    )
    id_b = data.draw(strings, label="id_b")
    key_a = encode_value(value) + encode_id(id_a)
    key_b = encode_value(other) + encode_id(id_b)
    by_value = _cmp(value, other)
    assert _sign(key_a, key_b) == (by_value if by_value else _cmp(id_a, id_b))


@settings(max_examples=500)
@given(numbers)
def test_number_round_trip(value: int | float) -> None:
    encoded = encode_value(value)
    decoded, end = decode_value(encoded + b"tail")
    assert end == len(encoded)
    assert decoded == value
    assert json_type(decoded) == "number"
    assert key_type(encoded) == "number"


@given(strings)
def test_string_round_trip(value: str) -> None:
    encoded = encode_value(value)
    assert decode_value(encoded + b"\x00more") == (value, len(encoded))
    assert key_type(encoded) == "string"


@given(strings)
def test_id_round_trip(value: str) -> None:
    encoded = encode_id(value)
    assert decode_id(encoded + encoded) == (value, len(encoded))


@given(st.booleans())
def test_bool_round_trip(value: bool) -> None:
    assert decode_value(encode_value(value)) == (value, 2)


def test_ints_and_floats_share_keys() -> None:
    assert encode_value(3) == encode_value(3.0)
    assert encode_value(0) == encode_value(0.0) == encode_value(-0.0)
    assert encode_value(BIG) == encode_value(float(BIG))
    # a double cannot hold 2**53 + 1: the suffix keeps it apart and in order
    assert encode_value(BIG) < encode_value(BIG + 1) < encode_value(BIG + 2)
    assert float(BIG + 1) == float(BIG)
    assert decode_value(encode_value(BIG + 1))[0] == BIG + 1
    assert isinstance(decode_value(encode_value(BIG + 1))[0], int)
    assert decode_value(encode_value(3))[0] == 3


def test_huge_ints_and_infinities() -> None:
    top = sys.float_info.max
    assert encode_value(top) < encode_value(10**400) < encode_value(math.inf)
    assert encode_value(-math.inf) < encode_value(-(10**400)) < encode_value(-top)
    assert decode_value(encode_value(10**400))[0] == 10**400
    assert decode_value(encode_value(-(10**400)))[0] == -(10**400)
    assert decode_value(encode_value(math.inf))[0] == math.inf
    # a difference longer than 126 bytes uses the long header: still ordered
    assert encode_value(2**1100) < encode_value(2**1100 + 1) < encode_value(2**1200)
    assert encode_value(-(2**1200)) < encode_value(-(2**1100) - 1) < encode_value(-(2**1100))


def test_string_escaping_keeps_prefix_order() -> None:
    assert encode_value("a") < encode_value("a\x00") < encode_value("a\x00\x00")
    assert encode_value("a\x00\x00") < encode_value("a\x01") < encode_value("ab")
    assert encode_value("") < encode_value("\x00")
    assert encode_value("a") == bytes([TAG_STRING]) + b"a\x00"
    assert encode_value("a\x00") == bytes([TAG_STRING]) + b"a\x00\xff\x00"
    assert encode_id("a") < encode_id("a\x00") < encode_id("ab")


def test_lone_surrogates_encode_in_code_point_order() -> None:
    values = ["\ud7ff", "\ud800", "\udfff", "\ue000", "\U00010000"]
    assert [encode_value(v) for v in values] == sorted(encode_value(v) for v in values)
    assert decode_value(encode_value("\ud800"))[0] == "\ud800"


def test_other_values_keep_their_kind() -> None:
    assert encode_value(None) == bytes([TAG_OTHER, 0])
    assert decode_value(encode_value(None)) == (OtherValue("null"), 2)
    assert decode_value(encode_value([1, "x"])) == (OtherValue("array"), 2)
    assert decode_value(encode_value({"a": 1})) == (OtherValue("object"), 2)
    assert decode_value(encode_value(())) == (OtherValue("array"), 2)
    values: list[Any] = [None, True, 1.5, "s", [], {}]
    assert [key_type(encode_value(v)) for v in values] == list(JSON_TYPES)


def test_tags() -> None:
    assert encode_value(True)[0] == TAG_BOOL
    assert encode_value(1)[0] == TAG_NUMBER
    assert encode_value("x")[0] == TAG_STRING
    assert encode_value([])[0] == TAG_OTHER


@pytest.mark.parametrize("kind", JSON_TYPES)
def test_type_range_holds_exactly_that_type(kind: str) -> None:
    samples: list[Any] = [
        None,
        [],
        {},
        False,
        True,
        -math.inf,
        -1,
        0,
        2.5,
        10**400,
        "",
        "\x00",
        "zz",
    ]
    low, high = type_range(kind)
    for value in samples:
        key = encode_value(value) + encode_id("some-id")
        assert (low <= key < high) == (json_type(value) == kind), value


def test_json_type() -> None:
    values: list[Any] = [None, False, 0, 0.5, "", [], (), {}]
    assert [json_type(v) for v in values] == [
        "null",
        "boolean",
        "number",
        "number",
        "string",
        "array",
        "array",
        "object",
    ]
    assert json_type({1, 2}) == "non-JSON set"
    assert json_type(object()) == "non-JSON object"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (math.nan, "NaN"),
        ({1, 2}, "set"),
        (b"bytes", "bytes"),
        (object(), "non-JSON object"),
    ],
)
def test_encode_refuses_non_json(value: object, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        encode_value(value)


def test_encode_id_refuses_non_strings() -> None:
    with pytest.raises(InvalidInput, match="string"):
        encode_id(5)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"\x09", "unknown index type tag"),
        (bytes([TAG_STRING]) + b"abc", "no terminator"),
        (bytes([TAG_STRING]) + b"\xff\xfe\x00", "not UTF-8"),
        (bytes([TAG_NUMBER]) + b"\x80\x00", "truncated"),
        (bytes([TAG_NUMBER]) + bytes(8), "truncated"),
        (bytes([TAG_NUMBER]) + bytes(8) + b"\x82\x01", "truncated"),
        (bytes([TAG_NUMBER]) + bytes(8) + b"\x81\x00", "non-canonical"),
        (bytes([TAG_NUMBER]) + bytes(8) + b"\xff\x00\x00\x00\x01\x05", "non-canonical length"),
        (bytes([TAG_NUMBER]) + bytes(8) + b"\xff\x00", "truncated"),
        (bytes([TAG_BOOL]), "boolean"),
        (bytes([TAG_BOOL, 2]), "boolean"),
        (bytes([TAG_OTHER]), "kind"),
        (bytes([TAG_OTHER, 9]), "kind"),
    ],
)
def test_decode_refuses_malformed_bytes(data: bytes, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        decode_value(data)


def test_decode_id_refuses_malformed_bytes() -> None:
    with pytest.raises(InvalidInput, match="no terminator"):
        decode_id(b"abc")
    with pytest.raises(InvalidInput, match="not UTF-8"):
        decode_id(b"\xff\x00")


def test_key_type_and_type_range_errors() -> None:
    with pytest.raises(InvalidInput):
        key_type(b"")
    with pytest.raises(InvalidInput):
        key_type(bytes([TAG_OTHER]))
    with pytest.raises(InvalidInput, match="unknown JSON type"):
        type_range("integer")


@given(st.one_of(numbers, strings, st.booleans(), st.none()), strings)
def test_value_end_is_where_decoding_ends(value: object, instance_id: str) -> None:
    key = b"prefix" + encode_value(value) + encode_id(instance_id)
    assert value_end(key, 6) == decode_value(key, 6)[1]
    assert decode_id(key, value_end(key, 6))[0] == instance_id
