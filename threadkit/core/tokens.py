"""Tokens for ThreadDB's GetToken challenge flow, as EdDSA JWTs.

1. the client sends its public key string;
2. the host answers with 32 random bytes (:func:`new_challenge`);
3. the client signs them (``Identity.sign``);
4. the host checks the signature and returns a JWT signed with its own Ed25519
   key: ``sub`` = client public key string, ``iss`` = host public key string,
   ``iat`` and ``exp`` set (:meth:`TokenIssuer.issue`).

ThreadDB signs with the non-standard ``alg`` "Ed25519" and sets no expiry;
threadkit uses the standard ``EdDSA`` and always sets ``exp`` (docs/design.md §4).
Clients treat the token as opaque, so this does not affect interop.
"""

from __future__ import annotations

import os
import time

from threadkit.core.identity import Identity, PublicKey
from threadkit.errors import InvalidKey, InvalidToken

__all__ = ["CHALLENGE_SIZE", "DEFAULT_TTL", "TokenIssuer", "new_challenge"]

CHALLENGE_SIZE = 32
DEFAULT_TTL = 24 * 3600.0
_ALG = "EdDSA"


def new_challenge() -> bytes:
    """32 random bytes for the client to sign."""
    return os.urandom(CHALLENGE_SIZE)


class TokenIssuer:
    """Issues and verifies tokens on behalf of one host identity.

    Parameters
    ----------
    host : Identity
        The host's key; tokens are signed with it and name it as ``iss``.
    ttl : float
        Seconds a token stays valid.

    Examples
    --------
    >>> host, client = Identity.generate(), Identity.generate()
    >>> issuer = TokenIssuer(host)
    >>> challenge = new_challenge()
    >>> token = issuer.issue(str(client.public), challenge, client.sign(challenge))
    >>> issuer.verify(token) == client.public
    True
    """

    def __init__(self, host: Identity, ttl: float = DEFAULT_TTL) -> None:
        if ttl <= 0:
            raise InvalidToken(f"token lifetime must be positive, got {ttl!r}")
        self.host = host
        self.ttl = ttl
        self._issuer = str(host.public)
        self._signing_key = host._key
        self._verify_key = host.public._key

    def issue(self, client_key: str, challenge: bytes, signature: bytes) -> str:
        """Check the client's signature of ``challenge`` and return a token for it."""
        try:
            client = PublicKey.from_string(client_key)
        except InvalidKey as exc:
            raise InvalidToken(f"client key is not a valid public key: {exc}") from None
        if not isinstance(challenge, bytes) or not isinstance(signature, bytes):
            raise InvalidToken("challenge and signature must be bytes")
        if len(challenge) != CHALLENGE_SIZE:
            raise InvalidToken(f"challenge must be {CHALLENGE_SIZE} bytes, got {len(challenge)}")
        if not client.verify(challenge, signature):
            raise InvalidToken("challenge signature does not verify under the client's key")
        return self.issue_for(client)

    def issue_for(self, client: PublicKey, now: float | None = None) -> str:
        """A token for ``client`` without a challenge (for the host's own use and tests)."""
        import jwt

        issued = int(time.time() if now is None else now)
        claims = {
            "sub": str(client),
            "iss": self._issuer,
            "iat": issued,
            "exp": issued + int(self.ttl),
        }
        return jwt.encode(claims, self._signing_key, algorithm=_ALG)

    def verify(self, token: str) -> PublicKey:
        """The client key a valid token was issued to; InvalidToken otherwise."""
        import jwt

        if not isinstance(token, str) or not token:
            raise InvalidToken("token is empty or not a string")
        try:
            claims = jwt.decode(
                token,
                self._verify_key,
                algorithms=[_ALG],
                issuer=self._issuer,
                options={"require": ["sub", "iss", "iat", "exp"]},
            )
        except jwt.ExpiredSignatureError:
            raise InvalidToken("token has expired") from None
        except jwt.InvalidIssuerError:
            raise InvalidToken("token was issued by another host") from None
        except jwt.PyJWTError as exc:
            raise InvalidToken(f"token is not valid: {exc}") from None
        try:
            return PublicKey.from_string(claims["sub"])
        except (InvalidKey, TypeError) as exc:
            raise InvalidToken(f"token subject is not a public key: {exc}") from None
