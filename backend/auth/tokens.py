"""Bearer tokens: issuing built-in ones and verifying every kind.

Verification is strict by construction: the token's `alg` picks exactly one key source
(HS256: the shared secret; RS256/ES256/EdDSA: the JWKS key named by `kid`, whose type must fit
the algorithm) and python-jose is called with that single algorithm, so no key is ever used
with an algorithm it was not made for. `exp` and `sub` are required, `nbf`/`iat` honoured,
`iss`/`aud` required and checked when configured, and every failure (including the ones
python-jose raises outside its own exception family) becomes `InvalidToken`. Token headers
that point at keys (`jku`, `x5u`, `jwk`, `x5c`) are never used.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

from email_validator import EmailNotValidError, validate_email
from jose import jwk, jwt
from jose.exceptions import JOSEError

from backend.auth import eddsa
from backend.auth.jwks import JwksCache, JwksUnavailable, key_matches_algorithm
from backend.config import Settings
from backend.models.common import storable_text

HS256 = "HS256"
ALGORITHMS = [HS256]
# Tokens the built-in issuer mints carry this claim: their account must already exist, so a
# token that outlives its deleted account cannot re-create it.
LOCAL_ISSUER_CLAIM = "task_api"
# The account's token version when a built-in token was issued; revocation bumps the row's.
TOKEN_VERSION_CLAIM = "ver"  # noqa: S105 (a claim name, not a secret)
MAX_TOKEN_LENGTH = 8 * 1024
MAX_SUBJECT_LENGTH = 255


class InvalidToken(Exception):
    """The token is missing, malformed, forged, expired or not for this API."""


__all__ = ["InvalidToken", "JwksUnavailable", "TokenClaims", "decode_token", "issue_token"]


@dataclass(frozen=True)
class TokenClaims:
    subject: str
    local: bool
    # Built-in tokens only: must equal the account's current token version.
    token_version: int | None = None
    email: str | None = None
    name: str | None = None
    # `exp` (seconds since the epoch): how long the verified claims may be reused.
    expires_at: float | None = None


def issue_token(
    user_id: str,
    settings: Settings,
    *,
    expires_in: int | None = None,
    local: bool = True,
    token_version: int = 0,
) -> str:
    """Sign an HS256 token for `user_id`. Built-in (`local`) tokens carry the account's
    `token_version` and die when it is bumped. `local=False` mints one that behaves like an
    external issuer's (its account is provisioned on first use): what the CLI hands out."""
    now = int(time.time())
    lifetime = expires_in if expires_in is not None else settings.access_token_expire_minutes * 60
    claims: dict[str, Any] = {
        "sub": user_id,
        "iat": now,
        "exp": now + lifetime,
        "jti": uuid.uuid4().hex,
    }
    if local:
        claims[LOCAL_ISSUER_CLAIM] = True
        claims[TOKEN_VERSION_CLAIM] = token_version
    if settings.jwt_issuer:
        claims["iss"] = settings.jwt_issuer
    if settings.jwt_audience:
        claims["aud"] = settings.jwt_audience
    return jwt.encode(claims, settings.signing_secret(), algorithm=ALGORITHMS[0])


