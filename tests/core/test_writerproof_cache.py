"""A delegation's message is encoded once per (thread, log); the check stays per thread and log."""

from __future__ import annotations

import pytest

from threadkit.core.identity import Identity
from threadkit.core.ids import ThreadID, Variant
from threadkit.core.writerproof import ProofKind, delegate, verify_proof
from threadkit.errors import WriterProofError

ALICE, LOG, OTHER_LOG = Identity.generate(), Identity.generate(), Identity.generate()
THREAD, OTHER_THREAD = ThreadID.new(Variant.RAW), ThreadID.new(Variant.RAW)


def test_a_cached_delegation_still_names_its_thread_and_log() -> None:
    proof = delegate(ALICE, thread_id=THREAD, log=LOG.public)
    for _ in range(3):  # the second and later checks take the cached message
        who = verify_proof(proof, thread_id=THREAD, log=LOG.public)
        assert who.writer == ALICE.public and who.kind is ProofKind.DELEGATION
    for thread, log in ((OTHER_THREAD, LOG.public), (THREAD, OTHER_LOG.public)):
        with pytest.raises(WriterProofError):
            verify_proof(proof, thread_id=thread, log=log)


def test_a_delegation_checked_against_a_wrong_type_gets_the_clear_error() -> None:
    proof = delegate(ALICE, thread_id=THREAD, log=LOG.public)
    with pytest.raises(WriterProofError, match="thread_id must be a ThreadID"):
        verify_proof(proof, thread_id=[THREAD], log=LOG.public)  # type: ignore[arg-type]
    with pytest.raises(WriterProofError, match="log must be a PublicKey"):
        verify_proof(proof, thread_id=THREAD, log=LOG.public.to_bytes())  # type: ignore[arg-type]
