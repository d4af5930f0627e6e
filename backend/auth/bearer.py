"""The bearer check every way in makes (REST's door, MCP over HTTP and stdio): `TokenVerifier`,
the one object that turns a bearer token into verified claims, with its short cache of verified
shared-secret tokens, and `authenticate`, the check's errors. With a JWKS the key set may need
fetching: `fetches_keys` tells the caller to verify off the event loop."""

from __future__ import annotations

import time
from collections import OrderedDict

from anyio import to_thread

from backend.auth.jwks import JwksCache, JwksUnavailable
from backend.auth.tokens import InvalidToken, TokenClaims, decode_token
from backend.config import Settings
from backend.errors import ServiceUnavailable, Unauthorized

TTL_SECONDS = 30.0
MAX_ENTRIES = 4096


class VerifiedTokens:
    """Verified shared-secret tokens, briefly: the signature check is most of a request's
    authentication. An entry never outlives the token's `exp`; revocation is checked against
    the user row on every request anyway."""

    def __init__(self, ttl: float = TTL_SECONDS, max_entries: int = MAX_ENTRIES) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._entries: OrderedDict[str, tuple[float, TokenClaims]] = OrderedDict()

    def get(self, token: str) -> TokenClaims | None:
        entry = self._entries.get(token)
        if entry is None:
            return None
        valid_until, claims = entry
        if time.time() >= valid_until:
            del self._entries[token]
            return None
        self._entries.move_to_end(token)
        return claims

    def put(self, token: str, claims: TokenClaims) -> None:
        if claims.expires_at is None:
            return  # never happens for a verified token (`exp` is required); no entry then
        self._entries[token] = (min(time.time() + self.ttl, claims.expires_at), claims)
        self._entries.move_to_end(token)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)


class TokenVerifier:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._jwks = (
            None
            if settings.jwt_jwks_url is None
            else JwksCache(
                str(settings.jwt_jwks_url),
                cache_seconds=settings.jwt_jwks_cache_seconds,
                min_refetch_seconds=settings.jwt_jwks_min_refetch_seconds,
                timeout_seconds=settings.jwt_jwks_timeout_seconds,
            )
        )
        self._verified = VerifiedTokens()
        # Verifying may block on fetching the issuer's key set.
        self.fetches_keys = self._jwks is not None

    def verify(self, token: str) -> TokenClaims:
        """The token's claims, else `InvalidToken` (401) or `JwksUnavailable` (503). With a JWKS
        every token is checked against the current key set; without, from the short cache."""
        if self._jwks is not None:
            return decode_token(token, self._settings, self._jwks)
        claims = self._verified.get(token)
        if claims is None:
            claims = decode_token(token, self._settings)
            self._verified.put(token, claims)
        return claims


async def authenticate(verifier: TokenVerifier, token: str | None) -> TokenClaims:
    """A bearer token's claims, or `Unauthorized` (401) / `ServiceUnavailable` (503, the
    issuer's keys cannot be fetched)."""
    if token is None:
        raise Unauthorized("Missing bearer token")
    try:
        if verifier.fetches_keys:
            # Fetching the issuer's keys blocks: off the event loop.
            return await to_thread.run_sync(verifier.verify, token)
        return verifier.verify(token)
    except InvalidToken:
        raise Unauthorized("Invalid or expired token") from None
    except JwksUnavailable:
        raise ServiceUnavailable(
            "The token issuer's keys cannot be fetched; retry shortly"
        ) from None
