"""Thread keys: 32/64-byte forms, multibase strings, and every bad length."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from multiformats import multibase

from threadkit.core.keys import ThreadKey
from threadkit.core.symmetric import SymmetricKey
from threadkit.errors import InvalidThreadKey

BASES = ["base16", "base32", "base32upper", "base36", "base58btc", "base64", "base64url"]


def test_new_has_read_key() -> None:
    key = ThreadKey.new()
    assert key.can_read
    assert len(key.to_bytes()) == 64
    assert key.to_bytes() == key.service + key.read
    assert isinstance(key.service_key, SymmetricKey)
    assert isinstance(key.read_key, SymmetricKey)


def test_new_service_only() -> None:
    key = ThreadKey.new(read=False)
    assert not key.can_read
    assert key.read is None
    assert key.read_key is None
    assert len(key.to_bytes()) == 32


def test_new_is_random() -> None:
    key = ThreadKey.new()
    assert key.service != key.read
    assert len({ThreadKey.new() for _ in range(20)}) == 20


def test_service_only_drops_read_key() -> None:
    key = ThreadKey.new()
    service = key.service_only()
    assert not service.can_read
    assert service.service == key.service
    assert service.to_bytes() == key.to_bytes()[:32]
    assert service != key
    assert key.can_read  # the original is unchanged


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(min_size=32, max_size=32), st.binary(min_size=64, max_size=64)))
def test_bytes_round_trip(data: bytes) -> None:
    key = ThreadKey.from_bytes(data)
    assert key.to_bytes() == data
    assert key.can_read == (len(data) == 64)
    assert key.service == data[:32]
    assert key.read == (data[32:] or None)
    assert ThreadKey.from_bytes(key.to_bytes()) == key
    assert hash(ThreadKey.from_bytes(data)) == hash(key)


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(st.binary(min_size=32, max_size=32), st.binary(min_size=64, max_size=64)),
    st.sampled_from(BASES),
)
def test_string_round_trip(data: bytes, base: str) -> None:
    key = ThreadKey.from_bytes(data)
    text = str(key)
    assert text.startswith("b")
    assert bytes(multibase.decode(text)) == data
    assert ThreadKey.from_string(text) == key
    assert ThreadKey.from_string(multibase.encode(data, base)) == key


def test_repr_hides_secrets() -> None:
    key = ThreadKey.new()
    assert key.service.hex() not in repr(key)
    assert str(key) not in repr(key)


@pytest.mark.parametrize("size", [0, 1, 16, 31, 33, 48, 63, 65, 96, 128])
def test_bad_length(size: int) -> None:
    with pytest.raises(InvalidThreadKey):
        ThreadKey.from_bytes(bytes(size))
    with pytest.raises(InvalidThreadKey):
        ThreadKey.from_string(multibase.encode(bytes(size), "base32"))


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=130).filter(lambda b: len(b) not in (32, 64)))
def test_any_other_length_is_invalid(data: bytes) -> None:
    with pytest.raises(InvalidThreadKey):
        ThreadKey.from_bytes(data)


@pytest.mark.parametrize("text", ["", "!!!", "bxyz1", "zOOO"])
def test_bad_string(text: str) -> None:
    with pytest.raises(InvalidThreadKey):
        ThreadKey.from_string(text)


@pytest.mark.parametrize("value", [None, 5, b"x" * 32, bytes(64)])
def test_from_string_non_string(value: object) -> None:
    with pytest.raises(InvalidThreadKey):
        ThreadKey.from_string(value)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [None, 5, "b" * 32, [0] * 32])
def test_from_bytes_non_bytes(value: object) -> None:
    with pytest.raises(InvalidThreadKey):
        ThreadKey.from_bytes(value)  # type: ignore[arg-type]


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=120))
def test_from_string_only_raises_invalid_thread_key(text: str) -> None:
    try:
        key = ThreadKey.from_string(text)
    except InvalidThreadKey:
        return
    assert len(key.to_bytes()) in (32, 64)


def test_accepts_bytearray_and_memoryview() -> None:
    data = bytes(range(64))
    assert ThreadKey.from_bytes(bytearray(data)) == ThreadKey.from_bytes(data)
    assert ThreadKey.from_bytes(memoryview(data)) == ThreadKey.from_bytes(data)


def test_error_is_value_error() -> None:
    with pytest.raises(ValueError):
        ThreadKey.from_bytes(bytes(33))
