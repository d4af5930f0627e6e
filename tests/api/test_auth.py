"""Built-in accounts: sign-up, sign-in (JSON and OAuth2 form), /me, deletion, provisioning."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import quote

from fastapi.testclient import TestClient
from sqlalchemy import Engine

from tests.conftest import Account, bearer, count_rows, make_token


def test_register_returns_account_and_working_token(client: TestClient) -> None:
    response = client.post(
        "/api/auth/register",
        json={"email": "Grace@Example.com", "password": "hopper-1906", "name": " Grace "},
    )
    assert response.status_code == 201
    data = response.json()["data"]
    assert data["user"]["email"] == "grace@example.com"
    assert data["user"]["name"] == "Grace"
    assert data["token_type"] == "bearer" and data["expires_in"] == 3600
    assert "password" not in str(data["user"]) and "hash" not in str(data["user"])
    me = client.get("/api/auth/me", headers=bearer(data["access_token"]))
    assert me.status_code == 200 and me.json()["data"] == data["user"]


def test_register_duplicate_email_is_409(client: TestClient, alice: Account) -> None:
    response = client.post(
        "/api/auth/register", json={"email": "ALICE@example.com", "password": "another-pass"}
    )
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "CONFLICT"


def test_login_json(client: TestClient, alice: Account) -> None:
    response = client.post(
        "/api/auth/login", json={"email": "Alice@Example.com", "password": alice.password}
    )
    assert response.status_code == 200
    token = response.json()["data"]["access_token"]
    assert client.get("/api/auth/me", headers=bearer(token)).json()["data"]["id"] == alice.id


def test_wrong_password_and_unknown_email_answer_the_same(
    client: TestClient, alice: Account
) -> None:
    wrong = client.post("/api/auth/login", json={"email": alice.email, "password": "wrong-pass"})
    unknown = client.post(
        "/api/auth/login", json={"email": "nobody@example.com", "password": "wrong-pass"}
    )
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json()
    assert wrong.json()["error"]["message"] == "Invalid email or password"


def test_oauth2_password_form_returns_bare_token_response(
    client: TestClient, alice: Account
) -> None:
    response = client.post(
        "/api/auth/token", data={"username": alice.email, "password": alice.password}
    )
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "bearer" and body["expires_in"] == 3600
    assert client.get("/api/auth/me", headers=bearer(body["access_token"])).status_code == 200


def test_oauth2_form_bad_credentials_is_401(client: TestClient, alice: Account) -> None:
    for form in (
        {"username": alice.email, "password": "nope-nope"},
        {"username": "not-an-email", "password": "whatever1"},
        {"username": alice.email, "password": "x" * 1000},
    ):
        response = client.post("/api/auth/token", data=form)
        assert response.status_code == 401, form
        assert response.headers["www-authenticate"] == "Bearer"


def test_oauth2_form_empty_or_missing_password_is_401_like_a_wrong_one(
    client: TestClient, alice: Account
) -> None:
    """Issue 25, item 4: `password=` was 422 "Field required" for a field that was sent."""
    wrong = client.post("/api/auth/token", data={"username": alice.email, "password": "nope-nope"})
    for body in (
        f"username={quote(alice.email)}&password=",  # the empty password, as sent
        f"username={quote(alice.email)}",  # no password at all
        "username=&password=",
    ):
        response = client.post(
            "/api/auth/token",
            content=body,
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert response.status_code == 401, (body, response.text)
        assert response.json() == wrong.json(), body
        assert response.headers["www-authenticate"] == "Bearer"


def test_delete_account_cascades_to_tasks_and_kills_its_tokens(
    client: TestClient,
    register: Callable[..., Account],
    db_engine: Engine,
) -> None:
    doomed, survivor = register(), register()
    for i in range(3):
        client.post("/api/tasks", json={"title": f"t{i}"}, headers=doomed.headers)
    client.post("/api/tasks", json={"title": "keep"}, headers=survivor.headers)
    assert count_rows(db_engine, "tasks") == 4

    assert client.delete("/api/auth/me", headers=doomed.headers).status_code == 204
    assert count_rows(db_engine, "tasks") == 1
    assert count_rows(db_engine, "users") == 1
    # The deleted account's token must not re-create it.
    again = client.get("/api/tasks", headers=doomed.headers)
    assert again.status_code == 401
    assert count_rows(db_engine, "users") == 1
    assert client.get("/api/tasks", headers=survivor.headers).json()["meta"]["count"] == 1


def test_external_token_provisions_user_on_first_use(client: TestClient, db_engine: Engine) -> None:
    token = make_token(sub="ext-42", email="Ext@Example.com", name="Ext User")
    first = client.post("/api/tasks", json={"title": "from outside"}, headers=bearer(token))
    assert first.status_code == 201
    assert first.json()["data"]["user_id"] == "ext-42"
    me = client.get("/api/auth/me", headers=bearer(token)).json()["data"]
    assert me["id"] == "ext-42" and me["email"] == "ext@example.com" and me["name"] == "Ext User"
    client.get("/api/tasks", headers=bearer(token))
    assert count_rows(db_engine, "users") == 1


def test_external_token_with_an_email_already_taken_still_provisions(
    client: TestClient, alice: Account
) -> None:
    token = make_token(sub="ext-dup", email=alice.email)
    me = client.get("/api/auth/me", headers=bearer(token))
    assert me.status_code == 200
    assert me.json()["data"] == {**me.json()["data"], "id": "ext-dup", "email": None}


def test_externally_provisioned_account_cannot_sign_in_with_a_password(
    client: TestClient,
) -> None:
    client.get("/api/auth/me", headers=bearer(make_token(sub="ext-7", email="ext7@example.com")))
    response = client.post(
        "/api/auth/login", json={"email": "ext7@example.com", "password": "anything-1"}
    )
    assert response.status_code == 401
