"""Bearer tokens: issuing built-in ones and verifying every kind (specs/api-contract.md).

The token's `alg` picks exactly one key source and python-jose is called with that single
algorithm; whatever a crafted payload makes a library raise is `InvalidToken` (401).
"""

from __future__ import annotations

import logging
import math
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

logger = logging.getLogger(__name__)

HS256 = "HS256"
# Tokens the built-in issuer mints carry this claim: their account must already exist, so a
# token that outlives its deleted account cannot re-create it.
LOCAL_ISSUER_CLAIM = "task_api"
# The account's token version when a built-in token was issued; revocation bumps the row's.
TOKEN_VERSION_CLAIM = "ver"  # noqa: S105 (a claim name, not a secret)
MAX_TOKEN_LENGTH = 8 * 1024
MAX_SUBJECT_LENGTH = 255
TIME_CLAIMS = ("exp", "nbf", "iat")
# 9999-12-31T23:59:59Z: the last second every client's date type can hold.
MAX_NUMERIC_DATE = 253_402_300_799


class InvalidToken(Exception):
    """The token is missing, malformed, forged, expired or not for this API."""


@dataclass(frozen=True)
class TokenClaims:
    subject: str
    local: bool
    # Built-in tokens only: must equal the account's current token version.
    token_version: int | None = None
    email: str | None = None
    # An identity provider's token that says (OpenID Connect's `email_verified`: JSON `true`)
    # the provider verified `email`; never a built-in token's.
    email_verified: bool = False
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
    """Sign an HS256 token for `user_id`: built-in (`local`, dies with its `token_version`), or
    one that behaves like an external issuer's (its account provisioned on first use: the CLI's)."""
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
    return jwt.encode(claims, settings.signing_secret(), algorithm=HS256)


def decode_token(token: str, settings: Settings, jwks: JwksCache | None = None) -> TokenClaims:
    """Verify `token`; raise `InvalidToken` (401), or `JwksUnavailable` (503) when the token
    needs a JWKS key and no key set has ever been fetched. Nothing else escapes."""
    try:
        return _decode(token, settings, jwks)
    except (InvalidToken, JwksUnavailable):
        raise
    except JOSEError as exc:
        raise InvalidToken(str(exc)) from None
    except Exception as exc:
        # The one place for whatever a crafted token makes a library raise (OverflowError,
        # RecursionError, ...): every token failure is a 401, never a 500.
        logger.info("token refused: %s while decoding it", type(exc).__name__)
        raise InvalidToken(f"unusable token ({type(exc).__name__})") from None


def _decode(token: str, settings: Settings, jwks: JwksCache | None) -> TokenClaims:
    if not token or len(token) > MAX_TOKEN_LENGTH:
        raise InvalidToken("token missing or too long")
    header = jwt.get_unverified_header(token)
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
    expires_at = _check_time_claims(
        claims,
        leeway=settings.jwt_leeway_seconds,
        max_lifetime=None if local else settings.jwt_max_token_lifetime_seconds,
    )
    email = _email_claim(claims)
    return TokenClaims(
        subject=subject,
        local=local,
        token_version=version if local else None,
        email=email,
        email_verified=not local and email is not None and claims.get("email_verified") is True,
        name=_optional_claim(claims, "name", 100),
        expires_at=expires_at,
    )


def _numeric_dates(claims: dict[str, Any]) -> dict[str, float]:
    """The time claims present, each a finite JSON number within 1970..9999 (RFC 7519's
    NumericDate; python-jose alone takes the string "9999999999" and overflows on 1e400)."""
    dates: dict[str, float] = {}
    for name in TIME_CLAIMS:
        if name not in claims:
            continue
        value = claims[name]
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidToken(f"{name} must be a number")
        if isinstance(value, float) and not math.isfinite(value):
            raise InvalidToken(f"{name} must be finite")
        # Compared as given (an int may be far too large for a float): no conversion yet.
        if not 0 <= value <= MAX_NUMERIC_DATE:
            raise InvalidToken(f"{name} is out of range")
        dates[name] = float(value)
    return dates


def _check_time_claims(claims: dict[str, Any], *, leeway: int, max_lifetime: int | None) -> float:
    """`exp`, once the token is not issued in the future (python-jose only checks that `iat`
    is a number) and lives at most `max_lifetime` from its `iat` or now, the earlier."""
    dates = _numeric_dates(claims)
    now = time.time()
    expires_at = dates["exp"]  # python-jose has required it
    issued_at = dates.get("iat")
    if issued_at is not None and issued_at > now + leeway:
        raise InvalidToken("token issued in the future")
    if max_lifetime is not None:
        start = now if issued_at is None else min(issued_at, now)
        if expires_at - start > max_lifetime + leeway:
            raise InvalidToken("token lifetime exceeds JWT_MAX_TOKEN_LIFETIME_SECONDS")
    return expires_at


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
            token, key, algorithms=[algorithm], issuer=issuer, audience=audience, options=options
        )
    except JOSEError as exc:
        raise InvalidToken(str(exc)) from None
    return claims


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
