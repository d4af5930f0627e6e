"""Two users, every verb: another user's task is a 404 identical to a missing one, and the
owner's row is untouched afterwards."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.conftest import Account

VERBS = [
    ("GET", "", None),
    ("PUT", "", {"title": "hijacked", "completed": True}),
    ("PATCH", "", {"title": "hijacked"}),
    ("PATCH", "/complete", None),
    ("PATCH", "/complete", {"completed": True}),
    ("DELETE", "", None),
]


@pytest.mark.parametrize(("method", "suffix", "body"), VERBS)
def test_other_users_task_is_indistinguishable_from_missing(
    client: TestClient, alice: Account, bob: Account, method: str, suffix: str, body: dict | None
) -> None:
    task = client.post("/api/tasks", json={"title": "alice's"}, headers=alice.headers).json()
    task = task["data"]
    missing_id = task["id"] + 1000

    foreign = client.request(
        method, f"/api/tasks/{task['id']}{suffix}", json=body, headers=bob.headers
    )
    missing = client.request(
        method, f"/api/tasks/{missing_id}{suffix}", json=body, headers=bob.headers
    )
    assert foreign.status_code == missing.status_code == 404
    assert foreign.content == missing.content
    assert set(foreign.headers) - {"x-request-id"} == set(missing.headers) - {"x-request-id"}

    after = client.get(f"/api/tasks/{task['id']}", headers=alice.headers)
    assert after.status_code == 200
    assert after.json()["data"] == task


def test_list_never_shows_other_users_tasks(
    client: TestClient, alice: Account, bob: Account
) -> None:
    client.post("/api/tasks", json={"title": "alice 1"}, headers=alice.headers)
    client.post("/api/tasks", json={"title": "alice 2", "completed": True}, headers=alice.headers)
    bobs = client.post("/api/tasks", json={"title": "bob 1"}, headers=bob.headers).json()["data"]
    for query in (
        "",
        "?status=completed",
        "?status=pending",
        "?sort=title",
        f"?user_id={alice.id}",
        f"?owner={alice.id}",
    ):
        data = client.get(f"/api/tasks{query}", headers=bob.headers).json()["data"]
        assert all(t["user_id"] == bob.id for t in data), query
    assert [t["id"] for t in client.get("/api/tasks", headers=bob.headers).json()["data"]] == [
        bobs["id"]
    ]
    assert client.get("/api/tasks", headers=alice.headers).json()["meta"]["count"] == 2


def test_user_id_in_body_cannot_assign_a_task_to_another_user(
    client: TestClient, alice: Account, bob: Account
) -> None:
    created = client.post(
        "/api/tasks", json={"title": "sneaky", "user_id": alice.id}, headers=bob.headers
    ).json()["data"]
    assert created["user_id"] == bob.id
    assert client.get("/api/tasks", headers=alice.headers).json()["meta"]["count"] == 0

    replaced = client.put(
        f"/api/tasks/{created['id']}", json={"title": "x", "user_id": alice.id}, headers=bob.headers
    ).json()["data"]
    assert replaced["user_id"] == bob.id
