"""Writer proofs: that an identity authorized an event, and how (docs/access.md).

A record is signed by its **log key**; that proves which log it belongs to, not who
wrote it. A writer proof is a signature by the writer's **identity key** (Ed25519), in
one of three kinds:

- ``direct``: the identity signs one record's content (its event CID, or any bytes the
  layer above chooses) in one log of one thread. One signature per record.
- ``delegation``: the identity signs "log key L may write for me in thread T". Every
  record the log key signs in that thread is then the identity's: one signature per
  log, checked once and cached.
- ``attested``: a daemon identity D signs "client X wrote this content via daemon D".
  The proof names X but is made by D's key, so a rule can tell it from X's own proof
  and require direct proof (:attr:`Authorship.is_direct`). A daemon never holds X's key,
  so it can never make a direct or delegation proof for X: in those kinds the writer is
  *defined* as the key that signed.

What is signed is ``DOMAIN ‖ DAG-CBOR {kind, thread, log, content?, client?}``, with
the thread id bytes, the log's public key bytes (libp2p protobuf form) and the content
bytes. The domain prefix keeps these signatures from being valid as a record signature
(``threadkit/record/1``), a token challenge (32 random bytes: never this long and never
starting with the prefix) or anything else an identity key signs; the ``kind`` field
keeps one kind from being read as another.

Examples
--------
>>> from threadkit.core.ids import ThreadID
>>> alice, log = Identity.generate(), Identity.generate()
>>> tid = ThreadID.new()
>>> proof = prove_direct(alice, thread_id=tid, log=log.public, content=b"event cid")
>>> who = verify_proof(proof, thread_id=tid, log=log.public, content=b"event cid")
>>> who.writer == alice.public, str(who.kind), who.is_direct
(True, 'direct', True)
>>> WriterProof.from_bytes(proof.to_bytes()) == proof
True
"""

from __future__ import annotations

import enum
import functools
from dataclasses import dataclass
from typing import Any

from threadkit.core import dagcbor
from threadkit.core.identity import Identity, PublicKey
from threadkit.core.ids import ThreadID
from threadkit.errors import InvalidKey, MalformedRecord, WriterProofError

__all__ = [
    "DOMAIN",
    "Authorship",
    "ProofKind",
    "WriterProof",
    "attest",
    "delegate",
    "proof_message",
    "prove_direct",
    "verify_proof",
]

DOMAIN = b"threadkit/writer-proof/1\x00"
"""Prefix of every message a writer proof signs."""

_SIG_SIZE = 64
_MAX_CONTENT = 1024
"""Longest content a proof names: a CID or a digest, never a whole body."""


class ProofKind(enum.StrEnum):
    """How a writer proof binds its writer to a record."""

    DIRECT = "direct"
    DELEGATION = "delegation"
    ATTESTED = "attested"


