"""Set-up steps for the sharing tests: a list with tasks through the API, and a membership
made or ended as a row of `list_members` (until the members' routes exist: a set-up step
through the test's database, not a mock; the triggers fire as they do for any writer)."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from tests.conftest import Account


def make_list(client: TestClient, owner: Account, name: str = "Shared") -> int:
    response = client.post("/api/lists", json={"name": name}, headers=owner.headers)
    assert response.status_code == 201, response.text
    list_id: int = response.json()["data"]["id"]
    return list_id


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
