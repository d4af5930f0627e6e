"""The verified-token cache: reuse never outlives the token's `exp` or the TTL, stays bounded,
and never bypasses the per-request account checks (revocation)."""

from __future__ import annotations

import time

from fastapi.testclient import TestClient

from backend.auth.token_cache import VerifiedTokens
from backend.auth.tokens import TokenClaims
from tests.conftest import Account


def claims(expires_in: float) -> TokenClaims:
    return TokenClaims(
        subject="user-1", local=True, token_version=0, expires_at=time.time() + expires_in
    )


def test_a_verified_token_is_reused_until_the_ttl() -> None:
    cache = VerifiedTokens(ttl=0.2)
    entry = claims(3600)
    cache.put("token-a", entry)
    assert cache.get("token-a") is entry
    assert cache.get("token-b") is None
    time.sleep(0.25)
    assert cache.get("token-a") is None


def test_never_past_the_tokens_expiry() -> None:
    cache = VerifiedTokens(ttl=3600)
    cache.put("expiring", claims(0.1))
    assert cache.get("expiring") is not None
    time.sleep(0.15)
    assert cache.get("expiring") is None
    cache.put("expired", claims(-1))
    assert cache.get("expired") is None


def test_claims_without_expiry_are_not_cached() -> None:
    cache = VerifiedTokens()
    cache.put("no-exp", TokenClaims(subject="user-1", local=False))
    assert cache.get("no-exp") is None


def test_bounded_least_recently_used_first() -> None:
    cache = VerifiedTokens(max_entries=2)
    cache.put("a", claims(60))
    cache.put("b", claims(60))
    assert cache.get("a") is not None  # a is now the most recently used
    cache.put("c", claims(60))
    assert cache.get("b") is None
    assert cache.get("a") is not None and cache.get("c") is not None


def test_a_cached_token_is_still_revoked(client: TestClient, alice: Account) -> None:
    assert client.get("/api/tasks", headers=alice.headers).status_code == 200  # now cached
    assert client.post("/api/auth/logout-all", headers=alice.headers).status_code in (200, 204)
    refused = client.get("/api/tasks", headers=alice.headers)
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"] == "Bearer"
