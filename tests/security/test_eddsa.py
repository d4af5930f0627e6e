"""The EdDSA key type registered with python-jose (backend/auth/eddsa.py)."""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from jose import jwk, jws, jwt
from jose.exceptions import JOSEError, JWKError

from backend.auth import eddsa
from backend.auth.eddsa import Ed25519Key

eddsa.register()  # what the app does before its first EdDSA token


def _pair() -> tuple[dict[str, Any], dict[str, Any]]:
    private = Ed25519Key(Ed25519PrivateKey.generate(), "EdDSA").to_dict()
    public = {k: v for k, v in private.items() if k != "d"}
    return private, public


def test_sign_and_verify_round_trip_through_python_jose() -> None:
    private, public = _pair()
    token = jwt.encode({"sub": "u"}, private, algorithm="EdDSA")
    assert jwt.decode(token, public, algorithms=["EdDSA"]) == {"sub": "u"}
    _, other_public = _pair()
    with pytest.raises(JOSEError):
        jwt.decode(token, other_public, algorithms=["EdDSA"])
    with pytest.raises(JOSEError):  # EdDSA not in the allowed list
        jwt.decode(token, public, algorithms=["RS256"])


def test_public_key_cannot_sign_and_converts() -> None:
    private, public = _pair()
    key = jwk.construct(public, "EdDSA")
    assert isinstance(key, Ed25519Key) and key.is_public()
    with pytest.raises(JWKError):
        key.sign(b"msg")
    assert b"BEGIN PUBLIC KEY" in key.to_pem()
    assert Ed25519Key(private, "EdDSA").public_key().to_dict() == {**public}


@pytest.mark.parametrize(
    "mutation",
    [
        {"kty": "EC"},
        {"crv": "Ed448"},
        {"alg": "ES256"},
        {"x": "AAAA"},
        {"x": 123},
        {"x": "!!not base64!!"},
    ],
)
def test_bad_okp_jwks_are_refused(mutation: dict[str, Any]) -> None:
    _, public = _pair()
    with pytest.raises(JWKError):
        Ed25519Key({**public, **mutation}, "EdDSA")


def test_private_and_public_parts_must_match() -> None:
    private, _ = _pair()
    _, other_public = _pair()
    with pytest.raises(JWKError):
        Ed25519Key({**private, "x": other_public["x"]}, "EdDSA")


def test_key_refuses_other_algorithms_and_formats() -> None:
    _, public = _pair()
    with pytest.raises(JWKError):
        Ed25519Key(public, "ES256")
    with pytest.raises(JWKError):
        Ed25519Key("-----BEGIN PUBLIC KEY-----", "EdDSA")


def test_tampered_signature_fails() -> None:
    private, public = _pair()
    token = jws.sign(b"payload", private, algorithm="EdDSA")
    head, body, sig = token.split(".")
    tampered = f"{head}.{body}.{sig[:-4]}AAAA"
    with pytest.raises(JOSEError):
        jws.verify(tampered, public, algorithms=["EdDSA"])
