"""Block CIDs: CIDv1 dag-cbor sha2-256, string round trips, verification."""

from __future__ import annotations

import contextlib
import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from multiformats import CID, multibase

from threadkit.core.cid import (
    CID_PREFIX,
    CID_SIZE,
    check_cid,
    cid_from_string,
    cid_of,
    cid_to_string,
    verify_block,
)
from threadkit.errors import IntegrityError, MalformedRecord

EMPTY_CID = "bafyreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"


def test_prefix() -> None:
    assert bytes.fromhex("01711220") == CID_PREFIX
    assert CID_SIZE == 36


def test_known_vector() -> None:
    # sha2-256 of the empty block, as dag-cbor CIDv1 (also what ipfs/js-multiformats give)
    assert cid_to_string(cid_of(b"")) == EMPTY_CID
    assert cid_from_string(EMPTY_CID) == cid_of(b"")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=512))
def test_cid_of_matches_multiformats(block: bytes) -> None:
    cid = cid_of(block)
    assert len(cid) == CID_SIZE
    assert cid == CID_PREFIX + hashlib.sha256(block).digest()
    ref = CID("base32", 1, "dag-cbor", ("sha2-256", hashlib.sha256(block).digest()))
    assert cid == bytes(ref)
    assert check_cid(cid, "x") == cid
    verify_block(cid, block)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=256))
def test_string_round_trip(block: bytes) -> None:
    cid = cid_of(block)
    text = cid_to_string(cid)
    assert text.startswith("bafyrei")
    assert cid_from_string(text) == cid


@settings(max_examples=300, deadline=None)
@given(
    st.binary(max_size=64),
    st.sampled_from(["base32", "base58btc", "base16", "base64url", "base36", "base32upper"]),
)
def test_any_base_parses(block: bytes, base: str) -> None:
    cid = cid_of(block)
    text = multibase.encode(cid, base)
    assert cid_from_string(text) == cid


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=64), st.data())
def test_verify_block_detects_any_change(block: bytes, data: st.DataObject) -> None:
    cid = cid_of(block)
    changed = data.draw(st.binary(max_size=65).filter(lambda b: b != block))
    with pytest.raises(IntegrityError):
        verify_block(cid, changed)


def test_verify_block_names_what() -> None:
    with pytest.raises(IntegrityError, match="event block"):
        verify_block(cid_of(b"a"), b"b", "event block")


@pytest.mark.parametrize(
    "value",
    [
        None,
        b"",
        "bafy",
        cid_of(b"")[:-1],
        cid_of(b"") + b"\x00",
        b"\x01\x55\x12\x20" + bytes(32),  # raw codec
        b"\x01\x71\x13\x20" + bytes(32),  # sha2-512 code
        b"\x00\x71\x12\x20" + bytes(32),  # version 0
        bytearray(cid_of(b"")),
    ],
)
def test_check_cid_refuses(value: object) -> None:
    with pytest.raises(MalformedRecord):
        check_cid(value, "prev")


@pytest.mark.parametrize("text", ["", "bad", "bafy", "!!!", "bafkqaaicamcakbqhbaequcymbuha6ear"])
def test_cid_from_string_bad(text: str) -> None:
    with pytest.raises(MalformedRecord):
        cid_from_string(text)


@pytest.mark.parametrize("value", [None, 5, b"bafy"])
def test_cid_from_string_non_string(value: object) -> None:
    with pytest.raises(MalformedRecord):
        cid_from_string(value)  # type: ignore[arg-type]


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80))
def test_cid_from_string_only_raises_malformed(text: str) -> None:
    with contextlib.suppress(MalformedRecord):
        cid_from_string(text)


@pytest.mark.parametrize("value", [b"", b"\x01", b"\xff\xff\xff"])
def test_cid_to_string_never_raises(value: bytes) -> None:
    assert cid_to_string(value).startswith("<invalid cid")
