"""Ed25519 identities and public keys in libp2p's protobuf format, peer ids, known vectors."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from multiformats import multibase, multihash

from threadkit.core.identity import (
    Identity,
    PublicKey,
    peer_id_from_public_bytes,
    public_key_from_peer_id,
)
from threadkit.errors import InvalidKey

PUB_PREFIX = bytes.fromhex("08011220")
PRIV_PREFIX = bytes.fromhex("08011240")

# libp2p peer-id spec test vector (Ed25519 public key protobuf)
SPEC_PUBLIC = bytes.fromhex(
    "080112201ed1e8fae2c4a144b8be8fd4b47bf3d3b34b871c3cacf6010f0e42d474fce27e"
)
SPEC_PEER_ID = "12D3KooWBtg3aaRMjxwedh83aGiUkwSxDwUZkzuJcfaqUmo7R3pq"

# RFC 8032 section 7.1, TEST 1
RFC_SEED = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
RFC_PUBLIC = bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
RFC_SIG = bytes.fromhex(
    "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b4"
    "6bd25bf5f0595bbe24655141438e7a100b"
)

seeds = st.binary(min_size=32, max_size=32)


# -- known vectors ----------------------------------------------------------------------


def test_libp2p_spec_peer_id() -> None:
    pub = PublicKey.from_bytes(SPEC_PUBLIC)
    assert pub.peer_id == SPEC_PEER_ID
    assert peer_id_from_public_bytes(SPEC_PUBLIC) == SPEC_PEER_ID
    assert PublicKey.from_peer_id(SPEC_PEER_ID) == pub
    assert PublicKey.from_peer_id(SPEC_PEER_ID).to_bytes() == SPEC_PUBLIC


def test_rfc8032_test1() -> None:
    ident = Identity(RFC_SEED)
    assert ident.public.raw == RFC_PUBLIC
    assert ident.sign(b"") == RFC_SIG
    assert ident.public.verify(b"", RFC_SIG)
    assert not ident.public.verify(b"\x00", RFC_SIG)


def test_rfc8032_test1_protobuf_forms() -> None:
    ident = Identity(RFC_SEED)
    assert ident.to_bytes() == PRIV_PREFIX + RFC_SEED + RFC_PUBLIC
    assert ident.public.to_bytes() == PUB_PREFIX + RFC_PUBLIC
    assert Identity.from_bytes(PRIV_PREFIX + RFC_SEED + RFC_PUBLIC) == ident
    # py-libp2p's seed-only private form
    assert Identity.from_bytes(PUB_PREFIX + RFC_SEED) == ident


def test_peer_id_is_identity_multihash_base58btc() -> None:
    ident = Identity(RFC_SEED)
    pid = ident.public.peer_id
    assert pid.startswith("12D3KooW")
    mh = bytes(multibase.decode("z" + pid))
    assert mh[:2] == b"\x00\x24"
    assert bytes(multihash.unwrap(mh)) == ident.public.to_bytes()


# -- round trips ------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(seeds)
def test_identity_round_trips(seed: bytes) -> None:
    ident = Identity(seed)
    data = ident.to_bytes()
    assert len(data) == 68
    assert data[:4] == PRIV_PREFIX
    assert data[4:36] == seed
    assert data[36:] == ident.public.raw
    assert Identity.from_bytes(data) == ident
    text = str(ident)
    assert text.startswith("b")
    assert Identity.from_string(text) == ident
    assert Identity.from_string(multibase.encode(data, "base58btc")) == ident
    assert hash(Identity.from_bytes(data)) == hash(ident)


@settings(max_examples=200, deadline=None)
@given(seeds)
def test_seed_only_private_form(seed: bytes) -> None:
    """py-libp2p writes ``08 01 12 20 ‖ seed``; it loads to the same identity."""
    ident = Identity.from_bytes(PUB_PREFIX + seed)
    assert ident == Identity(seed)
    assert ident.to_bytes() == PRIV_PREFIX + seed + ident.public.raw
    assert Identity.from_string(multibase.encode(PUB_PREFIX + seed, "base32")) == ident


@settings(max_examples=200, deadline=None)
@given(seeds, st.sampled_from(["base32", "base58btc", "base16", "base64url", "base36"]))
def test_public_key_round_trips(seed: bytes, base: str) -> None:
    pub = Identity(seed).public
    data = pub.to_bytes()
    assert len(data) == 36
    assert data[:4] == PUB_PREFIX
    assert PublicKey.from_bytes(data) == pub
    assert PublicKey.from_string(str(pub)) == pub
    assert str(pub).startswith("b")
    assert PublicKey.from_string(multibase.encode(data, base)) == pub
    assert PublicKey.from_peer_id(pub.peer_id) == pub
    assert public_key_from_peer_id(pub.peer_id) == pub
    assert pub.peer_id.startswith("12D3KooW")
    assert pub.peer_id in repr(pub)
    assert hash(PublicKey(pub.raw)) == hash(pub)


@settings(max_examples=200, deadline=None)
@given(seeds, st.binary(max_size=256))
def test_sign_verify(seed: bytes, message: bytes) -> None:
    ident = Identity(seed)
    sig = ident.sign(message)
    assert len(sig) == 64
    assert ident.public.verify(message, sig)
    assert not ident.public.verify(message + b"\x00", sig)
    forged = bytearray(sig)
    forged[0] ^= 1
    assert not ident.public.verify(message, bytes(forged))
    assert not Identity.generate().public.verify(message, sig)


@pytest.mark.parametrize("sig", [b"", bytes(63), bytes(65), "x" * 64, None])
def test_verify_malformed_signature_is_false(sig: object) -> None:
    assert Identity(RFC_SEED).public.verify(b"", sig) is False  # type: ignore[arg-type]


def test_generate_is_random() -> None:
    idents = {Identity.generate() for _ in range(20)}
    assert len(idents) == 20
    assert len({i.public.peer_id for i in idents}) == 20


def test_repr_hides_seed() -> None:
    ident = Identity(RFC_SEED)
    assert RFC_SEED.hex() not in repr(ident)
    assert str(ident) not in repr(ident)
    assert ident.public.peer_id in repr(ident)


def test_equality() -> None:
    a, b = Identity(RFC_SEED), Identity(RFC_SEED)
    assert a == b
    assert a.public == b.public
    assert a != a.public
    assert a.public != a.public.to_bytes()
    assert a != Identity.generate()


# -- bad input --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        b"",
        PUB_PREFIX,
        PUB_PREFIX + RFC_PUBLIC[:31],  # short
        PUB_PREFIX + RFC_PUBLIC + b"\x00",  # long
        bytes.fromhex("08001220") + RFC_PUBLIC,  # RSA type
        bytes.fromhex("08021220") + RFC_PUBLIC,  # secp256k1 type
        bytes.fromhex("08011221") + RFC_PUBLIC,  # wrong length byte
        PRIV_PREFIX + RFC_SEED + RFC_PUBLIC,  # a private key is not a public key
        RFC_PUBLIC,  # raw, no protobuf framing
        bytes(36),
    ],
)
def test_public_key_bad_bytes(data: bytes) -> None:
    with pytest.raises(InvalidKey):
        PublicKey.from_bytes(data)
    with pytest.raises(InvalidKey):
        PublicKey.from_string(multibase.encode(data, "base32") if data else "")


@pytest.mark.parametrize("size", [0, 31, 33, 36])
def test_public_key_raw_wrong_length(size: int) -> None:
    with pytest.raises(InvalidKey):
        PublicKey(bytes(size))


@pytest.mark.parametrize(
    "data",
    [
        b"",
        PRIV_PREFIX + RFC_SEED,  # 68-byte prefix but 36 bytes
        PRIV_PREFIX + RFC_SEED + RFC_PUBLIC + b"\x00",  # 69 bytes
        PRIV_PREFIX + RFC_SEED + RFC_PUBLIC[:31],  # 67 bytes
        PUB_PREFIX + RFC_SEED + RFC_PUBLIC,  # 68 bytes with the seed-only prefix
        bytes.fromhex("08021240") + RFC_SEED + RFC_PUBLIC,  # wrong key type
        bytes.fromhex("08001240") + RFC_SEED + RFC_PUBLIC,
        RFC_SEED,  # raw seed, no framing
        RFC_SEED + RFC_PUBLIC,  # raw 64 bytes, no framing
        PUB_PREFIX + RFC_SEED[:31],  # truncated seed-only form
    ],
)
def test_identity_bad_bytes(data: bytes) -> None:
    with pytest.raises(InvalidKey):
        Identity.from_bytes(data)


def test_identity_mismatched_public_half() -> None:
    other = Identity.generate().public.raw
    with pytest.raises(InvalidKey, match="public half"):
        Identity.from_bytes(PRIV_PREFIX + RFC_SEED + other)
    flipped = bytearray(PRIV_PREFIX + RFC_SEED + RFC_PUBLIC)
    flipped[-1] ^= 1
    with pytest.raises(InvalidKey, match="public half"):
        Identity.from_bytes(bytes(flipped))
    with pytest.raises(InvalidKey, match="public half"):
        Identity.from_string(multibase.encode(bytes(flipped), "base32"))


@pytest.mark.parametrize("size", [0, 31, 33, 64])
def test_identity_raw_seed_wrong_length(size: int) -> None:
    with pytest.raises(InvalidKey):
        Identity(bytes(size))


@pytest.mark.parametrize("value", [None, 5, "text", [8, 1, 18, 32]])
def test_from_bytes_non_bytes(value: object) -> None:
    with pytest.raises(InvalidKey):
        PublicKey.from_bytes(value)  # type: ignore[arg-type]
    with pytest.raises(InvalidKey):
        Identity.from_bytes(value)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [None, 5, b"bytes", "", "!!!", "bxyz1"])
def test_from_string_bad(value: object) -> None:
    with pytest.raises(InvalidKey):
        PublicKey.from_string(value)  # type: ignore[arg-type]
    with pytest.raises(InvalidKey):
        Identity.from_string(value)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "peer_id",
    [
        "",
        None,
        5,
        "abc0",  # '0' is not base58
        "12D3KooW",  # truncated: multihash length does not match
        SPEC_PEER_ID[:-1],
        "1",
        "zzzz",  # not a multihash
        "QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N",  # sha2-256 peer id: key not inlined
    ],
)
def test_bad_peer_id(peer_id: object) -> None:
    with pytest.raises(InvalidKey):
        PublicKey.from_peer_id(peer_id)  # type: ignore[arg-type]


def test_peer_id_inlining_a_non_ed25519_key() -> None:
    mh = bytes(multihash.wrap(bytes.fromhex("08021220") + bytes(32), "identity"))
    peer_id = multibase.encode(mh, "base58btc")[1:]
    with pytest.raises(InvalidKey):
        PublicKey.from_peer_id(peer_id)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=80))
def test_parsers_only_raise_invalid_key(data: bytes) -> None:
    for parse in (PublicKey.from_bytes, Identity.from_bytes):
        with contextlib.suppress(InvalidKey):
            parse(data)
    text = multibase.encode(data, "base58btc")[1:]
    with contextlib.suppress(InvalidKey):
        PublicKey.from_peer_id(text)
