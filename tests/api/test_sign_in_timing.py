"""A failed sign-in takes comparable time whether or not the email exists (a password hash
is verified either way), so timing does not reveal which accounts exist."""

from __future__ import annotations

import statistics
import time
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import Account

# The dummy hash is what these tests prove: it must cost what a real hash costs in production.
pytestmark = pytest.mark.usefixtures("production_password_hashing")


def _refusal_seconds(
    client: TestClient, requests: list[tuple[str, dict[str, Any]]], runs: int = 7
) -> list[float]:
    """The median time of each refused sign-in (a path and its `client.post` arguments),
    sampled in turns: a load change on the machine then weighs on every request alike,
    where one sampled after the other could see the machine at two speeds."""
    samples: list[list[float]] = [[] for _ in requests]
    for _ in range(runs):
        for (path, arguments), taken in zip(requests, samples, strict=True):
            started = time.perf_counter()
            response = client.post(path, **arguments)
            taken.append(time.perf_counter() - started)
            assert response.status_code == 401, (path, arguments, response.text)
    return [statistics.median(taken) for taken in samples]


def test_unknown_email_and_wrong_password_take_comparable_time(
    unlimited_client: TestClient, alice: Account
) -> None:
    # Limits off: 18 refused sign-ins from one address would meet 429s before the end.
    client = unlimited_client
    logins = [
        ("/api/auth/login", {"json": {"email": email, "password": "wrong-pw-1"}})
        for email in (alice.email, "nobody-here@example.com")
    ]
    _refusal_seconds(client, logins, runs=2)  # warm-up
    known, unknown = _refusal_seconds(client, logins)
    # Without the dummy hash an unknown email answers many times faster (no argon2 at all).
    assert 0.5 < unknown / known < 2, (known, unknown)


def _token_form_seconds(
    client: TestClient, forms: list[dict[str, str]], runs: int = 7
) -> list[float]:
    """The median time of a refused `POST /api/auth/token` for each form, sampled in turns."""
    return _refusal_seconds(client, [("/api/auth/token", {"data": form}) for form in forms], runs)


def test_an_empty_password_is_refused_like_a_wrong_one_whoever_the_email_is(
    unlimited_client: TestClient, alice: Account
) -> None:
    """Issue 25, item 4: the token form's empty password is a 401 in the time of any wrong
    password, for an existing account and an unknown email alike."""
    forms = [
        {"username": alice.email, "password": "wrong-pw-1"},  # a wrong password
        {"username": alice.email, "password": ""},
        {"username": "nobody-here@example.com", "password": ""},
    ]
    client = unlimited_client  # limits off: 27 sign-ins, most for one account
    _token_form_seconds(client, forms, runs=2)  # warm-up
    wrong, known_empty, unknown_empty = _token_form_seconds(client, forms)
    assert 0.5 < known_empty / unknown_empty < 2, (known_empty, unknown_empty)
    # As slow as a wrong password (a hash verified), not a shortcut that could tell apart
    # a wrong password from a malformed one.
    assert 0.5 < known_empty / wrong < 2, (wrong, known_empty)
