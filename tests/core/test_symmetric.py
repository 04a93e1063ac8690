"""AES-256-GCM: nonce ‖ ciphertext ‖ tag layout, round trips, and tamper detection."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import given, settings
from hypothesis import strategies as st

from threadkit.core.symmetric import KEY_SIZE, NONCE_SIZE, OVERHEAD, TAG_SIZE, SymmetricKey
from threadkit.errors import DecryptionError, InvalidThreadKey

KEY = SymmetricKey(bytes(range(32)))


def test_constants() -> None:
    assert (KEY_SIZE, NONCE_SIZE, TAG_SIZE, OVERHEAD) == (32, 12, 16, 28)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2048))
def test_round_trip(plain: bytes) -> None:
    sealed = KEY.encrypt(plain)
    assert len(sealed) == len(plain) + OVERHEAD
    assert KEY.decrypt(sealed) == plain


@settings(max_examples=100, deadline=None)
@given(st.binary(min_size=32, max_size=32), st.binary(max_size=256))
def test_layout_matches_plain_aes_gcm(raw: bytes, plain: bytes) -> None:
    """nonce ‖ ciphertext ‖ tag, no associated data: what ThreadDB's Go and JS code expect."""
    sealed = SymmetricKey(raw).encrypt(plain)
    nonce, rest = sealed[:NONCE_SIZE], sealed[NONCE_SIZE:]
    assert AESGCM(raw).decrypt(nonce, rest, None) == plain
    # and the other way round
    foreign = nonce + AESGCM(raw).encrypt(nonce, plain, None)
    assert SymmetricKey(raw).decrypt(foreign) == plain


def test_fresh_nonce_every_time() -> None:
    sealed = {KEY.encrypt(b"same") for _ in range(100)}
    assert len(sealed) == 100
    assert len({s[:NONCE_SIZE] for s in sealed}) == 100


def test_wrong_key() -> None:
    with pytest.raises(DecryptionError):
        SymmetricKey.new().decrypt(KEY.encrypt(b"secret"))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64), st.data())
def test_any_bit_flip_is_detected(plain: bytes, data: st.DataObject) -> None:
    sealed = bytearray(KEY.encrypt(plain))
    bit = data.draw(st.integers(0, len(sealed) * 8 - 1))
    sealed[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(DecryptionError):
        KEY.decrypt(bytes(sealed))


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=1, max_size=64), st.data())
def test_truncation_is_detected(plain: bytes, data: st.DataObject) -> None:
    sealed = KEY.encrypt(plain)
    cut = data.draw(st.integers(0, len(sealed) - 1))
    with pytest.raises(DecryptionError):
        KEY.decrypt(sealed[:cut])


@pytest.mark.parametrize("size", [0, 1, OVERHEAD - 1])
def test_too_short(size: int) -> None:
    with pytest.raises(DecryptionError, match="shorter"):
        KEY.decrypt(bytes(size))


def test_empty_plaintext() -> None:
    sealed = KEY.encrypt(b"")
    assert len(sealed) == OVERHEAD
    assert KEY.decrypt(sealed) == b""


@pytest.mark.parametrize("size", [0, 16, 24, 31, 33, 64])
def test_bad_key_length(size: int) -> None:
    with pytest.raises(InvalidThreadKey):
        SymmetricKey(bytes(size))


def test_equality_and_repr() -> None:
    raw = bytes(range(32))
    assert SymmetricKey(raw) == KEY
    assert hash(SymmetricKey(raw)) == hash(KEY)
    assert SymmetricKey.new() != KEY
    assert raw.hex() not in repr(KEY)
    assert "secret" in repr(KEY)
