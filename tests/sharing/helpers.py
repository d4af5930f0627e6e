"""What the sharing tests share: a list and tasks through the API, a list shared through an
invitation made and accepted (`join`), or, where a test needs a membership without the
routes' own effects, a row of `list_members` made or ended through the test's database (a
set-up step, not a mock: the triggers fire as they do for any writer)."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from tests.conftest import Account


def make_list(client: TestClient, owner: Account, name: str = "Shared") -> int:
    made = client.post("/api/lists", json={"name": name}, headers=owner.headers)
    assert made.status_code == 201, made.text
    list_id: int = made.json()["data"]["id"]
    return list_id


def invite(
    client: TestClient, inviter: Account, list_id: int, role: str, email: str | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {"role": role}
    if email is not None:
        body["email"] = email
    made = client.post(f"/api/lists/{list_id}/invitations", json=body, headers=inviter.headers)
    assert made.status_code == 201, made.text
    data: dict[str, Any] = made.json()["data"]
    return data


def join(client: TestClient, owner: Account, member: Account, list_id: int, role: str) -> None:
    """`member` joins `owner`'s list with `role`, through an invitation to its email."""
    token = invite(client, owner, list_id, role, member.email)["token"]
    accepted = client.post("/api/invitations/accept", json={"token": token}, headers=member.headers)
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["data"]["role"] == role


def members(client: TestClient, caller: Account, list_id: int) -> dict[str, str]:
    """user id -> role, as the list's members route answers."""
    answer = client.get(f"/api/lists/{list_id}/members", headers=caller.headers)
    assert answer.status_code == 200, answer.text
    return {m["user_id"]: m["role"] for m in answer.json()["data"]}


def make_task(client: TestClient, account: Account, title: str, **fields: Any) -> int:
    response = client.post("/api/tasks", json={"title": title, **fields}, headers=account.headers)
    assert response.status_code == 201, response.text
    task_id: int = response.json()["data"]["id"]
    return task_id


def add_member(
    db_engine: Engine, owner: Account, list_id: int, member: Account, role: str = "editor"
) -> None:
    with db_engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO list_members (user_id, list_id, member_id, role) "
                "VALUES (:owner, :list, :member, :role)"
            ),
            {"owner": owner.id, "list": list_id, "member": member.id, "role": role},
        )


def remove_member(db_engine: Engine, list_id: int, member: Account) -> None:
    with db_engine.begin() as conn:
        conn.execute(
            text("DELETE FROM list_members WHERE list_id = :list AND member_id = :member"),
            {"list": list_id, "member": member.id},
        )


def get(client: TestClient, account: Account, path: str, **params: Any) -> dict[str, Any]:
    response = client.get(path, params=params, headers=account.headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def drain_feed(
    client: TestClient, account: Account, cursor: str | None = None
) -> tuple[list[dict[str, Any]], str]:
    """Every feed entry after `cursor`, following has_more; and the cursor to poll next."""
    seen: list[dict[str, Any]] = []
    while True:
        params: dict[str, Any] = {"limit": 50, **({"cursor": cursor} if cursor else {})}
        body = get(client, account, "/api/tasks/changes", **params)
        seen += body["data"]
        cursor = body["meta"]["next_cursor"]
        if not body["meta"]["has_more"]:
            return seen, cursor
