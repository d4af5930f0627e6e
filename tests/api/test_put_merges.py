"""PUT merges (issue 43): a field the body does not name keeps its stored value, for every
resource with a PUT and on both path families. The bodies are the shapes real front ends send:
a seed-era edit form (`{title, description?, completed}`) that knows none of the newer fields,
and a front end that sends PUT as a partial update (`{"completed": true}`, `{"title": ...}`).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from tests.conftest import Account
from tests.mcp.conftest import call_tool_rpc

# Answered fields a write may change whatever its body: the write's own history.
HISTORY = {"updated_at"}


def _post(client: TestClient, account: Account, path: str, body: dict[str, Any]) -> Any:
    response = client.post(path, json=body, headers=account.headers)
    assert response.status_code == 201, response.text
    return response.json()["data"]


def _put(client: TestClient, account: Account, path: str, body: dict[str, Any]) -> Any:
    response = client.put(path, json=body, headers=account.headers)
    assert response.status_code == 200, response.text
    return response.json()["data"]


def _get(client: TestClient, account: Account, path: str) -> Any:
    response = client.get(path, headers=account.headers)
    assert response.status_code == 200, response.text
    return response.json()["data"]


def _unchanged_but(before: dict[str, Any], after: dict[str, Any], *sent: str) -> dict[str, Any]:
    """The fields that differ although the body did not name them."""
    skip = HISTORY | set(sent)
    return {k: (before[k], after.get(k)) for k in before if k not in skip and before[k] != after[k]}


def _tasks_base(account: Account, family: str) -> str:
    return "/api/tasks" if family == "plain" else f"/api/{quote(account.id, safe='')}/tasks"


def _lists_base(account: Account, family: str) -> str:
    return "/api/lists" if family == "plain" else f"/api/{quote(account.id, safe='')}/lists"


def _everything(client: TestClient, account: Account) -> dict[str, Any]:
    """A body that sets every kind of field a task has beyond a seed-era form's."""
    groceries = _post(client, account, "/api/lists", {"name": "Groceries"})
    return {
        "title": "Buy milk",
        "description": "2 litres",
        "priority": "high",
        "due_date": "2030-12-01T09:00:00Z",
        "tags": ["errands"],
        "list_id": groceries["id"],
        "recurrence": "FREQ=WEEKLY",
        "time_zone": "Europe/Berlin",
        "reminders": [{"minutes_before_due": 30}],
    }


@pytest.mark.parametrize("family", ["plain", "user_path"])
def test_a_seed_era_edit_keeps_the_newer_fields(
    client: TestClient, alice: Account, db_engine: Engine, family: str
) -> None:
    base = _tasks_base(alice, family)
    task = _post(client, alice, base, _everything(client, alice))
    with db_engine.connect() as conn:
        row = conn.execute(text("SELECT * FROM tasks WHERE id = :id"), {"id": task["id"]}).one()
    edit = {"title": "Buy oat milk", "description": "2 litres", "completed": False}
    edited = _put(client, alice, f"{base}/{task['id']}", edit)
    assert edited["title"] == "Buy oat milk"
    assert _unchanged_but(task, edited, "title") == {}
    assert _get(client, alice, f"{base}/{task['id']}") == edited
    # The stored row too: the series (its id and start) and the schedule are the same.
    with db_engine.connect() as conn:
        stored = conn.execute(text("SELECT * FROM tasks WHERE id = :id"), {"id": task["id"]}).one()
    changed = {k for k, v in row._mapping.items() if stored._mapping[k] != v} - {
        "title",
        "updated_at",
        "version",
    }
    assert changed == set()


@pytest.mark.parametrize("family", ["plain", "user_path"])
def test_a_partial_put_changes_only_what_it_sends(
    client: TestClient, alice: Account, family: str
) -> None:
    base = _tasks_base(alice, family)
    body = {**_everything(client, alice), "recurrence": None}
    task = _post(client, alice, base, body)
    url = f"{base}/{task['id']}"
    done = _put(client, alice, url, {"completed": True})
    assert done["completed"] is True and done["completed_at"] is not None
    assert _unchanged_but(task, done, "completed", "completed_at") == {}
    renamed = _put(client, alice, url, {"title": "Buy oat milk"})
    assert renamed["title"] == "Buy oat milk"
    assert _unchanged_but(done, renamed, "title") == {}
    # null clears a nullable field, and only that one.
    cleared = _put(client, alice, url, {"description": None, "due_date": None, "reminders": []})
    assert (cleared["description"], cleared["due_date"], cleared["reminders"]) == (None, None, [])
    assert _unchanged_but(renamed, cleared, "description", "due_date", "reminders") == {}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "body"),
        ({"id": 1, "user_id": "someone", "updated_at": "2030-01-01T00:00:00Z"}, "body"),
        ({"title": None}, "body.title"),
        ({"completed": None}, "body.completed"),
        ({"priority": None}, "body.priority"),
        ({"tags": "errands"}, "body.tags"),
        ({"priority": "urgent"}, "body.priority"),
        ({"title": "   "}, "body.title"),
        ({"colour": "red"}, "body.colour"),
    ],
)
def test_a_put_that_changes_nothing_or_nulls_a_required_field_is_422(
    client: TestClient, alice: Account, body: dict[str, Any], field: str
) -> None:
    task = _post(client, alice, "/api/tasks", _everything(client, alice))
    response = client.put(f"/api/tasks/{task['id']}", json=body, headers=alice.headers)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "VALIDATION_ERROR"
    # One detail, naming the field as the client sent it (no schema-internal union member).
    assert [d["field"] for d in error["details"]] == [field]
    if field != "body":  # PATCH refuses the same field the same way (it accepts `{}`).
        patched = client.patch(f"/api/tasks/{task['id']}", json=body, headers=alice.headers)
        assert (patched.status_code, patched.json()) == (422, response.json())
    assert _get(client, alice, f"/api/tasks/{task['id']}") == task


