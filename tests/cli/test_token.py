"""`python -m backend token`: every token it prints is one the API accepts, also under
JWT_MAX_TOKEN_LIFETIME_SECONDS (its tokens are external-style, so the cap applies to them)."""

from __future__ import annotations

import time

from fastapi.testclient import TestClient
from jose import jwt

from backend.config import Settings
from backend.main import create_app
from tests.cli.helpers import run_cli
from tests.conftest import bearer


def test_default_cli_token_is_accepted(client: TestClient) -> None:
    result = run_cli("token", "cli-token-user")
    assert result.returncode == 0, result.stderr
    token = result.stdout.strip()
    assert client.get("/api/tasks", headers=bearer(token)).status_code == 200


def test_a_long_lived_cli_token_up_to_the_maximum_is_accepted(
    settings: Settings, client: TestClient
) -> None:
    """A week, with the maximum raised to a week: the way to a long-lived token."""
    week = 7 * 24 * 3600
    result = run_cli(
        "token", "cli-week-user", "--minutes", str(7 * 24 * 60),
        JWT_MAX_TOKEN_LIFETIME_SECONDS=str(week),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    token = result.stdout.strip()
    assert week - 60 < jwt.get_unverified_claims(token)["exp"] - time.time() <= week
    weekly = settings.model_copy(update={"jwt_max_token_lifetime_seconds": week})
    with TestClient(create_app(weekly), raise_server_exceptions=False) as weekly_client:
        assert weekly_client.get("/api/tasks", headers=bearer(token)).status_code == 200
    # An API keeping the default cap (a day) refuses it, as its cap says.
    assert client.get("/api/tasks", headers=bearer(token)).status_code == 401


def test_cli_refuses_a_lifetime_over_the_maximum_in_one_line() -> None:
    result = run_cli("token", "cli-user", "--minutes", str(2 * 24 * 60))
    assert result.returncode == 2
    assert result.stdout == ""
    [line] = result.stderr.strip().splitlines()
    assert "JWT_MAX_TOKEN_LIFETIME_SECONDS" in line, line


def test_cli_default_stays_within_a_lower_maximum(client: TestClient) -> None:
    """ACCESS_TOKEN_EXPIRE_MINUTES (the default lifetime) above the cap: the CLI mints a token
    at the cap rather than one the API would refuse."""
    result = run_cli(
        "token", "cli-capped-user",
        ACCESS_TOKEN_EXPIRE_MINUTES=str(3 * 24 * 60), JWT_MAX_TOKEN_LIFETIME_SECONDS="3600",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    token = result.stdout.strip()
    assert jwt.get_unverified_claims(token)["exp"] - time.time() <= 3600
    assert client.get("/api/tasks", headers=bearer(token)).status_code == 200
