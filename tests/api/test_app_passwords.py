"""App passwords (issue 62): created with the password shown once and stored as its hash,
listed without it, revoked, ended by signing out everywhere and by the account's deletion;
names, the limit, another user's id."""

from __future__ import annotations

import hashlib
from base64 import b64encode
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from backend.api.responses import EXAMPLES
from backend.models.app_password import APP_PASSWORDS_PER_USER, PASSWORD_PATTERN
from tests.conftest import Account


def basic(username: str, password: str) -> dict[str, str]:
    token = b64encode(f"{username}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def create(client: TestClient, who: Account, name: str = "Phone", **body: Any) -> Any:
    answer = client.post("/api/app-passwords", json={"name": name, **body}, headers=who.headers)
    assert answer.status_code == 201, answer.text
    return answer.json()["data"]


def propfind(client: TestClient, headers: dict[str, str]) -> Any:
    return client.request("PROPFIND", "/dav/", headers={**headers, "Depth": "0"})


def test_create_shows_the_password_once_and_stores_its_hash(
    client: TestClient, alice: Account, setup_engine: Engine
) -> None:
    import re

    made = create(client, alice, "iPhone", scope="read")
    assert set(made) == {
        "id", "name", "scope", "username", "password", "dav_url", "created_at", "last_used_at"
    }  # fmt: skip
    assert re.fullmatch(PASSWORD_PATTERN, made["password"])
    assert (made["name"], made["scope"], made["username"]) == ("iPhone", "read", alice.id)
    assert made["dav_url"] == "http://testserver/dav/" and made["last_used_at"] is None
    listed = client.get("/api/app-passwords", headers=alice.headers).json()
    assert listed["meta"] == {"count": 1}
    [row] = listed["data"]
    assert "password" not in row and row["id"] == made["id"]
    with setup_engine.connect() as conn:
        stored = conn.execute(text("SELECT t::text FROM app_passwords AS t")).scalar_one()
    assert made["password"] not in stored
    assert hashlib.sha256(made["password"].encode()).hexdigest() in stored


def test_the_password_signs_in_over_dav_and_its_use_is_shown(
    client: TestClient, alice: Account
) -> None:
    made = create(client, alice)
    answer = propfind(client, basic(made["username"], made["password"]))
    assert answer.status_code == 207, answer.text
    [row] = client.get("/api/app-passwords", headers=alice.headers).json()["data"]
    assert row["last_used_at"] is not None
    # Written at most once a minute: a client syncing again at once writes no row.
    assert propfind(client, basic(made["username"], made["password"])).status_code == 207
    [again] = client.get("/api/app-passwords", headers=alice.headers).json()["data"]
    assert again["last_used_at"] == row["last_used_at"]


def test_revoked_is_refused_from_the_next_request_on(client: TestClient, alice: Account) -> None:
    made = create(client, alice)
    headers = basic(made["username"], made["password"])
    assert propfind(client, headers).status_code == 207
    path = f"/api/app-passwords/{made['id']}"
    assert client.delete(path, headers=alice.headers).status_code == 204
    refused = propfind(client, headers)
    assert refused.status_code == 401
    assert refused.headers["WWW-Authenticate"].startswith("Basic ")
    again = client.delete(path, headers=alice.headers)
    assert (again.status_code, again.json()["error"]["message"]) == (
        404,
        "App password not found",
    )


def test_another_users_id_is_the_missing_ids_404(
    client: TestClient, alice: Account, bob: Account
) -> None:
    made = create(client, alice)
    theirs = client.delete(f"/api/app-passwords/{made['id']}", headers=bob.headers)
    missing = client.delete("/api/app-passwords/999999", headers=bob.headers)
    assert theirs.status_code == missing.status_code == 404
    assert theirs.content == missing.content
    assert client.get("/api/app-passwords", headers=bob.headers).json()["data"] == []
    assert propfind(client, basic(made["username"], made["password"])).status_code == 207


def test_names_are_unique_and_the_limit_holds(client: TestClient, alice: Account) -> None:
    create(client, alice, "Laptop")
    taken = client.post("/api/app-passwords", json={"name": "LAPTOP"}, headers=alice.headers)
    assert taken.status_code == 409, taken.text
    for index in range(1, APP_PASSWORDS_PER_USER):
        create(client, alice, f"device {index}")
    full = client.post("/api/app-passwords", json={"name": "one more"}, headers=alice.headers)
    example = EXAMPLES["too_many_app_passwords"]
    assert (full.status_code, full.json()) == (example.status, example.example()["value"])
    listed = client.get("/api/app-passwords", headers=alice.headers).json()
    assert listed["meta"]["count"] == APP_PASSWORDS_PER_USER


def test_bad_bodies_are_refused(client: TestClient, alice: Account) -> None:
    for body in ({}, {"name": ""}, {"name": "x", "scope": "admin"}, {"name": "x", "extra": 1}):
        answer = client.post("/api/app-passwords", json=body, headers=alice.headers)
        assert answer.status_code == 422, (body, answer.text)
    assert client.get("/api/app-passwords", headers=alice.headers).json()["data"] == []


def test_signing_out_everywhere_ends_them(client: TestClient, alice: Account) -> None:
    made = create(client, alice)
    headers = basic(made["username"], made["password"])
    assert client.post("/api/auth/logout-all", headers=alice.headers).status_code == 204
    assert propfind(client, headers).status_code == 401


def test_deleting_the_account_ends_them(
    client: TestClient, alice: Account, setup_engine: Engine
) -> None:
    made = create(client, alice)
    assert client.delete("/api/auth/me", headers=alice.headers).status_code == 204
    assert propfind(client, basic(made["username"], made["password"])).status_code == 401
    with setup_engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM app_passwords")).scalar_one() == 0
