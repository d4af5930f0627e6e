"""A failed sign-in takes comparable time whether or not the email exists (a password hash
is verified either way), so timing does not reveal which accounts exist."""

from __future__ import annotations

import statistics
import time

from fastapi.testclient import TestClient

from tests.conftest import Account


def _median_seconds(client: TestClient, email: str, runs: int = 7) -> float:
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        response = client.post("/api/auth/login", json={"email": email, "password": "wrong-pw-1"})
        samples.append(time.perf_counter() - started)
        assert response.status_code == 401
    return statistics.median(samples)


def test_unknown_email_and_wrong_password_take_comparable_time(
    client: TestClient, alice: Account
) -> None:
    _median_seconds(client, alice.email, runs=2)  # warm-up
    known = _median_seconds(client, alice.email)
    unknown = _median_seconds(client, "nobody-here@example.com")
    # Without the dummy hash an unknown email answers many times faster (no argon2 at all).
    assert 0.5 < unknown / known < 2, (known, unknown)