def test_a_task_set_by_an_agent_survives_a_front_ends_edit(
    client: TestClient, alice: Account
) -> None:
    """The MCP tools set every field they can; the web form's PUT then renames the task."""
    everything = _everything(client, alice)
    arguments = {k: v for k, v in everything.items() if k != "list_id"}
    added = call_tool_rpc(client, "/mcp", alice.token, "add_task", arguments)
    assert added["isError"] is False, added
    task_id = added["structuredContent"]["task_id"]
    parent = _post(client, alice, "/api/tasks", {"title": "Shopping"})
    update = {"task_id": task_id, "list_id": everything["list_id"], "tags": ["errands", "dairy"]}
    updated = call_tool_rpc(client, "/mcp", alice.token, "update_task", update)
    assert updated["isError"] is False, updated
    before = _get(client, alice, f"/api/tasks/{task_id}")
    assert before["tags"] == ["errands", "dairy"] and before["recurrence"] == "FREQ=WEEKLY"
    edit = {"title": "Buy oat milk", "description": "2 litres", "completed": False}
    edited = _put(client, alice, f"/api/tasks/{task_id}", edit)
    assert _unchanged_but(before, edited, "title") == {}
    # A subtask, set up by an agent and edited by a form, stays under its parent.
    child = call_tool_rpc(
        client, "/mcp", alice.token, "add_task", {"title": "oat", "parent_id": parent["id"]}
    )
    child_id = child["structuredContent"]["task_id"]
    under = _get(client, alice, f"/api/tasks/{child_id}")
    moved_not = _put(client, alice, f"/api/tasks/{child_id}", {"title": "oat, 2 l"})
    assert _unchanged_but(under, moved_not, "title") == {}
    assert moved_not["parent_id"] == parent["id"]


@pytest.mark.parametrize("family", ["plain", "user_path"])
def test_a_lists_put_keeps_its_colour(client: TestClient, alice: Account, family: str) -> None:
    base = _lists_base(alice, family)
    made = _post(client, alice, base, {"name": "Home", "color": "#112233"})
    renamed = _put(client, alice, f"{base}/{made['id']}", {"name": "House"})
    assert (renamed["name"], renamed["color"]) == ("House", "#112233")
    recoloured = _put(client, alice, f"{base}/{made['id']}", {"color": "#445566"})
    assert (recoloured["name"], recoloured["color"]) == ("House", "#445566")
    cleared = _put(client, alice, f"{base}/{made['id']}", {"color": None})
    assert (cleared["name"], cleared["color"]) == ("House", None)
    for body in ({}, {"name": None}, {"id": 3, "position": 9}):
        refused = client.put(f"{base}/{made['id']}", json=body, headers=alice.headers)
        assert refused.status_code == 422, (body, refused.text)
    assert _get(client, alice, f"{base}/{made['id']}") == cleared


@pytest.mark.parametrize("method", ["PUT", "PATCH"])
def test_two_editors_never_overwrite_each_other(
    client: TestClient, alice: Account, method: str
) -> None:
    """Two front ends read the task; the first one's edit lands, the second one's stale
    If-Match is a 412 that changes nothing, and it succeeds once it has read again."""
    created = client.post("/api/tasks", json={"title": "Plan"}, headers=alice.headers)
    url = f"/api/tasks/{created.json()['data']['id']}"
    tag = client.get(url, headers=alice.headers).headers["ETag"]
    first = client.request(
        method, url, json={"title": "Plan A"}, headers={**alice.headers, "If-Match": tag}
    )
    assert first.status_code == 200, first.text
    stale = client.request(
        method, url, json={"priority": "high"}, headers={**alice.headers, "If-Match": tag}
    )
    assert stale.status_code == 412, stale.text
    assert stale.json()["error"]["code"] == "PRECONDITION_FAILED"
    now = client.get(url, headers=alice.headers)
    assert now.json()["data"]["priority"] == "none" and now.json()["data"]["title"] == "Plan A"
    again = client.request(
        method,
        url,
        json={"priority": "high"},
        headers={**alice.headers, "If-Match": now.headers["ETag"]},
    )
    assert again.status_code == 200, again.text
    assert (again.json()["data"]["title"], again.json()["data"]["priority"]) == ("Plan A", "high")


def test_the_openapi_document_shows_every_put_field_optional(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    schemas = document["components"]["schemas"]
    for path, name in (
        ("/api/tasks/{task_id}", "TaskReplace"),
        ("/api/lists/{list_id}", "ListReplace"),
    ):
        body = document["paths"][path]["put"]["requestBody"]["content"]["application/json"]
        assert body["schema"] == {"$ref": f"#/components/schemas/{name}"}
        assert "required" not in schemas[name], schemas[name]
        assert schemas[name]["minProperties"] == 1  # `{}` is refused, and the schema says so
        assert "title" in schemas[name]["properties"] or "name" in schemas[name]["properties"]
