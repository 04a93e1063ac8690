"""Multibase helpers shared by the core values: decode any multibase, with threadkit errors."""

from __future__ import annotations

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
    try:
        return bytes(multibase.decode(text))
    except (ValueError, KeyError) as exc:
        raise error(f"{what} {text[:80]!r} is not valid multibase: {exc}") from None


def encode_base32(data: bytes) -> str:
    """Encode bytes as multibase base32 (lower case, no padding, prefix ``b``)."""
    return str(multibase.encode(data, "base32"))
