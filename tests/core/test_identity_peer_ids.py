"""Peer ids framed and parsed by threadkit itself, against multiformats' codec as the oracle."""

from __future__ import annotations

import base58
import pytest
from hypothesis import given
from hypothesis import strategies as st
from multiformats import multihash

from threadkit.core.identity import (
    Identity,
    PublicKey,
    peer_id_bytes,
    peer_id_from_public_bytes,
    public_key_from_peer_id,
)
from threadkit.errors import InvalidKey


@given(st.binary(min_size=32, max_size=32))
def test_peer_id_matches_multiformats(seed: bytes) -> None:
    public = Identity(seed).public.to_bytes()
    expected = base58.b58encode(bytes(multihash.wrap(public, "identity"))).decode()
    assert peer_id_from_public_bytes(public) == expected
    assert peer_id_bytes(expected) == bytes(base58.b58decode(expected))
    code, digest = multihash.unwrap_raw(peer_id_bytes(expected))
    assert (code, bytes(digest)) == (0x00, public)
    assert public_key_from_peer_id(expected) == PublicKey.from_bytes(public)


@given(st.binary(min_size=0, max_size=200))
def test_long_identity_payloads_frame_like_multiformats(payload: bytes) -> None:
    expected = base58.b58encode(bytes(multihash.wrap(payload, "identity"))).decode()
    assert peer_id_from_public_bytes(payload) == expected


def test_sha256_peer_ids_parse_but_inline_no_key() -> None:
    digest = bytes(range(32))
    pid = base58.b58encode(bytes(multihash.wrap(digest, "sha2-256"))).decode()
    assert peer_id_bytes(pid) == b"\x12\x20" + digest
    with pytest.raises(InvalidKey, match="does not inline its key"):
        public_key_from_peer_id(pid)


def _b58(raw: bytes) -> str:
    return base58.b58encode(raw).decode()


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "0OIl",  # not base58
        _b58(b"\x00\x24" + b"k" * 10),  # size says 36, 10 follow
        _b58(b"\x00\x24" + b"k" * 40),  # trailing bytes
        _b58(b"\x12\x20" + b"k" * 31),  # sha2-256 of the wrong size
        _b58(b"\x11\x14" + b"k" * 20),  # sha1: neither identity nor sha2-256
        _b58(b"\x00\x2b" + b"k" * 43),  # an identity digest longer than 42 bytes
        _b58(b"\x80"),  # truncated varint
        _b58(b"\x80\x00\x00"),  # a varint not minimally encoded
    ],
)
def test_malformed_peer_ids_are_refused(bad: str) -> None:
    with pytest.raises(InvalidKey):
        peer_id_bytes(bad)
    with pytest.raises(InvalidKey):
        public_key_from_peer_id(bad)


@pytest.mark.parametrize("bad", [None, 5, b"12D3KooW", ["12D3KooW"]])
def test_non_strings_are_refused_not_cached(bad: object) -> None:
    with pytest.raises(InvalidKey, match="non-empty string"):
        peer_id_bytes(bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidKey, match="non-empty string"):
        public_key_from_peer_id(bad)  # type: ignore[arg-type]


def test_one_public_key_per_peer_id() -> None:
    # its peer id and string forms are computed once for every record of a log
    pid = Identity.generate().public.peer_id
    assert public_key_from_peer_id(pid) is public_key_from_peer_id(pid)
    assert public_key_from_peer_id(pid).peer_id == pid