def decode_token(token: str, settings: Settings, jwks: JwksCache | None = None) -> TokenClaims:
    """Verify `token`; raise `InvalidToken` (401), or `JwksUnavailable` (503) when the token
    needs a JWKS key and no key set has ever been fetched."""
    if not token or len(token) > MAX_TOKEN_LENGTH:
        raise InvalidToken("token missing or too long")
    try:
        header = jwt.get_unverified_header(token)
    except (JOSEError, TypeError, ValueError, KeyError) as exc:
        raise InvalidToken(str(exc)) from None
    algorithm = header.get("alg")
    if algorithm == HS256:
        key: Any = settings.signing_secret()
        issuer, audience = settings.jwt_issuer, settings.jwt_audience
    elif jwks is not None and algorithm in settings.jwt_jwks_algorithms:
        key = _jwks_key(jwks, header, algorithm)
        issuer, audience = settings.jwks_issuer, settings.jwks_audience
    else:
        raise InvalidToken(f"algorithm {algorithm!r} is not accepted")
    claims = _verified_claims(token, key, algorithm, issuer, audience, settings)
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject.strip() or len(subject) > MAX_SUBJECT_LENGTH:
        raise InvalidToken("sub must be a non-empty string of at most 255 characters")
    if not _storable(subject):
        raise InvalidToken("sub must be valid text")
    # Only the built-in issuer (HS256, our secret) mints local tokens.
    local = algorithm == HS256 and claims.get(LOCAL_ISSUER_CLAIM) is True
    version = claims.get(TOKEN_VERSION_CLAIM)
    if local and (isinstance(version, bool) or not isinstance(version, int)):
        raise InvalidToken("built-in token without a token version")
    return TokenClaims(
        subject=subject,
        local=local,
        token_version=version if local else None,
        email=_email_claim(claims),
        name=_optional_claim(claims, "name", 100),
        expires_at=_expiry(claims),
    )


def _expiry(claims: dict[str, Any]) -> float | None:
    expires = claims.get("exp")
    if isinstance(expires, bool) or not isinstance(expires, int | float):
        return None
    return float(expires)


def _jwks_key(jwks: JwksCache, header: dict[str, Any], algorithm: str) -> Any:
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise InvalidToken("a JWKS token must name its key in `kid`")
    entry = jwks.get(kid)
    if entry is None:
        raise InvalidToken("unknown `kid`")
    if not key_matches_algorithm(entry, algorithm):
        raise InvalidToken(f"key {kid!r} is not a {algorithm} key")
    if algorithm == eddsa.EDDSA:
        eddsa.register()  # python-jose lacks EdDSA; registered on first use, not at import
    try:
        return jwk.construct(entry, algorithm)
    except (JOSEError, TypeError, ValueError, KeyError) as exc:
        raise InvalidToken(f"key {kid!r} is unusable: {exc}") from None


def _verified_claims(
    token: str,
    key: Any,
    algorithm: str,
    issuer: str | None,
    audience: str | None,
    settings: Settings,
) -> dict[str, Any]:
    options = {
        "require_exp": True,
        "require_sub": True,
        "require_iss": bool(issuer),
        "require_aud": bool(audience),
        # Without a configured audience the claim is not ours to judge.
        "verify_aud": bool(audience),
        "verify_nbf": True,
        "verify_iat": True,
        "leeway": settings.jwt_leeway_seconds,
    }
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=[algorithm],
            issuer=issuer,
            audience=audience,
            options=options,
        )
    # python-jose raises JWKError (not a JWTError) and bare TypeError/ValueError for some
    # malformed tokens; all of them are the client's fault.
    except (JOSEError, TypeError, ValueError, KeyError) as exc:
        raise InvalidToken(str(exc)) from None
    _check_issued_at(claims, settings.jwt_leeway_seconds)
    return claims


def _check_issued_at(claims: dict[str, Any], leeway: int) -> None:
    # python-jose only checks that `iat` is a number; a token issued in the future (beyond
    # the clock-skew leeway) is refused.
    issued_at = claims.get("iat")
    if issued_at is None:
        return
    if isinstance(issued_at, bool) or not isinstance(issued_at, int | float):
        raise InvalidToken("iat must be a number")
    if issued_at > time.time() + leeway:
        raise InvalidToken("token issued in the future")


def _optional_claim(claims: dict[str, Any], key: str, max_length: int) -> str | None:
    value = claims.get(key)
    if isinstance(value, str) and value and len(value) <= max_length and _storable(value):
        return value
    return None


def _email_claim(claims: dict[str, Any]) -> str | None:
    value = _optional_claim(claims, "email", 320)
    if value is None:
        return None
    try:
        return validate_email(value, check_deliverability=False).normalized.lower()
    except EmailNotValidError:
        return None


def _storable(value: str) -> bool:
    try:
        storable_text(value)
    except ValueError:
        return False
    return True
