"""Epoch read keys sealed to a member's identity: only the recipient opens them, only there."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from threadkit.core.identity import Identity
from threadkit.core.ids import ThreadID
from threadkit.core.sealing import (
    SealedKey,
    key_commitment,
    open_epoch_key,
    seal_epoch_key,
)
from threadkit.core.symmetric import SymmetricKey
from threadkit.errors import DecryptionError, InvalidKey, MalformedRecord, SignatureError

ADMIN, BOB, CAROL = Identity.generate(), Identity.generate(), Identity.generate()
THREAD, OTHER_THREAD = ThreadID.new(), ThreadID.new()
KEY = SymmetricKey.new()


def _seal(epoch: int = 3, recipient: Identity = BOB) -> SealedKey:
    return seal_epoch_key(
        KEY, recipient=recipient.public, sender=ADMIN, thread_id=THREAD, epoch=epoch
    )


def test_only_the_recipient_opens_it() -> None:
    sealed = _seal()
    assert (
        open_epoch_key(sealed, recipient=BOB, thread_id=THREAD, epoch=3, sender=ADMIN.public) == KEY
    )
    with pytest.raises(DecryptionError):
        open_epoch_key(sealed, recipient=CAROL, thread_id=THREAD, epoch=3)
    # Carol relabelling Bob's box as hers cannot open it either (and breaks the signature)
    relabelled = dataclasses.replace(sealed, recipient=CAROL.public)
    with pytest.raises((DecryptionError, SignatureError)):
        open_epoch_key(relabelled, recipient=CAROL, thread_id=THREAD, epoch=3)


def test_each_member_gets_the_same_key_under_one_commitment() -> None:
    boxes = [_seal(recipient=who) for who in (BOB, CAROL)]
    assert boxes[0].box != boxes[1].box  # fresh ephemeral key per seal
    assert (
        boxes[0].commitment == boxes[1].commitment == key_commitment(KEY, thread_id=THREAD, epoch=3)
    )
    assert open_epoch_key(boxes[1], recipient=CAROL, thread_id=THREAD, epoch=3) == KEY


def test_wrong_thread_or_epoch_fails() -> None:
    sealed = _seal()
    with pytest.raises(DecryptionError, match="another thread or epoch"):
        open_epoch_key(sealed, recipient=BOB, thread_id=OTHER_THREAD, epoch=3)
    with pytest.raises(DecryptionError, match="another thread or epoch"):
        open_epoch_key(sealed, recipient=BOB, thread_id=THREAD, epoch=4)
    # relabelling the box's thread or epoch breaks the sender's signature; with a
    # signature made anew (by anyone) HPKE's context still refuses it
    for changes in ({"thread": OTHER_THREAD.to_bytes()}, {"epoch": 4}):
        moved = dataclasses.replace(sealed, **changes)  # type: ignore[arg-type]
        target, epoch = (OTHER_THREAD, 3) if "thread" in changes else (THREAD, 4)
        with pytest.raises(SignatureError):
            open_epoch_key(moved, recipient=BOB, thread_id=target, epoch=epoch)
        resigned = _resign(moved, ADMIN)
        with pytest.raises(DecryptionError):
            open_epoch_key(resigned, recipient=BOB, thread_id=target, epoch=epoch)


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_tampering_fails(data: st.DataObject) -> None:
    encoded = _seal().to_bytes()
    at = data.draw(st.integers(0, len(encoded) - 1))
    tampered = bytearray(encoded)
    tampered[at] ^= 1 << data.draw(st.integers(0, 7))
    with pytest.raises((MalformedRecord, DecryptionError, SignatureError)):
        sealed = SealedKey.from_bytes(bytes(tampered))
        open_epoch_key(sealed, recipient=BOB, thread_id=THREAD, epoch=3)


def test_tampered_box_with_a_fresh_signature_fails() -> None:
    sealed = _seal()
    box = bytearray(sealed.box)
    box[-1] ^= 1
    with pytest.raises(DecryptionError):
        open_epoch_key(_resign(dataclasses.replace(sealed, box=bytes(box)), ADMIN), recipient=BOB,
                       thread_id=THREAD, epoch=3)  # fmt: skip


def test_sender_is_checked() -> None:
    sealed = _seal()
    with pytest.raises(SignatureError, match="not the sender"):
        open_epoch_key(sealed, recipient=BOB, thread_id=THREAD, epoch=3, sender=CAROL.public)
    # Carol sealing a key of her choosing is visible as Carol's
    own = seal_epoch_key(KEY, recipient=BOB.public, sender=CAROL, thread_id=THREAD, epoch=3)
    with pytest.raises(SignatureError):
        open_epoch_key(own, recipient=BOB, thread_id=THREAD, epoch=3, sender=ADMIN.public)
    forged = dataclasses.replace(own, sender=ADMIN.public)
    with pytest.raises(SignatureError):
        open_epoch_key(forged, recipient=BOB, thread_id=THREAD, epoch=3)


def test_commitment_mismatch_fails() -> None:
    sealed = _seal()
    other = key_commitment(SymmetricKey.new(), thread_id=THREAD, epoch=3)
    with pytest.raises(DecryptionError, match="commitment"):
        open_epoch_key(_resign(dataclasses.replace(sealed, commitment=other), ADMIN), recipient=BOB,
                       thread_id=THREAD, epoch=3)  # fmt: skip


def test_bad_inputs() -> None:
    with pytest.raises(InvalidKey, match="epoch"):
        _seal(epoch=-1)
    with pytest.raises(InvalidKey, match="SymmetricKey"):
        seal_epoch_key(b"k" * 32, recipient=BOB.public, sender=ADMIN, thread_id=THREAD, epoch=0)  # type: ignore[arg-type]
    with pytest.raises(MalformedRecord):
        SealedKey.from_bytes(b"\xa0")


def _resign(sealed: SealedKey, signer: Identity) -> SealedKey:
    """The same fields signed anew: what an attacker holding ``signer`` could send."""
    from threadkit.core import dagcbor, sealing

    node = sealed.to_node()
    del node["sig"]
    sig = signer.sign(sealing._SIG_DOMAIN + dagcbor.encode(node))
    return dataclasses.replace(sealed, sig=sig)
