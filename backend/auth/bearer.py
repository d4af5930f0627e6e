"""The bearer check every way in makes (REST's door, MCP over HTTP and stdio)."""

from __future__ import annotations

from anyio import to_thread

from backend.auth.jwks import JwksUnavailable
from backend.auth.tokens import InvalidToken, TokenClaims
from backend.auth.verifier import TokenVerifier
from backend.errors import ServiceUnavailable, Unauthorized


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
