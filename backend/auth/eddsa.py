"""EdDSA (Ed25519, RFC 8037) for python-jose, which ships no OKP key type (Better Auth's JWT
plugin signs with it): a `Key` on `cryptography`'s Ed25519, installed by `register()`.
"""

from __future__ import annotations

from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)
from jose import jwk
from jose.backends.base import Key
from jose.exceptions import JWKError
from jose.utils import base64url_decode, base64url_encode

EDDSA = "EdDSA"
_ED25519_KEY_BYTES = 32


def _b64decode(value: object, name: str) -> bytes:
    if not isinstance(value, str):
        raise JWKError(f"OKP key member {name!r} must be a string")
    try:
        raw = base64url_decode(value.encode("ascii"))
    except (ValueError, UnicodeEncodeError) as exc:
        raise JWKError(f"OKP key member {name!r} is not base64url") from exc
    if len(raw) != _ED25519_KEY_BYTES:
        raise JWKError(f"OKP key member {name!r} must be {_ED25519_KEY_BYTES} bytes")
    return raw


class Ed25519Key(Key):
    """An Ed25519 public (verify) or private (sign and verify) key, from a JWK dict or a
    `cryptography` key object. PEM/DER strings are refused: keys come from a JWKS."""

    def __init__(self, key: Any, algorithm: str) -> None:
        if algorithm != EDDSA:
            raise JWKError(f"Ed25519 keys are only for {EDDSA}, not {algorithm}")
        self._algorithm = algorithm
        self._private: Ed25519PrivateKey | None = None
        if isinstance(key, Ed25519PrivateKey):
            self._private = key
            self._public = key.public_key()
        elif isinstance(key, Ed25519PublicKey):
            self._public = key
        elif isinstance(key, dict):
            self._from_jwk(key)
        else:
            raise JWKError("An Ed25519 key must be an OKP JWK or a cryptography Ed25519 key")

    def _from_jwk(self, data: dict[str, Any]) -> None:
        if data.get("kty") != "OKP" or data.get("crv") != "Ed25519":
            raise JWKError("Not an Ed25519 JWK (kty must be OKP, crv Ed25519)")
        if data.get("alg") not in (None, EDDSA):
            raise JWKError(f"JWK alg {data.get('alg')!r} does not match {EDDSA}")
        self._public = Ed25519PublicKey.from_public_bytes(_b64decode(data.get("x"), "x"))
        if "d" in data:
            self._private = Ed25519PrivateKey.from_private_bytes(_b64decode(data["d"], "d"))
            if self._private.public_key().public_bytes_raw() != self._public.public_bytes_raw():
                raise JWKError("OKP JWK members 'd' and 'x' do not belong together")

    def sign(self, msg: bytes) -> bytes:
        if self._private is None:
            raise JWKError("A public Ed25519 key cannot sign")
        return self._private.sign(msg)

    def verify(self, msg: bytes, sig: bytes) -> bool:
        try:
            self._public.verify(sig, msg)
        except InvalidSignature:
            return False
        return True

    def is_public(self) -> bool:
        return self._private is None

    def public_key(self) -> Ed25519Key:
        return Ed25519Key(self._public, self._algorithm)

    def to_pem(self) -> bytes:
        if self._private is not None:
            return self._private.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
        return self._public.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)

    def to_dict(self) -> dict[str, str]:
        data = {
            "alg": self._algorithm,
            "kty": "OKP",
            "crv": "Ed25519",
            "x": base64url_encode(self._public.public_bytes_raw()).decode("ascii"),
        }
        if self._private is not None:
            data["d"] = base64url_encode(self._private.private_bytes_raw()).decode("ascii")
        return data


def register() -> None:
    """Make `EdDSA` a python-jose algorithm (idempotent)."""
    jwk.register_key(EDDSA, Ed25519Key)
