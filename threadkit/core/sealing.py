"""Read keys sealed to a member's identity: how a new key epoch reaches each member.

When a member is revoked the read key rotates: a new random key starts a new **epoch**,
and an admin delivers it to every remaining member, sealed to that member's Ed25519
identity key (docs/access.md). Only standard constructions are composed here:

- the recipient's Ed25519 public key is converted to its X25519 (Montgomery) form with
  libsodium's ``crypto_sign_ed25519_pk_to_curve25519`` (PyNaCl), and the recipient's seed
  with ``crypto_sign_ed25519_sk_to_curve25519`` — the birational map RFC 7748 names;
- the key is encrypted with **HPKE** (RFC 9180, base mode) from ``cryptography``:
  DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20-Poly1305, a fresh ephemeral key per
  seal. HPKE's ``info`` binds the context: the domain, the thread id, the epoch, the
  recipient and the sender, so a sealed key opens only for that thread and epoch;
- the sender (an admin) signs the sealed box and its context with its identity key, so
  a recipient knows which identity delivered the key (the rules then check it is an
  admin), and nobody else can hand a member a key of their choosing;
- ``commitment`` is SHA-256 over a domain, the thread, the epoch and the key: the same
  for every recipient of one epoch, so each member can check it got the key the others
  got (the rotation event publishes it once).

Examples
--------
>>> from threadkit.core.ids import ThreadID
>>> admin, bob = Identity.generate(), Identity.generate()
>>> tid, key = ThreadID.new(), SymmetricKey.new()
>>> sealed = seal_epoch_key(key, recipient=bob.public, sender=admin, thread_id=tid, epoch=2)
>>> open_epoch_key(sealed, recipient=bob, thread_id=tid, epoch=2) == key
True
>>> SealedKey.from_bytes(sealed.to_bytes()) == sealed
True
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from nacl.bindings import (
    crypto_sign_ed25519_pk_to_curve25519,
    crypto_sign_ed25519_sk_to_curve25519,
)
from nacl.exceptions import CryptoError

from threadkit.core import dagcbor
from threadkit.core.identity import Identity, PublicKey
from threadkit.core.ids import ThreadID
from threadkit.core.symmetric import KEY_SIZE, SymmetricKey
from threadkit.errors import DecryptionError, InvalidKey, MalformedRecord, SignatureError

__all__ = [
    "MAX_EPOCH",
    "SealedKey",
    "key_commitment",
    "open_epoch_key",
    "seal_epoch_key",
]

MAX_EPOCH = 2**63 - 1
"""Largest epoch number (epochs count from 0, the key the database was created with)."""

_INFO_DOMAIN = b"threadkit/epoch-key/1\x00"
_SIG_DOMAIN = b"threadkit/epoch-key-sig/1\x00"
_COMMIT_DOMAIN = b"threadkit/epoch-key-commitment/1\x00"
_SUITE = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.CHACHA20_POLY1305)
_BOX_SIZE = 32 + KEY_SIZE + 16  # encapsulated key ‖ ciphertext ‖ tag
_FIELDS = frozenset({"recipient", "sender", "thread", "epoch", "commitment", "box", "sig"})


@dataclass(frozen=True)
class SealedKey:
    """One epoch's read key sealed to one member.

    Attributes
    ----------
    recipient, sender : PublicKey
        The member it is sealed to, and the admin who sealed and signed it.
    thread : bytes
        The thread id bytes.
    epoch : int
        The key epoch it starts.
    commitment : bytes
        :func:`key_commitment` of the key (32 bytes).
    box : bytes
        The HPKE output: encapsulated key ‖ ciphertext ‖ tag.
    sig : bytes
        The sender's Ed25519 signature over all of the above.
    """

    recipient: PublicKey
    sender: PublicKey
    thread: bytes
    epoch: int
    commitment: bytes
    box: bytes
    sig: bytes

    def to_node(self) -> dict[str, Any]:
        """The DAG-CBOR node."""
        return {**_signed_node(self), "sig": self.sig}

    def to_bytes(self) -> bytes:
        """The node encoded as DAG-CBOR."""
        return dagcbor.encode(self.to_node())

    @classmethod
    def from_bytes(cls, data: bytes) -> SealedKey:
        """Parse DAG-CBOR bytes; a wrong shape is :class:`MalformedRecord`."""
        node = dagcbor.decode(data, "sealed key")
        if not isinstance(node, dict) or set(node) != _FIELDS:
            raise MalformedRecord(f"sealed key must be a map of {sorted(_FIELDS)}")
        epoch = node["epoch"]
        if type(epoch) is not int or not 0 <= epoch <= MAX_EPOCH:
            raise MalformedRecord(f"sealed key epoch must be 0 to {MAX_EPOCH}, got {epoch!r}")
        for name, size in (("commitment", 32), ("box", _BOX_SIZE), ("sig", 64)):
            if type(node[name]) is not bytes or len(node[name]) != size:
                raise MalformedRecord(f"sealed key {name} must be {size} bytes")
        if type(node["thread"]) is not bytes:
            raise MalformedRecord("sealed key thread must be bytes")
        try:
            recipient = PublicKey.from_bytes(node["recipient"])
            sender = PublicKey.from_bytes(node["sender"])
        except InvalidKey as exc:
            raise MalformedRecord(f"sealed key: {exc}") from None
        return cls(
            recipient, sender, node["thread"], epoch, node["commitment"], node["box"], node["sig"]
        )


def key_commitment(key: SymmetricKey, *, thread_id: ThreadID, epoch: int) -> bytes:
    """SHA-256 of domain ‖ DAG-CBOR {thread, epoch} ‖ key: names one epoch's key publicly.

    The key is 32 random bytes, so the digest reveals nothing of it; two members whose
    opened keys have the same commitment hold the same key.
    """
    _check_epoch(epoch)
    context = dagcbor.encode({"thread": thread_id.to_bytes(), "epoch": epoch})
    return hashlib.sha256(_COMMIT_DOMAIN + context + key.raw).digest()


def seal_epoch_key(
    key: SymmetricKey,
    *,
    recipient: PublicKey,
    sender: Identity,
    thread_id: ThreadID,
    epoch: int,
) -> SealedKey:
    """Seal ``key`` (the read key of ``epoch``) to ``recipient``'s identity, signed by ``sender``.

    Raises
    ------
    InvalidKey
        ``recipient`` has no X25519 form (a key of small order).
    """
    if not isinstance(key, SymmetricKey):
        raise InvalidKey(f"the epoch key must be a SymmetricKey, got {type(key).__name__}")
    _check_epoch(epoch)
    try:
        x_public = X25519PublicKey.from_public_bytes(
            crypto_sign_ed25519_pk_to_curve25519(recipient.raw)
        )
    except (CryptoError, ValueError) as exc:
        raise InvalidKey(f"{recipient.peer_id} has no X25519 form: {exc}") from None
    info = _info(thread_id.to_bytes(), epoch, recipient, sender.public)
    box = _SUITE.encrypt(key.raw, x_public, info=info)
    unsigned = SealedKey(
        recipient,
        sender.public,
        thread_id.to_bytes(),
        epoch,
        key_commitment(key, thread_id=thread_id, epoch=epoch),
        box,
        b"",
    )
    sig = sender.sign(_SIG_DOMAIN + dagcbor.encode(_signed_node(unsigned)))
    return SealedKey(**{**unsigned.__dict__, "sig": sig})


def open_epoch_key(
    sealed: SealedKey,
    *,
    recipient: Identity,
    thread_id: ThreadID,
    epoch: int,
    sender: PublicKey | None = None,
) -> SymmetricKey:
    """Open a sealed key with the recipient's identity, for this thread and epoch only.

    Parameters
    ----------
    sealed : SealedKey
        What the rotation delivered.
    recipient : Identity
        The member's identity (its private key).
    thread_id, epoch : ThreadID, int
        The thread and epoch the caller expects; anything else is refused.
    sender : PublicKey, optional
        When given, the key must have been sealed by this identity.

    Raises
    ------
    SignatureError
        The sender's signature does not verify, or another sender sealed it.
    DecryptionError
        Not sealed to this recipient, for another thread or epoch, or tampered.
    """
    if sealed.thread != thread_id.to_bytes() or sealed.epoch != epoch:
        raise DecryptionError(
            f"sealed key is for another thread or epoch (epoch {sealed.epoch}, wanted {epoch})"
        )
    if sealed.recipient != recipient.public:
        raise DecryptionError(f"sealed key is for {sealed.recipient.peer_id}, not this identity")
    if sender is not None and sealed.sender != sender:
        raise SignatureError(f"sealed key comes from {sealed.sender.peer_id}, not the sender")
    if not sealed.sender.verify(_SIG_DOMAIN + dagcbor.encode(_signed_node(sealed)), sealed.sig):
        raise SignatureError(f"sealed key signature by {sealed.sender.peer_id} does not verify")
    x_private = X25519PrivateKey.from_private_bytes(
        crypto_sign_ed25519_sk_to_curve25519(recipient.seed + recipient.public.raw)
    )
    info = _info(sealed.thread, epoch, recipient.public, sealed.sender)
    try:
        raw = _SUITE.decrypt(sealed.box, x_private, info=info)
    except (InvalidTag, ValueError) as exc:
        raise DecryptionError(f"sealed key does not open: {exc or 'tag mismatch'}") from None
    key = SymmetricKey(raw)
    if key_commitment(key, thread_id=thread_id, epoch=epoch) != sealed.commitment:
        raise DecryptionError("opened key does not match the epoch's key commitment")
    return key


def _info(thread: bytes, epoch: int, recipient: PublicKey, sender: PublicKey) -> bytes:
    node = {
        "thread": thread,
        "epoch": epoch,
        "recipient": recipient.to_bytes(),
        "sender": sender.to_bytes(),
    }
    return _INFO_DOMAIN + dagcbor.encode(node)


def _signed_node(sealed: SealedKey) -> dict[str, Any]:
    return {
        "recipient": sealed.recipient.to_bytes(),
        "sender": sealed.sender.to_bytes(),
        "thread": sealed.thread,
        "epoch": sealed.epoch,
        "commitment": sealed.commitment,
        "box": sealed.box,
    }


def _check_epoch(epoch: object) -> None:
    if type(epoch) is not int or not 0 <= epoch <= MAX_EPOCH:
        raise InvalidKey(f"epoch must be an int from 0 to {MAX_EPOCH}, got {epoch!r}")
