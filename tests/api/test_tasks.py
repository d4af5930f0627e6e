"""The seven task routes: status codes, envelopes, PUT/PATCH semantics, completion, listing."""

from __future__ import annotations

from datetime import datetime

import pytest
from fastapi.testclient import TestClient

from tests.conftest import Account


def create(client: TestClient, user: Account, **body: object) -> dict:
    body.setdefault("title", "Task")
    response = client.post("/api/tasks", json=body, headers=user.headers)
    assert response.status_code == 201, response.text
    return response.json()["data"]


def test_create_returns_201_location_and_the_task(client: TestClient, alice: Account) -> None:
    response = client.post(
        "/api/tasks", json={"title": "  Buy milk  ", "description": "2 l"}, headers=alice.headers
    )
    assert response.status_code == 201
    task = response.json()["data"]
    assert response.headers["location"] == f"/api/tasks/{task['id']}"
    assert task["title"] == "Buy milk"
    assert task["description"] == "2 l"
    assert task["user_id"] == alice.id
    assert task["completed"] is False and task["completed_at"] is None
    assert task["created_at"] == task["updated_at"]
    assert datetime.fromisoformat(task["created_at"]).tzinfo is not None
    fetched = client.get(response.headers["location"], headers=alice.headers)
    assert fetched.status_code == 200 and fetched.json() == {"data": task}


def test_create_accepts_completed_and_stamps_completed_at(
    client: TestClient, alice: Account
) -> None:
    task = create(client, alice, title="Done already", completed=True)
    assert task["completed"] is True
    assert task["completed_at"] is not None


def test_read_only_fields_in_body_never_take_effect(client: TestClient, alice: Account) -> None:
    task = create(
        client,
        alice,
        title="Mine",
        id=999,
        user_id="someone-else",
        created_at="2000-01-01T00:00:00Z",
        updated_at="2000-01-01T00:00:00Z",
        completed_at="2000-01-01T00:00:00Z",
    )
    assert task["id"] != 999
    assert task["user_id"] == alice.id
    assert not task["created_at"].startswith("2000")
    assert task["completed_at"] is None


def test_get_missing_task_is_404_envelope(client: TestClient, alice: Account) -> None:
    response = client.get("/api/tasks/12345", headers=alice.headers)
    assert response.status_code == 404
    assert response.json() == {
        "error": {"code": "NOT_FOUND", "message": "Task not found", "details": []}
    }


def test_list_returns_envelope_with_meta(client: TestClient, alice: Account) -> None:
    first = create(client, alice, title="one")
    second = create(client, alice, title="two")
    response = client.get("/api/tasks", headers=alice.headers)
    assert response.status_code == 200
    body = response.json()
    assert [t["id"] for t in body["data"]] == [second["id"], first["id"]]  # newest first
    assert body["meta"] == {
        "count": 2,
        "limit": 100,
        "has_more": False,
        "next_cursor": None,
        "total": None,
        "changes_cursor": body["meta"]["changes_cursor"],
    }
    assert body["meta"]["changes_cursor"]


def test_list_empty(client: TestClient, alice: Account) -> None:
    body = client.get("/api/tasks", headers=alice.headers).json()
    assert body["data"] == []
    assert body["meta"] == {
        "count": 0,
        "limit": 100,
        "has_more": False,
        "next_cursor": None,
        "total": None,
        "changes_cursor": body["meta"]["changes_cursor"],
    }
    assert body["meta"]["changes_cursor"]


def test_list_status_filter(client: TestClient, alice: Account) -> None:
    open_task = create(client, alice, title="open")
    done_task = create(client, alice, title="done", completed=True)
    ids = lambda status: [
        t["id"]
        for t in client.get(f"/api/tasks?status={status}", headers=alice.headers).json()["data"]
    ]
    assert ids("pending") == [open_task["id"]]
    assert ids("completed") == [done_task["id"]]
    assert sorted(ids("all")) == sorted([open_task["id"], done_task["id"]])


def test_list_sort_by_title_is_case_insensitive_with_id_tiebreak(
    client: TestClient, alice: Account
) -> None:
    b = create(client, alice, title="banana")
    a1 = create(client, alice, title="Apple")
    a2 = create(client, alice, title="apple")
    c = create(client, alice, title="Cherry")

    def titles(query: str) -> list[int]:
        response = client.get(f"/api/tasks?{query}", headers=alice.headers)
        return [t["id"] for t in response.json()["data"]]

    assert titles("sort=title") == [a1["id"], a2["id"], b["id"], c["id"]]
    assert titles("sort=title&order=desc") == [c["id"], b["id"], a2["id"], a1["id"]]
    assert titles("sort=created&order=asc") == [b["id"], a1["id"], a2["id"], c["id"]]
    assert titles("sort=created") == [c["id"], a2["id"], a1["id"], b["id"]]


def test_list_limit_bounds_the_page(client: TestClient, alice: Account) -> None:
    for i in range(3):
        create(client, alice, title=f"t{i}")
    body = client.get("/api/tasks?limit=2", headers=alice.headers).json()
    assert body["meta"]["count"] == 2 and body["meta"]["has_more"] is True
    assert body["meta"]["next_cursor"]
    body = client.get("/api/tasks?limit=3", headers=alice.headers).json()
    assert body["meta"]["count"] == 3 and body["meta"]["has_more"] is False
    assert body["meta"]["next_cursor"] is None


