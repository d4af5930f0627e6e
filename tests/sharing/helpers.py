"""What the sharing tests share: a list shared through the API (an invitation made and
accepted), nothing written to the database directly."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

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
