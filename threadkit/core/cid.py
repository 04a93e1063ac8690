"""Content ids of blocks: CIDv1, codec dag-cbor (0x71), multihash sha2-256.

CIDs travel and are stored as their binary form (``bytes``). The four-byte
prefix is taken from ``multiformats`` once; hashing a block on the hot path is
then one ``hashlib.sha256`` call. Strings use ``multiformats`` directly.
"""

from __future__ import annotations

import hashlib

from multiformats import CID, multihash

from threadkit.core._multibase import encode_base32
from threadkit.errors import IntegrityError, MalformedRecord

__all__ = ["CID_SIZE", "check_cid", "cid_from_string", "cid_of", "cid_to_string", "verify_block"]


def _prefix() -> bytes:
    sample = CID("base32", 1, "dag-cbor", multihash.digest(b"", "sha2-256"))
    raw = bytes(sample)
    return raw[: len(raw) - 32]


CID_PREFIX = _prefix()
"""``01 71 12 20``: version 1, dag-cbor, sha2-256, 32-byte digest."""

CID_SIZE = len(CID_PREFIX) + 32


def cid_of(block: bytes) -> bytes:
    """The binary CID of a block."""
    return CID_PREFIX + hashlib.sha256(block).digest()


def verify_block(cid: bytes, block: bytes, what: str = "block") -> None:
    """Raise IntegrityError when ``block`` does not hash to ``cid``."""
    if cid_of(block) != cid:
        raise IntegrityError(f"{what} does not hash to its CID {cid_to_string(cid)}")


def check_cid(value: object, what: str) -> bytes:
    """``value`` as a CID of the form threadkit writes, or MalformedRecord."""
    if not isinstance(value, bytes) or len(value) != CID_SIZE or not value.startswith(CID_PREFIX):
        raise MalformedRecord(f"{what} is not a dag-cbor sha2-256 CIDv1")
    return value


def cid_to_string(cid: bytes) -> str:
    """The base32 string of a binary CID (``bafy…``).

    The CIDs threadkit makes (:func:`check_cid`'s form) are rendered with the standard
    library's base32, 100 times faster than multiformats here; others go through it.
    """
    raw = bytes(cid)
    if len(raw) == CID_SIZE and raw.startswith(CID_PREFIX):
        return encode_base32(raw)
    try:
        return str(CID.decode(raw).set(base="base32"))
    except (ValueError, KeyError):
        return "<invalid cid " + raw.hex() + ">"


def cid_from_string(text: str) -> bytes:
    """The binary form of a CID string, in any multibase."""
    if not isinstance(text, str):
        raise MalformedRecord(f"a CID string must be a str, got {type(text).__name__}")
    try:
        return bytes(CID.decode(text))
    except (ValueError, KeyError, TypeError, IndexError) as exc:
        raise MalformedRecord(f"{text[:100]!r} is not a CID: {exc}") from None
