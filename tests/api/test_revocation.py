"""Revocation of built-in tokens: `POST /api/auth/logout-all` and account deletion make every
token issued so far fail at once; other accounts and external tokens are untouched."""

from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient
from jose import jwt
from sqlalchemy import Engine, text

from backend.auth.tokens import issue_token
from backend.config import Settings
from tests.conftest import TEST_SECRET, Account, bearer, make_token


def _sign_in(client: TestClient, account: Account) -> str:
    response = client.post(
        "/api/auth/login", json={"email": account.email, "password": account.password}
    )
    assert response.status_code == 200, response.text
    token: str = response.json()["data"]["access_token"]
    return token


def test_built_in_tokens_carry_the_token_version(client: TestClient, alice: Account) -> None:
    assert jwt.get_unverified_claims(alice.token)["ver"] == 0


def test_logout_all_revokes_every_built_in_token_immediately(
    client: TestClient, register: Callable[..., Account]
) -> None:
    alice, bob = register(), register()
    second = _sign_in(client, alice)
    form = client.post(
        "/api/auth/token", data={"username": alice.email, "password": alice.password}
    ).json()["access_token"]
    for token in (alice.token, second, form):
        assert client.get("/api/tasks", headers=bearer(token)).status_code == 200

    assert client.post("/api/auth/logout-all", headers=alice.headers).status_code == 204

    for token in (alice.token, second, form):
        response = client.get("/api/tasks", headers=bearer(token))
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
    # Signing in again gives a working token; other accounts are untouched.
    fresh = _sign_in(client, alice)
    assert jwt.get_unverified_claims(fresh)["ver"] == 1
    assert client.get("/api/tasks", headers=bearer(fresh)).status_code == 200
    assert client.get("/api/tasks", headers=bob.headers).status_code == 200
    # Revoking again revokes the fresh token too.
    assert client.post("/api/auth/logout-all", headers=bearer(fresh)).status_code == 204
    assert client.get("/api/tasks", headers=bearer(fresh)).status_code == 401


def test_a_revoked_token_is_checked_after_input_validation(
    client: TestClient, alice: Account
) -> None:
    """As the contract says: the token is verified before the input, the account's state
    after it. So an invalid request with a revoked token gets its 422, a valid one the 401,
    and neither changes anything."""
    created = client.post("/api/tasks", json={"title": "kept"}, headers=alice.headers)
    task_id = created.json()["data"]["id"]
    assert client.post("/api/auth/logout-all", headers=alice.headers).status_code == 204
    invalid = [
        client.post("/api/tasks", json={"title": ""}, headers=alice.headers),
        client.patch(f"/api/tasks/{task_id}", json={"priority": "x"}, headers=alice.headers),
        client.get("/api/tasks/abc", headers=alice.headers),
        client.get("/api/tasks?limit=0", headers=alice.headers),
    ]
    assert [r.status_code for r in invalid] == [422] * 4
    valid = [
        client.post("/api/tasks", json={"title": "new"}, headers=alice.headers),
        client.patch(f"/api/tasks/{task_id}", json={"title": "changed"}, headers=alice.headers),
        client.get(f"/api/tasks/{task_id}", headers=alice.headers),
        client.get("/api/tasks", headers=alice.headers),
    ]
    assert [r.status_code for r in valid] == [401] * 4
    assert all(r.json()["error"]["code"] == "UNAUTHORIZED" for r in valid)
    # A forged token is refused before the input is looked at.
    assert client.get("/api/tasks/abc", headers=bearer("x.y.z")).status_code == 401
    fresh = _sign_in(client, alice)
    tasks = client.get("/api/tasks", headers=bearer(fresh)).json()["data"]
    assert [t["title"] for t in tasks] == ["kept"]


def test_logout_all_needs_a_valid_token(client: TestClient) -> None:
    assert client.post("/api/auth/logout-all").status_code == 401
    assert client.post("/api/auth/logout-all", headers=bearer("x.y.z")).status_code == 401


def test_revocation_check_writes_nothing_per_request(
    client: TestClient, alice: Account, db_engine: Engine
) -> None:
    """Verifying a token reads the account row; it never updates it."""

    with db_engine.connect() as conn:
        before = conn.execute(text("SELECT xmin::text FROM users")).scalar_one()
    for _ in range(5):
        assert client.get("/api/tasks", headers=alice.headers).status_code == 200
    with db_engine.connect() as conn:
        after = conn.execute(text("SELECT xmin::text FROM users")).scalar_one()
    assert before == after  # no UPDATE touched the row


def test_token_with_a_forged_version_is_refused(
    client: TestClient, alice: Account, settings: Settings
) -> None:
    future = issue_token(alice.id, settings, token_version=5)
    assert client.get("/api/tasks", headers=bearer(future)).status_code == 401
    # A built-in token without a version (or with a non-integer one) is refused too.
    for version in (None, "0", True, 0.0):
        token = make_token(sub=alice.id, task_api=True, ver=version, secret=TEST_SECRET)
        assert client.get("/api/tasks", headers=bearer(token)).status_code == 401, version


def test_external_tokens_are_not_affected_by_the_version(client: TestClient) -> None:
    token = make_token(sub="ext-rev", ver=99)
    assert client.get("/api/tasks", headers=bearer(token)).status_code == 200
    assert client.post("/api/auth/logout-all", headers=bearer(token)).status_code == 204
    assert client.get("/api/tasks", headers=bearer(token)).status_code == 200


def test_deleting_the_account_kills_all_its_tokens(
    client: TestClient, register: Callable[..., Account]
) -> None:
    alice = register()
    second = _sign_in(client, alice)
    assert client.delete("/api/auth/me", headers=alice.headers).status_code == 204
    for token in (alice.token, second):
        assert client.get("/api/tasks", headers=bearer(token)).status_code == 401
