"""Ed25519 identities and public keys in libp2p's key format, as ThreadDB uses them.

- public key bytes: protobuf ``08 01 12 20 ‖ 32-byte key``
- private key bytes: protobuf ``08 01 12 40 ‖ seed ‖ public``
- strings of either: multibase base32 of those bytes
- peer id (and log id): identity multihash of the public key bytes, base58btc (``12D3KooW…``)

py-libp2p stores only the 32-byte seed in its private protobuf; :meth:`Identity.from_bytes`
accepts that form too, so keys from py-libp2p, Go and JS all load.
"""

from __future__ import annotations

import functools

import base58
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from multiformats import multihash, varint
from nacl.bindings import crypto_sign

from threadkit.core._multibase import decode_any, encode_base32
from threadkit.errors import InvalidKey

__all__ = [
    "Identity",
    "PublicKey",
    "peer_id_bytes",
    "peer_id_from_public_bytes",
    "public_key_from_peer_id",
]

_PUB_PREFIX = b"\x08\x01\x12\x20"
_PRIV_PREFIX = b"\x08\x01\x12\x40"
_PRIV_SEED_PREFIX = b"\x08\x01\x12\x20"  # py-libp2p's seed-only private form
_RAW = (Encoding.Raw, PublicFormat.Raw)


class PublicKey:
    """An Ed25519 public key.

    Examples
    --------
    >>> ident = Identity.generate()
    >>> pub = PublicKey.from_string(str(ident.public))
    >>> pub.verify(b"data", ident.sign(b"data"))
    True
    >>> pub.peer_id.startswith("12D3KooW")
    True
    """

    __slots__ = ("_key", "_peer_id", "_str", "raw")

    def __init__(self, raw: bytes) -> None:
        if len(raw) != 32:
            raise InvalidKey(f"Ed25519 public key must be 32 bytes, got {len(raw)}")
        self.raw = bytes(raw)
        self._key = Ed25519PublicKey.from_public_bytes(self.raw)
        self._peer_id: str | None = None
        self._str: str | None = None

    @classmethod
    def from_bytes(cls, data: bytes) -> PublicKey:
        """Parse libp2p protobuf public key bytes (``08 01 12 20 ‖ key``)."""
        data = _as_bytes(data, "public key")
        if len(data) != 36 or not data.startswith(_PUB_PREFIX):
            raise InvalidKey(
                "public key must be a libp2p Ed25519 protobuf (08 01 12 20 ‖ 32 bytes), "
                f"got {len(data)} bytes starting {data[:4].hex()}"
            )
        return cls(data[4:])

    @classmethod
    def from_string(cls, text: str) -> PublicKey:
        """Parse the multibase string of the protobuf bytes."""
        return cls.from_bytes(decode_any(text, InvalidKey, "public key"))

    @classmethod
    def from_peer_id(cls, peer_id: str) -> PublicKey:
        """Recover the key from an Ed25519 peer id (identity multihash, base58btc)."""
        return public_key_from_peer_id(peer_id)

    def to_bytes(self) -> bytes:
        """The libp2p protobuf bytes."""
        return _PUB_PREFIX + self.raw

    def verify(self, data: bytes, signature: bytes) -> bool:
        """True when ``signature`` is this key's Ed25519 signature of ``data``."""
        try:
            self._key.verify(bytes(signature), bytes(data))
        except (InvalidSignature, ValueError, TypeError):
            return False
        return True

    @property
    def peer_id(self) -> str:
        """The libp2p peer id string (``12D3KooW…``)."""
        if self._peer_id is None:
            self._peer_id = peer_id_from_public_bytes(self.to_bytes())
        return self._peer_id

    def __str__(self) -> str:
        if self._str is None:
            self._str = encode_base32(self.to_bytes())
        return self._str

    def __repr__(self) -> str:
        return f"PublicKey({self.peer_id})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PublicKey) and other.raw == self.raw

    def __hash__(self) -> int:
        return hash((PublicKey, self.raw))


