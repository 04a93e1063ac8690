"""Thread ids: ``uvarint(version) ‖ uvarint(variant) ‖ random bytes``, as in ThreadDB.

The string form is multibase base32 (lower case, no padding, prefix ``b``);
parsing accepts any multibase.
"""

from __future__ import annotations

import enum
import os

from multiformats import varint

from threadkit.core._multibase import decode_any, encode_base32
from threadkit.errors import InvalidThreadID

__all__ = ["MIN_RANDOM_BYTES", "VERSION", "ThreadID", "Variant"]

VERSION = 1
"""The only thread id version there is."""

MIN_RANDOM_BYTES = 16
"""Shortest random part threadkit accepts (ThreadDB itself accepts 1)."""


class Variant(enum.IntEnum):
    """What kind of thread an id names (ThreadDB's multicodec codes)."""

    RAW = 0x55
    ACCESS_CONTROLLED = 0x70


class ThreadID:
    """The id of a thread (a database).

    Examples
    --------
    >>> tid = ThreadID.new(Variant.RAW)
    >>> ThreadID.from_string(str(tid)) == tid
    True
    >>> tid.variant
    <Variant.RAW: 85>
    """

    __slots__ = ("_bytes", "_variant")

    def __init__(self, data: bytes) -> None:
        self._variant = _check(data)
        self._bytes = bytes(data)

    @classmethod
    def new(cls, variant: Variant = Variant.RAW, size: int = 32) -> ThreadID:
        """Make a new random thread id of the given variant with ``size`` random bytes."""
        try:
            variant = Variant(variant)
        except ValueError:
            raise InvalidThreadID(f"unknown thread id variant {variant!r}") from None
        if not isinstance(size, int) or size < MIN_RANDOM_BYTES:
            raise InvalidThreadID(
                f"random part must be at least {MIN_RANDOM_BYTES} bytes, got {size!r}"
            )
        return cls(varint.encode(VERSION) + varint.encode(int(variant)) + os.urandom(size))

    @classmethod
    def from_bytes(cls, data: bytes) -> ThreadID:
        """Parse the binary form (as carried in protobufs and multiaddrs)."""
        if not isinstance(data, bytes | bytearray | memoryview):
            raise InvalidThreadID(f"thread id bytes must be bytes, got {type(data).__name__}")
        return cls(bytes(data))

    @classmethod
    def from_string(cls, text: str) -> ThreadID:
        """Parse the string form, in any multibase."""
        return cls(decode_any(text, InvalidThreadID, "thread id"))

    def to_bytes(self) -> bytes:
        """The binary form."""
        return self._bytes

    @property
    def version(self) -> int:
        """The id's version (always 1)."""
        return VERSION

    @property
    def variant(self) -> Variant:
        """The id's variant."""
        return self._variant

    def __str__(self) -> str:
        return encode_base32(self._bytes)

    def __repr__(self) -> str:
        return f"ThreadID({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ThreadID) and other._bytes == self._bytes

    def __hash__(self) -> int:
        return hash((ThreadID, self._bytes))

    def __bytes__(self) -> bytes:
        return self._bytes


def _read_uvarint(data: bytes, offset: int, what: str) -> tuple[int, int]:
    try:
        value, size, _ = varint.decode_raw(data[offset:])
    except ValueError as exc:
        raise InvalidThreadID(f"thread id {what} is not a valid uvarint: {exc}") from None
    return value, offset + size


def _check(data: bytes) -> Variant:
    if not data:
        raise InvalidThreadID("thread id is empty")
    version, offset = _read_uvarint(data, 0, "version")
    if version != VERSION:
        raise InvalidThreadID(f"thread id version {version} is not supported (want {VERSION})")
    code, offset = _read_uvarint(data, offset, "variant")
    try:
        variant = Variant(code)
    except ValueError:
        raise InvalidThreadID(f"thread id variant {code:#x} is unknown") from None
    random_len = len(data) - offset
    if random_len < MIN_RANDOM_BYTES:
        raise InvalidThreadID(
            f"thread id random part is {random_len} bytes, at least {MIN_RANDOM_BYTES} needed"
        )
    return variant
