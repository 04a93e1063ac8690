"""GetToken challenge flow and EdDSA JWTs: the happy path and every way a token is refused."""

from __future__ import annotations

import base64
import json
import time

import jwt
import pytest

from threadkit.core.identity import Identity, PublicKey
from threadkit.core.tokens import CHALLENGE_SIZE, DEFAULT_TTL, TokenIssuer, new_challenge
from threadkit.errors import InvalidToken

HOST = Identity(bytes(range(32)))
CLIENT = Identity(bytes(range(32, 64)))
OTHER = Identity(bytes(range(64, 96)))
ISSUER = TokenIssuer(HOST)


def _claims(token: str) -> dict[str, object]:
    return jwt.decode(token, options={"verify_signature": False})


def _sign_claims(claims: dict[str, object], key: Identity = HOST) -> str:
    return jwt.encode(claims, key._key, algorithm="EdDSA")


def _good_claims(**over: object) -> dict[str, object]:
    now = int(time.time())
    claims: dict[str, object] = {
        "sub": str(CLIENT.public),
        "iss": str(HOST.public),
        "iat": now,
        "exp": now + 600,
    }
    claims.update(over)
    return {k: v for k, v in claims.items() if v is not None}


# -- the flow ---------------------------------------------------------------------------


def test_challenge_flow() -> None:
    challenge = new_challenge()
    assert len(challenge) == CHALLENGE_SIZE == 32
    token = ISSUER.issue(str(CLIENT.public), challenge, CLIENT.sign(challenge))
    assert ISSUER.verify(token) == CLIENT.public


def test_challenges_are_random() -> None:
    assert len({new_challenge() for _ in range(100)}) == 100


def test_token_shape() -> None:
    before = int(time.time())
    token = ISSUER.issue_for(CLIENT.public)
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "EdDSA"
    claims = _claims(token)
    assert claims["sub"] == str(CLIENT.public)
    assert claims["iss"] == str(HOST.public)
    assert before <= claims["iat"] <= int(time.time())
    assert claims["exp"] - claims["iat"] == int(DEFAULT_TTL)


def test_custom_ttl() -> None:
    issuer = TokenIssuer(HOST, ttl=60)
    claims = _claims(issuer.issue_for(CLIENT.public))
    assert claims["exp"] - claims["iat"] == 60


def test_token_verifies_with_plain_pyjwt() -> None:
    """The token is a standard EdDSA JWT: any JWT library with the host key accepts it."""
    token = ISSUER.issue_for(CLIENT.public)
    claims = jwt.decode(token, HOST.public._key, algorithms=["EdDSA"])
    assert claims["sub"] == str(CLIENT.public)


def test_same_host_key_new_issuer_accepts() -> None:
    token = ISSUER.issue_for(CLIENT.public)
    assert TokenIssuer(Identity(HOST.seed)).verify(token) == CLIENT.public


# -- refused tokens ---------------------------------------------------------------------


def test_forged_signed_by_another_host() -> None:
    token = TokenIssuer(OTHER).issue_for(CLIENT.public)
    with pytest.raises(InvalidToken):
        ISSUER.verify(token)


def test_forged_with_claims_naming_this_host() -> None:
    token = _sign_claims(_good_claims(), key=OTHER)
    with pytest.raises(InvalidToken):
        ISSUER.verify(token)


def test_expired() -> None:
    token = ISSUER.issue_for(CLIENT.public, now=time.time() - DEFAULT_TTL - 60)
    with pytest.raises(InvalidToken, match="expired"):
        ISSUER.verify(token)


def test_expired_short_ttl() -> None:
    issuer = TokenIssuer(HOST, ttl=10)
    token = issuer.issue_for(CLIENT.public, now=time.time() - 11)
    with pytest.raises(InvalidToken, match="expired"):
        issuer.verify(token)


def test_wrong_issuer() -> None:
    token = _sign_claims(_good_claims(iss=str(OTHER.public)))
    with pytest.raises(InvalidToken, match="another host"):
        ISSUER.verify(token)


@pytest.mark.parametrize("missing", ["sub", "iss", "iat", "exp"])
def test_missing_claim(missing: str) -> None:
    token = _sign_claims(_good_claims(**{missing: None}))
    with pytest.raises(InvalidToken):
        ISSUER.verify(token)


