"""Thread keys: a 32-byte service key and an optional 32-byte read key.

Bytes are ``service ‖ read`` (64) or ``service`` (32); the string is multibase
base32 of those bytes. The service key encrypts record nodes (replicators
hold it); the read key encrypts event headers (only readers hold it).
"""

from __future__ import annotations

from threadkit.core._multibase import decode_any, encode_base32
from threadkit.core.symmetric import KEY_SIZE, SymmetricKey
from threadkit.errors import InvalidThreadKey

__all__ = ["ThreadKey"]


class ThreadKey:
    """The keys of a thread.

    Examples
    --------
    >>> key = ThreadKey.new()
    >>> key.can_read, len(key.to_bytes())
    (True, 64)
    >>> ThreadKey.from_string(str(key)) == key
    True
    >>> key.service_only().can_read
    False
    """

    __slots__ = ("_read", "_service")

    def __init__(self, service: SymmetricKey, read: SymmetricKey | None = None) -> None:
        self._service = service
        self._read = read

    @classmethod
    def new(cls, read: bool = True) -> ThreadKey:
        """A fresh random key; ``read=False`` gives a service-only key."""
        return cls(SymmetricKey.new(), SymmetricKey.new() if read else None)

    @classmethod
    def from_bytes(cls, data: bytes) -> ThreadKey:
        """Parse ``service ‖ read`` (64 bytes) or ``service`` (32 bytes)."""
        if not isinstance(data, bytes | bytearray | memoryview):
            raise InvalidThreadKey(f"thread key must be bytes, got {type(data).__name__}")
        data = bytes(data)
        if len(data) == KEY_SIZE:
            return cls(SymmetricKey(data))
        if len(data) == 2 * KEY_SIZE:
            return cls(SymmetricKey(data[:KEY_SIZE]), SymmetricKey(data[KEY_SIZE:]))
        raise InvalidThreadKey(
            f"thread key must be {KEY_SIZE} or {2 * KEY_SIZE} bytes, got {len(data)}"
        )

    @classmethod
    def from_string(cls, text: str) -> ThreadKey:
        """Parse the multibase string form."""
        return cls.from_bytes(decode_any(text, InvalidThreadKey, "thread key"))

    def to_bytes(self) -> bytes:
        """``service ‖ read``, or ``service`` alone for a service-only key."""
        return self._service.raw + (self._read.raw if self._read else b"")

    @property
    def service(self) -> bytes:
        """The 32-byte service key."""
        return self._service.raw

    @property
    def read(self) -> bytes | None:
        """The 32-byte read key, or None for a service-only key."""
        return self._read.raw if self._read else None

    @property
    def can_read(self) -> bool:
        """True when the key holds a read key."""
        return self._read is not None

    @property
    def service_key(self) -> SymmetricKey:
        """The service key as a cipher."""
        return self._service

    @property
    def read_key(self) -> SymmetricKey | None:
        """The read key as a cipher, or None."""
        return self._read

    def service_only(self) -> ThreadKey:
        """This key without its read key (what a replicator is given)."""
        return ThreadKey(self._service)

    def __str__(self) -> str:
        return encode_base32(self.to_bytes())

    def __repr__(self) -> str:
        return f"ThreadKey(can_read={self.can_read})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ThreadKey) and other.to_bytes() == self.to_bytes()

    def __hash__(self) -> int:
        return hash((ThreadKey, self.to_bytes()))
