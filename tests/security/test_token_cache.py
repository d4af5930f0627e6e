"""The verified-token cache: reuse never outlives the token's `exp` or the TTL, stays bounded,
and never bypasses the per-request account checks (revocation)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from backend.auth import bearer
from backend.auth.bearer import VerifiedTokens
from backend.auth.tokens import TokenClaims
from tests.conftest import Account


class Clock:
    """The cache's wall clock, moved by the test: expiry is checked at exact instants, so a
    slow or descheduled test process cannot cross a boundary between two lines."""

    def __init__(self) -> None:
        self.now = 1_900_000_000.0

    def time(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(bearer, "time", clock)
    return clock


def claims(clock: Clock, expires_in: float) -> TokenClaims:
    return TokenClaims(
        subject="user-1", local=True, token_version=0, expires_at=clock.now + expires_in
    )


def test_a_verified_token_is_reused_until_the_ttl(clock: Clock) -> None:
    cache = VerifiedTokens(ttl=0.2)
    entry = claims(clock, 3600)
    cache.put("token-a", entry)
    assert cache.get("token-a") is entry
    assert cache.get("token-b") is None
    clock.now += 0.19
    assert cache.get("token-a") is entry
    clock.now += 0.01
    assert cache.get("token-a") is None


def test_never_past_the_tokens_expiry(clock: Clock) -> None:
    cache = VerifiedTokens(ttl=3600)
    cache.put("expiring", claims(clock, 0.1))
    assert cache.get("expiring") is not None
    clock.now += 0.1
    assert cache.get("expiring") is None
    cache.put("expired", claims(clock, -1))
    assert cache.get("expired") is None


def test_claims_without_expiry_are_not_cached() -> None:
    cache = VerifiedTokens()
    cache.put("no-exp", TokenClaims(subject="user-1", local=False))
    assert cache.get("no-exp") is None


def test_bounded_least_recently_used_first(clock: Clock) -> None:
    cache = VerifiedTokens(max_entries=2)
    cache.put("a", claims(clock, 60))
    cache.put("b", claims(clock, 60))
    assert cache.get("a") is not None  # a is now the most recently used
    cache.put("c", claims(clock, 60))
    assert cache.get("b") is None
    assert cache.get("a") is not None and cache.get("c") is not None


def test_a_cached_token_is_still_revoked(client: TestClient, alice: Account) -> None:
    assert client.get("/api/tasks", headers=alice.headers).status_code == 200  # now cached
    assert client.post("/api/auth/logout-all", headers=alice.headers).status_code in (200, 204)
    refused = client.get("/api/tasks", headers=alice.headers)
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"] == "Bearer"
