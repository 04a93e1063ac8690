"""Thread ids: binary and multibase round trips, known vectors, and every bad input."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from multiformats import multibase, varint

from threadkit.core.ids import MIN_RANDOM_BYTES, VERSION, ThreadID, Variant
from threadkit.errors import InvalidThreadID

KNOWN_BYTES = b"\x01\x55" + bytes(range(32))
KNOWN_STRING = "bafkqaaicamcakbqhbaequcymbuha6earcijrifiwc4mbsgq3dqor4hy"
PAPER_ID = "bafkxd5bjgi6k4zivuoyxo4ua4mzyy"


def _encodable_bases() -> list[str]:
    """Every base multiformats can both encode and decode arbitrary bytes with."""
    sample = KNOWN_BYTES + bytes(range(200, 256))
    names = []
    for base in multibase.table():
        try:
            text = multibase.encode(sample, base.name)
            ok = bytes(multibase.decode(text)) == sample
        except (KeyError, ValueError):
            continue
        if ok:
            names.append(base.name)
    return sorted(names)


BASES = _encodable_bases()

ids = st.builds(
    lambda variant, random: ThreadID.from_bytes(
        varint.encode(VERSION) + varint.encode(int(variant)) + random
    ),
    st.sampled_from(list(Variant)),
    st.binary(min_size=MIN_RANDOM_BYTES, max_size=64),
)


def test_every_common_base_is_covered() -> None:
    for name in ("base2", "base16", "base32", "base36", "base58btc", "base64", "base64url"):
        assert name in BASES


# -- known vectors ----------------------------------------------------------------------


def test_known_vector_bytes_to_string() -> None:
    tid = ThreadID.from_bytes(KNOWN_BYTES)
    assert str(tid) == KNOWN_STRING
    assert tid.variant is Variant.RAW
    assert tid.version == 1


def test_known_vector_string_to_bytes() -> None:
    assert ThreadID.from_string(KNOWN_STRING).to_bytes() == KNOWN_BYTES


def test_paper_id() -> None:
    tid = ThreadID.from_string(PAPER_ID)
    data = tid.to_bytes()
    assert tid.version == 1
    assert tid.variant is Variant.RAW
    assert data[:2] == b"\x01\x55"
    assert len(data) - 2 == 16
    assert str(tid) == PAPER_ID


def test_access_controlled_prefix() -> None:
    tid = ThreadID.new(Variant.ACCESS_CONTROLLED)
    assert tid.to_bytes()[:2] == b"\x01\x70"
    assert tid.variant is Variant.ACCESS_CONTROLLED


# -- new() ------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", list(Variant))
@pytest.mark.parametrize("size", [16, 32, 64])
def test_new(variant: Variant, size: int) -> None:
    tid = ThreadID.new(variant, size=size)
    assert tid.variant is variant
    assert len(tid.to_bytes()) == 2 + size
    assert ThreadID.from_string(str(tid)) == tid


def test_new_default_is_raw_32() -> None:
    tid = ThreadID.new()
    assert tid.variant is Variant.RAW
    assert len(tid.to_bytes()) == 34


def test_new_is_random() -> None:
    assert len({ThreadID.new() for _ in range(50)}) == 50


@pytest.mark.parametrize("size", [0, 1, 15, -1, 16.0, "32", None])
def test_new_bad_size(size: object) -> None:
    with pytest.raises(InvalidThreadID):
        ThreadID.new(Variant.RAW, size=size)  # type: ignore[arg-type]


@pytest.mark.parametrize("variant", [0, 0x50, 50, -1, "raw", None])
def test_new_bad_variant(variant: object) -> None:
    with pytest.raises(InvalidThreadID):
        ThreadID.new(variant)  # type: ignore[arg-type]


# -- round trips ------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(ids)
def test_bytes_round_trip(tid: ThreadID) -> None:
    again = ThreadID.from_bytes(tid.to_bytes())
    assert again == tid
    assert hash(again) == hash(tid)
    assert bytes(again) == tid.to_bytes()
    assert again.variant == tid.variant


@settings(max_examples=300, deadline=None)
@given(ids)
def test_string_round_trip(tid: ThreadID) -> None:
    text = str(tid)
    assert text.startswith("b")
    assert text == text.lower()
    assert "=" not in text
    assert ThreadID.from_string(text) == tid
    assert text in repr(tid)


@settings(max_examples=400, deadline=None)
@given(ids, st.sampled_from(BASES))
def test_any_multibase_parses_to_same_id(tid: ThreadID, base: str) -> None:
    text = multibase.encode(tid.to_bytes(), base)
    parsed = ThreadID.from_string(text)
    assert parsed == tid
    assert str(parsed) == str(tid)  # always re-encoded as base32


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=80))
def test_from_bytes_only_raises_invalid_thread_id(data: bytes) -> None:
    try:
        tid = ThreadID.from_bytes(data)
    except InvalidThreadID:
        return
    assert tid.to_bytes() == data


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80))
def test_from_string_only_raises_invalid_thread_id(text: str) -> None:
    with contextlib.suppress(InvalidThreadID):
        ThreadID.from_string(text)


def test_equality_and_hash() -> None:
    a = ThreadID.from_bytes(KNOWN_BYTES)
    b = ThreadID.from_string(KNOWN_STRING)
    assert a == b
    assert len({a, b}) == 1
    assert a != KNOWN_BYTES
    assert a != KNOWN_STRING
    assert a != ThreadID.new()


def test_accepts_bytearray_and_memoryview() -> None:
    assert ThreadID.from_bytes(bytearray(KNOWN_BYTES)) == ThreadID.from_bytes(KNOWN_BYTES)
    assert ThreadID.from_bytes(memoryview(KNOWN_BYTES)) == ThreadID.from_bytes(KNOWN_BYTES)


# -- bad input --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "!!!",  # no base has prefix '!'
        "bxyz1",  # '1' is not base32
        "zOOO",  # 'O' is not base58btc
        "fzz",  # not hex
        "not an id",
        "b",  # empty payload
        "z",
        "bafkqaaicamcakbqhbaequcymbuha6earcijrifiwc4mbsgq3dqor4hy!",
    ],
)
def test_bad_multibase(text: str) -> None:
    with pytest.raises(InvalidThreadID):
        ThreadID.from_string(text)


def test_empty_string() -> None:
    with pytest.raises(InvalidThreadID, match="empty"):
        ThreadID.from_string("")


@pytest.mark.parametrize("value", [None, 5, KNOWN_BYTES, ["b"], 1.5])
def test_non_string(value: object) -> None:
    with pytest.raises(InvalidThreadID):
        ThreadID.from_string(value)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [None, 5, KNOWN_STRING, [1, 85]])
def test_from_bytes_non_bytes(value: object) -> None:
    with pytest.raises(InvalidThreadID):
        ThreadID.from_bytes(value)  # type: ignore[arg-type]


@pytest.mark.parametrize("version", [0, 2, 5, 127, 300])
def test_wrong_version(version: int) -> None:
    data = varint.encode(version) + b"\x55" + bytes(32)
    with pytest.raises(InvalidThreadID, match="version"):
        ThreadID.from_bytes(data)
    with pytest.raises(InvalidThreadID, match="version"):
        ThreadID.from_string(multibase.encode(data, "base32"))


@pytest.mark.parametrize("variant", [0, 50, 0x56, 0x71, 0x200])
def test_unknown_variant(variant: int) -> None:
    data = b"\x01" + varint.encode(variant) + bytes(32)
    with pytest.raises(InvalidThreadID, match="variant"):
        ThreadID.from_bytes(data)


@pytest.mark.parametrize("variant", list(Variant))
@pytest.mark.parametrize("size", [0, 1, 8, 15])
def test_short_random_part(variant: Variant, size: int) -> None:
    data = b"\x01" + varint.encode(int(variant)) + bytes(size)
    with pytest.raises(InvalidThreadID):
        ThreadID.from_bytes(data)
    with pytest.raises(InvalidThreadID):
        ThreadID.from_string(multibase.encode(data, "base32"))


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x81",  # truncated version varint
        b"\x01",  # no variant
        b"\x01\x81",  # truncated variant varint
        b"\x01\xd5",  # truncated two-byte variant
        b"\x81\x00\x55" + bytes(32),  # non-minimal version varint
        b"\x01\xd5\x00" + bytes(32),  # non-minimal variant varint
    ],
)
def test_truncated_or_bad_varint(data: bytes) -> None:
    with pytest.raises(InvalidThreadID):
        ThreadID.from_bytes(data)


def test_error_is_value_error() -> None:
    with pytest.raises(ValueError):
        ThreadID.from_string("nope")
