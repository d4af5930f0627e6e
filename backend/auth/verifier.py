"""`TokenVerifier`: the one object that turns a bearer token into verified claims, for every
way in. With a JWKS the key set may need fetching: `fetches_keys` tells the caller to verify
off the event loop."""

from __future__ import annotations

from backend.auth.jwks import JwksCache
from backend.auth.token_cache import VerifiedTokens
from backend.auth.tokens import TokenClaims, decode_token
from backend.config import Settings


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
