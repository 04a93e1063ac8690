"""Multibase helpers shared by the core values: decode any multibase, with threadkit errors.

Base32 (prefix ``b``), the form ThreadDB writes, goes through the standard
library's RFC 4648 codec: multiformats' pure-Python codec takes ~0.3 ms per key
here, 50 times longer, and ids and keys are rendered on every write. Every
other base goes through ``multiformats.multibase``. Tests check both agree.
"""

from __future__ import annotations

import base64
import binascii

from multiformats import multibase


def decode_any(text: str, error: type[ValueError], what: str) -> bytes:
    """Decode a multibase string in any base, raising ``error`` with a clear message.

    Parameters
    ----------
    text : str
        The multibase string (first character names the base).
    error : type
        The threadkit error class to raise on failure.
    what : str
        What the string should be, for the message (e.g. ``"thread id"``).
    """
    if not isinstance(text, str):
        raise error(f"{what} must be a string, got {type(text).__name__}")
    if not text:
        raise error(f"{what} is empty")
    if text[0] == "b" and text[1:] == text[1:].lower() and "=" not in text:
        body = text[1:].upper()
        try:
            data = base64.b32decode(body + "=" * (-len(body) % 8))
        except (binascii.Error, ValueError) as exc:
            raise error(f"{what} {text[:80]!r} is not valid base32: {exc}") from None
        if encode_base32(data) != text:
            raise error(f"{what} {text[:80]!r} is not canonical base32 (stray trailing bits)")
        return data
    try:
        return bytes(multibase.decode(text))
    except (ValueError, KeyError) as exc:
        raise error(f"{what} {text[:80]!r} is not valid multibase: {exc}") from None


def encode_base32(data: bytes) -> str:
    """Encode bytes as multibase base32 (lower case, no padding, prefix ``b``)."""
    return "b" + base64.b32encode(data).decode("ascii").rstrip("=").lower()
