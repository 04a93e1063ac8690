"""Writer proofs: direct, delegation and daemon-attested, and every way one must fail."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from threadkit.core.identity import Identity
from threadkit.core.ids import ThreadID
from threadkit.core.keys import ThreadKey
from threadkit.core.records import create_record
from threadkit.core.writerproof import (
    DOMAIN,
    ProofKind,
    WriterProof,
    attest,
    delegate,
    proof_message,
    prove_direct,
    verify_proof,
)
from threadkit.errors import SignatureError, WriterProofError

ALICE, MALLORY, DAEMON = Identity.generate(), Identity.generate(), Identity.generate()
LOG, OTHER_LOG = Identity.generate(), Identity.generate()
THREAD, OTHER_THREAD = ThreadID.new(), ThreadID.new()
CONTENT = b"\x01\x71\x12\x20" + bytes(range(32))  # shaped like an event CID


def test_direct_proof_verifies_for_its_writer() -> None:
    proof = prove_direct(ALICE, thread_id=THREAD, log=LOG.public, content=CONTENT)
    who = verify_proof(proof, thread_id=THREAD, log=LOG.public, content=CONTENT)
    assert who.writer == ALICE.public
    assert who.kind is ProofKind.DIRECT
    assert who.via is None and who.is_direct


def test_direct_proof_over_a_real_records_event_cid() -> None:
    record = create_record(b"\xa0", log_key=LOG, key=ThreadKey.new(), author=ALICE.public)
    proof = prove_direct(ALICE, thread_id=THREAD, log=LOG.public, content=record.event_cid)
    who = verify_proof(proof, thread_id=THREAD, log=LOG.public, content=record.event_cid)
    assert who.writer == record.author


def test_forged_signer_is_refused() -> None:
    # Mallory signs with her key but names Alice as the signer
    real = prove_direct(MALLORY, thread_id=THREAD, log=LOG.public, content=CONTENT)
    forged = WriterProof(ProofKind.DIRECT, ALICE.public, real.sig)
    with pytest.raises(WriterProofError, match="does not verify"):
        verify_proof(forged, thread_id=THREAD, log=LOG.public, content=CONTENT)
    # and a random signature
    junk = WriterProof(ProofKind.DIRECT, ALICE.public, bytes(64))
    with pytest.raises(WriterProofError):
        verify_proof(junk, thread_id=THREAD, log=LOG.public, content=CONTENT)


@pytest.mark.parametrize("kind", [ProofKind.DIRECT, ProofKind.DELEGATION, ProofKind.ATTESTED])
def test_wrong_thread_or_log_is_refused(kind: ProofKind) -> None:
    proof = _make(kind)
    verify_proof(proof, thread_id=THREAD, log=LOG.public, content=CONTENT)
    with pytest.raises(WriterProofError):  # replayed into another thread
        verify_proof(proof, thread_id=OTHER_THREAD, log=LOG.public, content=CONTENT)
    with pytest.raises(WriterProofError):  # moved to another log
        verify_proof(proof, thread_id=THREAD, log=OTHER_LOG.public, content=CONTENT)


@pytest.mark.parametrize("kind", [ProofKind.DIRECT, ProofKind.ATTESTED])
def test_other_content_is_refused(kind: ProofKind) -> None:
    proof = _make(kind)
    with pytest.raises(WriterProofError):
        verify_proof(proof, thread_id=THREAD, log=LOG.public, content=CONTENT[:-1] + b"\x00")


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_any_flipped_bit_of_the_proof_is_refused(data: st.DataObject) -> None:
    kind = data.draw(st.sampled_from(list(ProofKind)))
    encoded = _make(kind).to_bytes()
    at = data.draw(st.integers(0, len(encoded) - 1))
    bit = data.draw(st.integers(0, 7))
    tampered = bytearray(encoded)
    tampered[at] ^= 1 << bit
    with pytest.raises(WriterProofError):
        proof = WriterProof.from_bytes(bytes(tampered))
        verify_proof(proof, thread_id=THREAD, log=LOG.public, content=CONTENT)


def test_delegation_covers_every_record_of_its_log_only() -> None:
    proof = delegate(ALICE, thread_id=THREAD, log=LOG.public)
    for content in (CONTENT, b"another record", None):
        who = verify_proof(proof, thread_id=THREAD, log=LOG.public, content=content)
        assert who.writer == ALICE.public and who.kind is ProofKind.DELEGATION and who.is_direct
    with pytest.raises(WriterProofError):
        verify_proof(proof, thread_id=THREAD, log=OTHER_LOG.public)


def test_attested_is_told_apart_from_direct() -> None:
    proof = attest(DAEMON, client=ALICE.public, thread_id=THREAD, log=LOG.public, content=CONTENT)
    who = verify_proof(proof, thread_id=THREAD, log=LOG.public, content=CONTENT)
    assert who.writer == ALICE.public
    assert who.via == DAEMON.public
    assert who.kind is ProofKind.ATTESTED and not who.is_direct


def test_a_daemon_cannot_make_a_direct_proof_for_its_client() -> None:
    attested = attest(
        DAEMON, client=ALICE.public, thread_id=THREAD, log=LOG.public, content=CONTENT
    )
    # relabelling the attestation as a direct proof by the client fails: the kinds sign
    # different messages, and a direct proof's writer is the key that signed
    for forged in (
        WriterProof(ProofKind.DIRECT, ALICE.public, attested.sig),
        WriterProof(ProofKind.DELEGATION, ALICE.public, attested.sig),
        WriterProof(ProofKind.DIRECT, DAEMON.public, attested.sig),
    ):
        with pytest.raises(WriterProofError):
            verify_proof(forged, thread_id=THREAD, log=LOG.public, content=CONTENT)
    # the daemon's own direct proof names the daemon, never the client
    own = prove_direct(DAEMON, thread_id=THREAD, log=LOG.public, content=CONTENT)
    assert (
        verify_proof(own, thread_id=THREAD, log=LOG.public, content=CONTENT).writer == DAEMON.public
    )
    # nor can the attestation be re-pointed at another client
    moved = WriterProof(ProofKind.ATTESTED, DAEMON.public, attested.sig, MALLORY.public)
    with pytest.raises(WriterProofError):
        verify_proof(moved, thread_id=THREAD, log=LOG.public, content=CONTENT)


def test_messages_are_domain_separated_and_distinct_per_kind() -> None:
    messages = {
        proof_message(ProofKind.DIRECT, thread_id=THREAD, log=LOG.public, content=CONTENT),
        proof_message(ProofKind.DELEGATION, thread_id=THREAD, log=LOG.public),
        proof_message(
            ProofKind.ATTESTED,
            thread_id=THREAD,
            log=LOG.public,
            content=CONTENT,
            client=ALICE.public,
        ),
    }
    assert len(messages) == 3
    assert all(m.startswith(DOMAIN) and len(m) > 32 for m in messages)
    assert not any(m.startswith(b"threadkit/record/1") for m in messages)


def test_bad_shapes_and_arguments() -> None:
    with pytest.raises(WriterProofError):
        WriterProof.from_bytes(b"\xff")
    with pytest.raises(WriterProofError, match="unknown writer proof kind"):
        WriterProof.from_node(
            {"kind": "telepathy", "signer": ALICE.public.to_bytes(), "sig": bytes(64)}
        )
    with pytest.raises(WriterProofError, match="names a client"):
        WriterProof.from_node(
            {"kind": "direct", "signer": ALICE.public.to_bytes(), "sig": bytes(64),
             "client": ALICE.public.to_bytes()}
        )  # fmt: skip
    with pytest.raises(WriterProofError, match="content"):
        prove_direct(ALICE, thread_id=THREAD, log=LOG.public, content=b"")
    with pytest.raises(WriterProofError, match="names no content"):
        proof_message(ProofKind.DELEGATION, thread_id=THREAD, log=LOG.public, content=CONTENT)
    with pytest.raises(WriterProofError, match="ThreadID"):
        prove_direct(ALICE, thread_id=THREAD.to_bytes(), log=LOG.public, content=CONTENT)  # type: ignore[arg-type]
    with pytest.raises(WriterProofError, match="for itself"):
        attest(DAEMON, client=DAEMON.public, thread_id=THREAD, log=LOG.public, content=CONTENT)
    assert issubclass(WriterProofError, SignatureError)


def _make(kind: ProofKind) -> WriterProof:
    if kind is ProofKind.DIRECT:
        return prove_direct(ALICE, thread_id=THREAD, log=LOG.public, content=CONTENT)
    if kind is ProofKind.DELEGATION:
        return delegate(ALICE, thread_id=THREAD, log=LOG.public)
    return attest(DAEMON, client=ALICE.public, thread_id=THREAD, log=LOG.public, content=CONTENT)
