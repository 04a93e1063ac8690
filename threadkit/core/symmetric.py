"""AES-256-GCM as ThreadDB uses it.

Output = 12-byte random nonce ‖ ciphertext ‖ 16-byte tag, no associated data.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from threadkit.errors import DecryptionError, InvalidThreadKey

__all__ = ["KEY_SIZE", "NONCE_SIZE", "OVERHEAD", "SymmetricKey"]

KEY_SIZE = 32
NONCE_SIZE = 12
TAG_SIZE = 16
OVERHEAD = NONCE_SIZE + TAG_SIZE


class SymmetricKey:
    """A 32-byte AES-256-GCM key.

    Examples
    --------
    >>> key = SymmetricKey.new()
    >>> key.decrypt(key.encrypt(b"hello"))
    b'hello'
    """

    __slots__ = ("_aead", "raw")

    def __init__(self, raw: bytes) -> None:
        if len(raw) != KEY_SIZE:
            raise InvalidThreadKey(f"symmetric key must be {KEY_SIZE} bytes, got {len(raw)}")
        self.raw = bytes(raw)
        self._aead = AESGCM(self.raw)

    @classmethod
    def new(cls) -> SymmetricKey:
        """A fresh random key."""
        return cls(os.urandom(KEY_SIZE))

    def encrypt(self, plaintext: bytes, nonce: bytes | None = None) -> bytes:
        """Encrypt; returns ``nonce ‖ ciphertext ‖ tag``.

        ``nonce`` must be fresh random bytes when given (callers that draw several
        at once pass them in); by default a new random nonce is drawn.
        """
        if nonce is None:
            nonce = os.urandom(NONCE_SIZE)
        elif len(nonce) != NONCE_SIZE:
            raise DecryptionError(f"nonce must be {NONCE_SIZE} bytes, got {len(nonce)}")
        return nonce + self._aead.encrypt(nonce, plaintext, None)

    def decrypt(self, sealed: bytes) -> bytes:
        """Open ``nonce ‖ ciphertext ‖ tag``; a wrong key or a changed byte is a DecryptionError."""
        if len(sealed) < OVERHEAD:
            raise DecryptionError(
                f"ciphertext is {len(sealed)} bytes, shorter than nonce and tag ({OVERHEAD})"
            )
        try:
            return self._aead.decrypt(sealed[:NONCE_SIZE], sealed[NONCE_SIZE:], None)
        except InvalidTag:
            raise DecryptionError("ciphertext does not open under this key") from None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SymmetricKey) and other.raw == self.raw

    def __hash__(self) -> int:
        return hash((SymmetricKey, self.raw))

    def __repr__(self) -> str:
        return "SymmetricKey(<secret>)"