@pytest.mark.parametrize("subject", ["hello", "", 5, str(HOST)])
def test_subject_not_a_public_key(subject: object) -> None:
    token = _sign_claims(_good_claims(sub=subject))
    with pytest.raises(InvalidToken):
        ISSUER.verify(token)


def test_issued_in_the_future() -> None:
    token = ISSUER.issue_for(CLIENT.public, now=time.time() + 3600)
    with pytest.raises(InvalidToken):
        ISSUER.verify(token)


@pytest.mark.parametrize("alg", ["HS256", "none"])
def test_other_algorithms_refused(alg: str) -> None:
    key = None if alg == "none" else "a-secret-that-is-long-enough-for-hs256!!"
    token = jwt.encode(_good_claims(), key, algorithm=alg)
    with pytest.raises(InvalidToken):
        ISSUER.verify(token)


def test_tampered_payload() -> None:
    token = ISSUER.issue_for(CLIENT.public)
    head, _, sig = token.split(".")
    payload = _good_claims(sub=str(OTHER.public))
    body = base64.urlsafe_b64encode(json.dumps(payload).encode()).rstrip(b"=").decode()
    with pytest.raises(InvalidToken):
        ISSUER.verify(f"{head}.{body}.{sig}")


def test_tampered_signature() -> None:
    token = ISSUER.issue_for(CLIENT.public)
    last = "A" if token[-2] != "A" else "B"
    with pytest.raises(InvalidToken):
        ISSUER.verify(token[:-2] + last + token[-1])


@pytest.mark.parametrize(
    "token",
    ["garbage", "abc.def.ghi", "a.b", "...", "eyJhbGciOiJFZERTQSJ9..", "\x00", "é.é.é"],
)
def test_garbage(token: str) -> None:
    with pytest.raises(InvalidToken):
        ISSUER.verify(token)


@pytest.mark.parametrize("token", ["", None, 5, b"abc.def.ghi"])
def test_empty_or_not_a_string(token: object) -> None:
    with pytest.raises(InvalidToken):
        ISSUER.verify(token)  # type: ignore[arg-type]


# -- refused challenges -----------------------------------------------------------------


def test_challenge_signature_wrong() -> None:
    challenge = new_challenge()
    with pytest.raises(InvalidToken, match="signature"):
        ISSUER.issue(str(CLIENT.public), challenge, OTHER.sign(challenge))


def test_challenge_signature_of_another_challenge() -> None:
    challenge = new_challenge()
    with pytest.raises(InvalidToken, match="signature"):
        ISSUER.issue(str(CLIENT.public), challenge, CLIENT.sign(new_challenge()))


@pytest.mark.parametrize("signature", [b"", bytes(64), bytes(63), b"x" * 65])
def test_challenge_signature_malformed(signature: bytes) -> None:
    with pytest.raises(InvalidToken):
        ISSUER.issue(str(CLIENT.public), new_challenge(), signature)


@pytest.mark.parametrize("size", [0, 16, 31, 33, 64])
def test_challenge_wrong_length(size: int) -> None:
    challenge = bytes(size)
    with pytest.raises(InvalidToken, match="32 bytes"):
        ISSUER.issue(str(CLIENT.public), challenge, CLIENT.sign(challenge))


@pytest.mark.parametrize("challenge", [None, 5])
def test_challenge_not_bytes(challenge: object) -> None:
    with pytest.raises(InvalidToken):
        ISSUER.issue(str(CLIENT.public), challenge, b"")  # type: ignore[arg-type]


@pytest.mark.parametrize("client_key", ["", "garbage", None, CLIENT.public.peer_id, str(CLIENT)])
def test_client_key_invalid(client_key: object) -> None:
    challenge = new_challenge()
    with pytest.raises(InvalidToken):
        ISSUER.issue(client_key, challenge, CLIENT.sign(challenge))  # type: ignore[arg-type]


@pytest.mark.parametrize("ttl", [0, -1, -0.5])
def test_bad_ttl(ttl: float) -> None:
    with pytest.raises(InvalidToken):
        TokenIssuer(HOST, ttl=ttl)


def test_verify_returns_public_key() -> None:
    token = ISSUER.issue_for(OTHER.public)
    result = ISSUER.verify(token)
    assert isinstance(result, PublicKey)
    assert result == OTHER.public