class Identity:
    """An Ed25519 private key: a log key, a peer key or a user's identity.

    Examples
    --------
    >>> ident = Identity.generate()
    >>> Identity.from_string(str(ident)) == ident
    True
    >>> len(ident.sign(b"x"))
    64
    """

    __slots__ = ("_key", "_secret", "public", "seed")

    def __init__(self, seed: bytes) -> None:
        if len(seed) != 32:
            raise InvalidKey(f"Ed25519 seed must be 32 bytes, got {len(seed)}")
        self.seed = bytes(seed)
        self._key = Ed25519PrivateKey.from_private_bytes(self.seed)
        self.public = PublicKey(self._key.public_key().public_bytes(*_RAW))
        self._secret = self.seed + self.public.raw  # libsodium's form of the secret key

    @classmethod
    def generate(cls) -> Identity:
        """A fresh random identity."""
        key = Ed25519PrivateKey.generate()
        from cryptography.hazmat.primitives.serialization import NoEncryption, PrivateFormat

        return cls(key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption()))

    @classmethod
    def from_bytes(cls, data: bytes) -> Identity:
        """Parse libp2p protobuf private key bytes (``08 01 12 40 ‖ seed ‖ public``).

        The seed-only form py-libp2p writes (``08 01 12 20 ‖ seed``) is accepted too.
        """
        data = _as_bytes(data, "private key")
        if len(data) == 68 and data.startswith(_PRIV_PREFIX):
            ident = cls(data[4:36])
            if ident.public.raw != data[36:]:
                raise InvalidKey("private key's public half does not match its seed")
            return ident
        if len(data) == 36 and data.startswith(_PRIV_SEED_PREFIX):
            return cls(data[4:])
        raise InvalidKey(
            "private key must be a libp2p Ed25519 protobuf (08 01 12 40 ‖ seed ‖ public), "
            f"got {len(data)} bytes starting {data[:4].hex()}"
        )

    @classmethod
    def from_string(cls, text: str) -> Identity:
        """Parse the multibase string of the protobuf bytes (ThreadDB's format)."""
        return cls.from_bytes(decode_any(text, InvalidKey, "private key"))

    def to_bytes(self) -> bytes:
        """The libp2p protobuf bytes (``08 01 12 40 ‖ seed ‖ public``)."""
        return _PRIV_PREFIX + self.seed + self.public.raw

    def sign(self, data: bytes) -> bytes:
        """The 64-byte Ed25519 signature of ``data``.

        Signed by libsodium (PyNaCl), which takes ~20 µs here against ~34 µs by
        ``cryptography``; Ed25519 signatures are deterministic (RFC 8032), so both
        give the same bytes (tests/core/test_identity_sign.py).
        """
        return crypto_sign(bytes(data), self._secret)[:64]

    def __str__(self) -> str:
        return encode_base32(self.to_bytes())

    def __repr__(self) -> str:
        return f"Identity({self.public.peer_id})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Identity) and other.seed == self.seed

    def __hash__(self) -> int:
        return hash((Identity, self.seed))


def peer_id_from_public_bytes(public_bytes: bytes) -> str:
    """The peer id string of libp2p protobuf public key bytes (identity multihash, base58btc).

    base58 comes from the ``base58`` package: multiformats' codec takes ~0.4 ms per
    peer id here, 30 times longer. The result is cached per key: peer ids are encoded
    on every log lookup, and multiformats' argument checks cost ~0.1 ms per call.
    """
    return _peer_id_from_public_bytes(bytes(public_bytes))


@functools.lru_cache(maxsize=4096)
def _peer_id_from_public_bytes(public_bytes: bytes) -> str:
    return str(base58.b58encode(bytes(multihash.wrap(public_bytes, "identity"))).decode())


def peer_id_bytes(peer_id: str) -> bytes:
    """The binary multihash of a peer id string (checked to be a multihash)."""
    if not isinstance(peer_id, str) or not peer_id:
        raise InvalidKey(f"peer id must be a non-empty string, got {peer_id!r}")
    return _peer_id_bytes(peer_id)


@functools.lru_cache(maxsize=4096)
def _peer_id_bytes(peer_id: str) -> bytes:
    # cached: every stored record, entry and applied mark names its log by these bytes,
    # and a database has a handful of logs (a failed parse raises, so is not cached)
    try:
        raw = bytes(base58.b58decode(peer_id))
    except (ValueError, KeyError, IndexError) as exc:
        raise InvalidKey(f"peer id {peer_id[:80]!r} is not a base58btc multihash: {exc}") from None
    code, digest = _unwrap(peer_id, raw)
    if code not in (0x00, 0x12):
        raise InvalidKey(f"peer id {peer_id[:80]!r} uses hash {code:#x}, not identity or sha2-256")
    if (code == 0x00 and len(digest) > 42) or (code == 0x12 and len(digest) != 32):
        raise InvalidKey(f"peer id {peer_id[:80]!r} has a digest of the wrong size")
    return raw


def public_key_from_peer_id(peer_id: str) -> PublicKey:
    """The Ed25519 public key inlined in a peer id."""
    peer_id_bytes(peer_id)  # a str that parses, so it can be a cache key
    return _public_key_from_peer_id(peer_id)


@functools.lru_cache(maxsize=4096)
def _public_key_from_peer_id(peer_id: str) -> PublicKey:
    # one PublicKey per log: its peer id and string forms are then computed once
    code, digest = _unwrap(peer_id, peer_id_bytes(peer_id))
    if code != 0x00:
        raise InvalidKey(f"peer id {peer_id[:80]!r} does not inline its key (not an identity hash)")
    return PublicKey.from_bytes(digest)


def _unwrap(peer_id: str, raw: bytes) -> tuple[int, bytes]:
    """``(code, digest)`` of the multihash ``raw`` that ``peer_id`` decodes to; InvalidKey
    when it is malformed."""
    try:
        code, code_len, _ = varint.decode_raw(raw)
        size, size_len, _ = varint.decode_raw(raw[code_len:])
    except (ValueError, KeyError, IndexError) as exc:
        raise InvalidKey(f"peer id {peer_id[:80]!r} is not a base58btc multihash: {exc}") from None
    digest = raw[code_len + size_len :]
    if size != len(digest):
        raise InvalidKey(
            f"peer id {peer_id[:80]!r} is not a base58btc multihash: it lists a digest of "
            f"size {size}, but the digest has size {len(digest)}"
        )
    return code, digest


def _as_bytes(data: object, what: str) -> bytes:
    if not isinstance(data, bytes | bytearray | memoryview):
        raise InvalidKey(f"{what} must be bytes, got {type(data).__name__}")
    return bytes(data)