@dataclass(frozen=True)
class WriterProof:
    """A writer proof as it travels (a DAG-CBOR node).

    Attributes
    ----------
    kind : ProofKind
        ``direct``, ``delegation`` or ``attested``.
    signer : PublicKey
        The key that signed: the writer (direct, delegation) or the daemon (attested).
    sig : bytes
        The 64-byte Ed25519 signature of :func:`proof_message`.
    client : PublicKey or None
        The client the daemon writes for (attested only).
    """

    kind: ProofKind
    signer: PublicKey
    sig: bytes
    client: PublicKey | None = None

    def to_node(self) -> dict[str, Any]:
        """The DAG-CBOR node: ``{kind, signer, sig, client?}``."""
        node: dict[str, Any] = {
            "kind": str(self.kind),
            "signer": self.signer.to_bytes(),
            "sig": self.sig,
        }
        if self.client is not None:
            node["client"] = self.client.to_bytes()
        return node

    def to_bytes(self) -> bytes:
        """The node encoded as DAG-CBOR."""
        return dagcbor.encode(self.to_node())

    @classmethod
    def from_node(cls, node: object) -> WriterProof:
        """Parse a decoded node; a wrong shape is :class:`WriterProofError`."""
        if not isinstance(node, dict) or not {"kind", "signer", "sig"} <= node.keys():
            raise WriterProofError("writer proof must be a map {kind, signer, sig, client?}")
        if not node.keys() <= {"kind", "signer", "sig", "client"}:
            raise WriterProofError(f"writer proof has unknown fields {sorted(node)}")
        try:
            kind = ProofKind(node["kind"])
        except ValueError:
            raise WriterProofError(f"unknown writer proof kind {node['kind']!r}") from None
        sig = node["sig"]
        if type(sig) is not bytes or len(sig) != _SIG_SIZE:
            raise WriterProofError("writer proof signature is not 64 bytes")
        signer = _key(node["signer"], "signer")
        client = _key(node["client"], "client") if "client" in node else None
        if (kind is ProofKind.ATTESTED) != (client is not None):
            raise WriterProofError("an attested proof, and only it, names a client")
        return cls(kind, signer, sig, client)

    @classmethod
    def from_bytes(cls, data: bytes) -> WriterProof:
        """Parse DAG-CBOR bytes."""
        try:
            node = dagcbor.decode(data, "writer proof")
        except MalformedRecord as exc:
            raise WriterProofError(str(exc)) from None
        return cls.from_node(node)


@dataclass(frozen=True)
class Authorship:
    """Who a verified proof says wrote a record.

    Attributes
    ----------
    writer : PublicKey
        The identity the write counts for (the client, for an attested proof).
    kind : ProofKind
        The kind of proof that showed it.
    via : PublicKey or None
        The daemon that attested the write, None when the writer signed itself.
    """

    writer: PublicKey
    kind: ProofKind
    via: PublicKey | None = None

    @property
    def is_direct(self) -> bool:
        """True when the writer's own key signed (direct or delegation), not a daemon."""
        return self.via is None


def proof_message(
    kind: ProofKind,
    *,
    thread_id: ThreadID,
    log: PublicKey,
    content: bytes | None = None,
    client: PublicKey | None = None,
) -> bytes:
    """The bytes a writer proof signs: ``DOMAIN ‖ DAG-CBOR {kind, thread, log, content?, client?}``.

    ``content`` is required for ``direct`` and ``attested`` and absent for
    ``delegation``; ``client`` only for ``attested``.
    """
    kind = ProofKind(kind)
    if not isinstance(thread_id, ThreadID):
        raise WriterProofError(f"thread_id must be a ThreadID, got {type(thread_id).__name__}")
    if not isinstance(log, PublicKey):
        raise WriterProofError(f"log must be a PublicKey, got {type(log).__name__}")
    node: dict[str, Any] = {
        "kind": str(kind),
        "thread": thread_id.to_bytes(),
        "log": log.to_bytes(),
    }
    if kind is ProofKind.DELEGATION:
        if content is not None:
            raise WriterProofError("a delegation covers a whole log: it names no content")
    else:
        if not isinstance(content, bytes | bytearray | memoryview):
            raise WriterProofError(f"a {kind} proof needs content bytes, got {content!r:.40}")
        if not 0 < len(content) <= _MAX_CONTENT:
            raise WriterProofError(
                f"proof content must be 1 to {_MAX_CONTENT} bytes (a CID), got {len(content)}"
            )
        node["content"] = bytes(content)
    if (kind is ProofKind.ATTESTED) != (client is not None):
        raise WriterProofError("an attested proof, and only it, names a client")
    if client is not None:
        node["client"] = client.to_bytes()
    return DOMAIN + dagcbor.encode(node)


def prove_direct(
    identity: Identity, *, thread_id: ThreadID, log: PublicKey, content: bytes
) -> WriterProof:
    """``identity`` signs that it wrote ``content`` in ``log`` of thread ``thread_id``."""
    message = proof_message(ProofKind.DIRECT, thread_id=thread_id, log=log, content=content)
    return WriterProof(ProofKind.DIRECT, identity.public, identity.sign(message))