def test_put_changes_the_fields_sent_and_keeps_the_others(
    client: TestClient, alice: Account
) -> None:
    task = create(client, alice, title="old", description="kept", completed=True)
    response = client.put(f"/api/tasks/{task['id']}", json={"title": "new"}, headers=alice.headers)
    assert response.status_code == 200
    updated = response.json()["data"]
    assert updated["title"] == "new"
    assert updated["description"] == "kept"
    assert updated["completed"] is True and updated["completed_at"] == task["completed_at"]
    assert updated["created_at"] == task["created_at"]
    assert updated["updated_at"] > task["updated_at"]


@pytest.mark.parametrize("body", [{}, {"id": 5, "created_at": "2030-01-01T00:00:00Z"}])
def test_put_that_names_no_field_is_422(client: TestClient, alice: Account, body: dict) -> None:
    task = create(client, alice)
    response = client.put(f"/api/tasks/{task['id']}", json=body, headers=alice.headers)
    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["field"] == "body"
    assert client.get(f"/api/tasks/{task['id']}", headers=alice.headers).json()["data"] == task


def test_patch_changes_only_sent_fields(client: TestClient, alice: Account) -> None:
    task = create(client, alice, title="title", description="desc")
    response = client.patch(
        f"/api/tasks/{task['id']}", json={"completed": True}, headers=alice.headers
    )
    assert response.status_code == 200
    patched = response.json()["data"]
    assert patched["title"] == "title" and patched["description"] == "desc"
    assert patched["completed"] is True and patched["completed_at"] is not None
    assert patched["updated_at"] > task["updated_at"]

    cleared = client.patch(
        f"/api/tasks/{task['id']}", json={"description": None}, headers=alice.headers
    ).json()["data"]
    assert cleared["description"] is None
    assert cleared["completed_at"] == patched["completed_at"]  # unchanged state keeps its time


@pytest.mark.parametrize("body", [{"title": None}, {"completed": None}])
def test_patch_rejects_null_for_required_fields(
    client: TestClient, alice: Account, body: dict
) -> None:
    task = create(client, alice)
    response = client.patch(f"/api/tasks/{task['id']}", json=body, headers=alice.headers)
    assert response.status_code == 422
    assert client.get(f"/api/tasks/{task['id']}", headers=alice.headers).json()["data"] == task


def test_complete_without_body_toggles(client: TestClient, alice: Account) -> None:
    task = create(client, alice)
    url = f"/api/tasks/{task['id']}/complete"
    first = client.patch(url, headers=alice.headers).json()["data"]
    assert first["completed"] is True and first["completed_at"] is not None
    second = client.patch(url, headers=alice.headers).json()["data"]
    assert second["completed"] is False and second["completed_at"] is None
    assert second["updated_at"] > first["updated_at"] > task["updated_at"]


@pytest.mark.parametrize("target", [True, False])
def test_complete_with_body_sets_state(client: TestClient, alice: Account, target: bool) -> None:
    task = create(client, alice)
    url = f"/api/tasks/{task['id']}/complete"
    for _ in range(2):  # setting is idempotent, unlike toggling
        response = client.patch(url, json={"completed": target}, headers=alice.headers)
        assert response.status_code == 200
        assert response.json()["data"]["completed"] is target


def test_complete_rejects_non_boolean(client: TestClient, alice: Account) -> None:
    task = create(client, alice)
    response = client.patch(
        f"/api/tasks/{task['id']}/complete", json={"completed": "yes"}, headers=alice.headers
    )
    assert response.status_code == 422


def test_delete_returns_204_then_404(client: TestClient, alice: Account) -> None:
    task = create(client, alice)
    response = client.delete(f"/api/tasks/{task['id']}", headers=alice.headers)
    assert response.status_code == 204 and response.content == b""
    assert client.get(f"/api/tasks/{task['id']}", headers=alice.headers).status_code == 404
    assert client.delete(f"/api/tasks/{task['id']}", headers=alice.headers).status_code == 404


@pytest.mark.parametrize(
    ("method", "suffix", "body"),
    [
        ("GET", "", None),
        ("PUT", "", {"title": "x"}),
        ("PATCH", "", {"title": "x"}),
        ("PATCH", "/complete", None),
        ("DELETE", "", None),
    ],
)
def test_every_verb_on_missing_task_is_404(
    client: TestClient, alice: Account, method: str, suffix: str, body: dict | None
) -> None:
    response = client.request(
        method, f"/api/tasks/987654{suffix}", json=body, headers=alice.headers
    )
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "NOT_FOUND"


@pytest.mark.parametrize("path", ["/api/tasks/", "/api/tasks"])
def test_trailing_slash_is_served_without_redirect(
    client: TestClient, alice: Account, path: str
) -> None:
    created = client.post(path, json={"title": "slash"}, headers=alice.headers)
    assert created.status_code == 201
    task_id = created.json()["data"]["id"]
    listed = client.get(path, headers=alice.headers, follow_redirects=False)
    assert listed.status_code == 200 and listed.json()["meta"]["count"] == 1
    for url in (f"/api/tasks/{task_id}/", f"/api/tasks/{task_id}/complete/"):
        method = "GET" if not url.endswith("complete/") else "PATCH"
        response = client.request(method, url, headers=alice.headers, follow_redirects=False)
        assert response.status_code == 200, url
