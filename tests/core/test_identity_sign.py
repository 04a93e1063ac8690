"""Identity.sign (libsodium) gives the bytes ``cryptography``'s Ed25519 signer gives."""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from threadkit.core.identity import Identity


@settings(max_examples=200, deadline=None)
@given(seed=st.binary(min_size=32, max_size=32), data=st.binary(max_size=2048))
def test_sign_matches_cryptography(seed: bytes, data: bytes) -> None:
    ident = Identity(seed)
    signature = ident.sign(data)
    assert signature == Ed25519PrivateKey.from_private_bytes(seed).sign(data)
    assert ident.public.verify(data, signature)


def test_sign_takes_bytes_views() -> None:
    ident = Identity(bytes(range(32)))
    data = b"threadkit record bytes"
    assert ident.sign(memoryview(data)) == ident.sign(bytearray(data)) == ident.sign(data)
    assert not ident.public.verify(data + b"!", ident.sign(data))
