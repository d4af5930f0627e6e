"""The hot routes compile nothing per request: SQLAlchemy's execute cache and the engine's
own (`engine.render`, keyed by statement object) hold every statement a request sends, so
after one request of each shape, more of them (with other values) compile no statement."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.dialects import postgresql
from sqlalchemy.sql.compiler import SQLCompiler

from backend.db.scope import OWNER
from backend.db.sender import render
from backend.models import Task
from backend.services.task_statements import updating
from tests.conftest import Account

_T = Task.__table__.c  # type: ignore[attr-defined]


@pytest.fixture
def compilations(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every SQL compilation in the process (SQLAlchemy's and the engine's), by statement."""
    seen: list[str] = []
    original = SQLCompiler.__init__

    def counting(self: SQLCompiler, dialect: Any, statement: Any, *args: Any, **kw: Any) -> None:
        seen.append(type(statement).__name__)
        original(self, dialect, statement, *args, **kw)

    monkeypatch.setattr(SQLCompiler, "__init__", counting)
    yield seen


def _requests(client: TestClient, account: Account, n: int) -> None:
    """One of each hot write, with values that differ by `n`."""
    headers = account.headers
    created = client.post("/api/tasks", json={"title": f"task {n}"}, headers=headers)
    assert created.status_code == 201, created.text
    task_id = created.json()["data"]["id"]
    priority = ("low", "medium", "high")[n % 3]
    body = {"title": f"renamed {n}", "priority": priority}
    patched = client.patch(f"/api/tasks/{task_id}", json=body, headers=headers)
    assert patched.status_code == 200, patched.text
    toggled = client.patch(f"/api/tasks/{task_id}/complete", headers=headers)
    assert toggled.status_code == 200, toggled.text
    operations = [
        {"op": "reopen", "id": task_id},
        {"op": "set_priority", "id": task_id, "priority": priority},
        {"op": "add_tag", "id": task_id, "tag": f"tag{n}"},
        {"op": "remove_tag", "id": task_id, "tag": f"tag{n}"},
    ]
    bulk = client.post("/api/tasks/bulk", json={"operations": operations}, headers=headers)
    assert bulk.status_code == 200, bulk.text
    assert client.get(f"/api/tasks/{task_id}", headers=headers).status_code == 200
    assert client.delete(f"/api/tasks/{task_id}", headers=headers).status_code == 204


def test_hot_writes_compile_once(
    unlimited_client: TestClient,
    unlimited_register: Callable[..., Account],
    compilations: list[str],
) -> None:
    account = unlimited_register("compiles@example.com")
    _requests(unlimited_client, account, 0)
    assert compilations, "the counter sees compilations"
    compilations.clear()
    for n in range(1, 51):
        _requests(unlimited_client, account, n)
    assert compilations == [], f"compiled per request: {sorted(set(compilations))}"


def test_the_cache_does_not_keep_a_statement_built_for_one_request() -> None:
    """`render`'s cache holds statements weakly: one built per request (an If-Match
    condition) goes when the request lets go of it."""
    statement = updating({"title": "once"}, _T.version == 7)
    values = {OWNER: "someone", "task_id": 1}
    connection: Any = SimpleNamespace(dialect=postgresql.psycopg2.dialect())
    sql, params = render(connection, statement, values, "p_")
    assert sql.startswith("UPDATE tasks") and "once" in params.values()
    gone = weakref.ref(statement)
    del statement
    gc.collect()
    assert gone() is None
