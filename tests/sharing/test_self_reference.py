"""A body that names the row itself (a task as its own parent or anchor, a list as its own
anchor) breaks a rule of the body's values, and permission comes before those
(api-contract.md, "References"): a caller who cannot read the row gets the missing row's 404,
byte for byte; a member below the role, 403 `FORBIDDEN`; only a writer hears the 422. Found by
an independent role-matrix run (issue 49): every caller got the 422 first."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from tests.conftest import Account
from tests.mcp.conftest import call_tool_rpc
from tests.sharing.helpers import add_member, make_list, make_task

MISSING = 2_000_000_000


def _rows(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        tasks = conn.execute(text("SELECT * FROM tasks ORDER BY id")).all()
        lists = conn.execute(text("SELECT * FROM task_lists ORDER BY id")).all()
        return [*tasks, *lists]


def _task_requests(task: int) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        ("PATCH", f"/api/tasks/{task}", {"parent_id": task}),
        ("PUT", f"/api/tasks/{task}", {"title": "T", "parent_id": task}),
        ("POST", f"/api/tasks/{task}/move", {"parent_id": task}),
        ("POST", f"/api/tasks/{task}/move", {"after_id": task}),
        ("POST", f"/api/tasks/{task}/move", {"before_id": task}),
    ]


@pytest.mark.parametrize("role", [None, "viewer", "commenter"])
def test_a_task_named_as_its_own_parent_or_anchor_is_refused_by_permission_first(
    client: TestClient, db_engine: Engine, alice: Account, bob: Account, role: str | None
) -> None:
    shared = make_list(client, alice, "Team")
    task = make_task(client, alice, "T", list_id=shared)
    if role is not None:
        add_member(db_engine, alice, shared, bob, role)
    before = _rows(db_engine)
    for (method, path, body), (_, missing_path, missing_body) in zip(
        _task_requests(task), _task_requests(MISSING), strict=True
    ):
        answer = client.request(method, path, json=body, headers=bob.headers)
        if role is None:
            missing = client.request(method, missing_path, json=missing_body, headers=bob.headers)
            # A missing task named as its own parent is the missing task's 404 too.
            assert (answer.status_code, answer.content) == (404, missing.content), answer.text
            assert missing.json()["error"]["message"] == "Task not found", missing.text
        else:
            assert answer.status_code == 403, (method, body, answer.text)
            assert answer.json()["error"]["code"] == "FORBIDDEN"
        assert _rows(db_engine) == before, (method, body)
    result = call_tool_rpc(
        client, "/mcp", bob.token, "update_task", {"task_id": task, "parent_id": task}
    )
    error = json.loads(result["content"][0]["text"])["error"]
    assert error["code"] == ("NOT_FOUND" if role is None else "FORBIDDEN"), error
    assert _rows(db_engine) == before


def test_a_writer_still_hears_the_rule(
    client: TestClient, db_engine: Engine, alice: Account, bob: Account
) -> None:
    shared = make_list(client, alice, "Team")
    task = make_task(client, alice, "T", list_id=shared)
    add_member(db_engine, alice, shared, bob, "editor")
    for account in (alice, bob):
        for method, path, body in _task_requests(task):
            answer = client.request(method, path, json=body, headers=account.headers)
            assert answer.status_code == 422, (method, body, answer.text)
            field = next(iter(k for k in body if k != "title"))
            assert answer.json()["error"]["details"][0]["field"] == f"body.{field}"


@pytest.mark.parametrize("role", [None, "viewer", "admin"])
def test_a_list_named_as_its_own_anchor_is_refused_by_permission_first(
    client: TestClient, db_engine: Engine, alice: Account, bob: Account, role: str | None
) -> None:
    shared = make_list(client, alice, "Team")
    if role is not None:
        add_member(db_engine, alice, shared, bob, role)
    before = _rows(db_engine)
    for anchor in ("after_id", "before_id"):
        answer = client.post(
            f"/api/lists/{shared}/move", json={anchor: shared}, headers=bob.headers
        )
        if role is None:
            missing = client.post(
                f"/api/lists/{MISSING}/move", json={anchor: MISSING}, headers=bob.headers
            )
            assert (answer.status_code, answer.content) == (404, missing.content), answer.text
            assert missing.json()["error"]["message"] == "List not found"
        else:
            assert answer.status_code == 403, answer.text
            assert answer.json()["error"]["code"] == "FORBIDDEN"
        assert _rows(db_engine) == before
    mine = client.post(
        f"/api/lists/{shared}/move", json={"after_id": shared}, headers=alice.headers
    )
    assert mine.status_code == 422, mine.text
    assert mine.json()["error"]["details"][0]["field"] == "body.after_id"