def delegate(identity: Identity, *, thread_id: ThreadID, log: PublicKey) -> WriterProof:
    """``identity`` signs that log key ``log`` may write for it in thread ``thread_id``.

    One signature per log: every record ``log`` signs in that thread counts as
    ``identity``'s (the record signature itself binds the record to the log).
    """
    message = proof_message(ProofKind.DELEGATION, thread_id=thread_id, log=log)
    return WriterProof(ProofKind.DELEGATION, identity.public, identity.sign(message))


def attest(
    daemon: Identity,
    *,
    client: PublicKey,
    thread_id: ThreadID,
    log: PublicKey,
    content: bytes,
) -> WriterProof:
    """The daemon's identity signs "``client`` wrote ``content`` via this daemon".

    The proof counts for ``client`` only as an attested write (:attr:`Authorship.via`
    is the daemon): rules may refuse it where they require direct proof.
    """
    if not isinstance(client, PublicKey):
        raise WriterProofError(f"client must be a PublicKey, got {type(client).__name__}")
    if client == daemon.public:
        raise WriterProofError(
            "a daemon writing for itself makes a direct proof, not an attested one"
        )
    message = proof_message(
        ProofKind.ATTESTED, thread_id=thread_id, log=log, content=content, client=client
    )
    return WriterProof(ProofKind.ATTESTED, daemon.public, daemon.sign(message), client)


def verify_proof(
    proof: WriterProof,
    *,
    thread_id: ThreadID,
    log: PublicKey,
    content: bytes | None = None,
) -> Authorship:
    """Check a writer proof for one record; returns who wrote it and how.

    Parameters
    ----------
    proof : WriterProof
        The proof carried with (or for) the record.
    thread_id : ThreadID
        The thread the record is in.
    log : PublicKey
        The key of the log the record is in (its record signature was checked against it).
    content : bytes, optional
        The record's content the proof must name (direct, attested); ignored for a
        delegation, which covers every record of the log.

    Raises
    ------
    WriterProofError
        The signature does not verify for this thread, log and content.
    """
    if not isinstance(proof, WriterProof):
        raise WriterProofError(f"expected a WriterProof, got {type(proof).__name__}")
    if proof.kind is ProofKind.DELEGATION:
        if isinstance(thread_id, ThreadID) and isinstance(log, PublicKey):
            message = _delegation_message(thread_id, log)
        else:  # proof_message names what is wrong
            message = proof_message(ProofKind.DELEGATION, thread_id=thread_id, log=log)
        ok = _verify_cached(proof.signer.raw, proof.sig, message)
    else:
        message = proof_message(
            proof.kind, thread_id=thread_id, log=log, content=content, client=proof.client
        )
        ok = proof.signer.verify(message, proof.sig)
    if not ok:
        raise WriterProofError(
            f"{proof.kind} writer proof by {proof.signer.peer_id} does not verify for this "
            f"thread, log {log.peer_id} and content"
        )
    if proof.kind is ProofKind.ATTESTED:
        assert proof.client is not None  # from_node and attest guarantee it
        return Authorship(proof.client, proof.kind, via=proof.signer)
    return Authorship(proof.signer, proof.kind)


@functools.lru_cache(maxsize=4096)
def _delegation_message(thread_id: ThreadID, log: PublicKey) -> bytes:
    """A delegation's message: the same for every record of its log, encoded once."""
    return proof_message(ProofKind.DELEGATION, thread_id=thread_id, log=log)


@functools.lru_cache(maxsize=4096)
def _verify_cached(signer: bytes, sig: bytes, message: bytes) -> bool:
    """A delegation is the same message for every record of its log: verify it once."""
    return PublicKey(signer).verify(message, sig)


def _key(value: object, what: str) -> PublicKey:
    if type(value) is not bytes:
        raise WriterProofError(f"writer proof {what} must be public key bytes")
    try:
        return PublicKey.from_bytes(value)
    except InvalidKey as exc:
        raise WriterProofError(f"writer proof {what}: {exc}") from None
