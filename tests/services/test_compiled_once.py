"""The hot routes, and listings of a known shape, compile nothing per request: the sender's
compiled forms (`sender.render`, keyed by statement object) hold every statement a request
sends, so after one request of each shape, more of them (with other values) compile no
statement."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.dialects import postgresql
from sqlalchemy.sql.compiler import SQLCompiler

from backend.db.scope import OWNER
from backend.db.sender import render
from backend.models import Priority, Task, TaskSort
from backend.services.tasks.task_listing import Keyset, TaskFilters, TaskListQuery
from backend.services.tasks.task_statements import listing, updating
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


def _listings(client: TestClient, account: Account, n: int) -> None:
    """Listings of several shapes, with values (filters, limits, cursors) that differ by `n`:
    a first page and the pages after it (by due date into the tasks without one), filters
    with a total, and an empty page (its feed position is read with proof it is empty)."""
    headers = account.headers
    due = (datetime(2030, 1, 1, tzinfo=UTC) + timedelta(days=n)).isoformat()
    filtered = {
        "status": "pending",
        "priority": ("low", "medium", "high")[n % 3],
        "tag": f"tag{n % 2}",
        "due_before": due,
        "q": f"task {n % 2}",
        "include_total": "true",
    }
    pages = []
    for params in ({"limit": 2 + n % 2}, {"sort": "due_date", "limit": 2}, filtered):
        pages.append(0)
        while params:
            listed = client.get("/api/tasks", params=params, headers=headers)
            assert listed.status_code == 200, listed.text
            cursor = listed.json()["meta"]["next_cursor"]
            params = {**params, "cursor": cursor} if cursor else {}
            pages[-1] += 1
    assert pages[0] > 1 and pages[1] == 3, pages  # by due date: 3 due, then 3 without
    empty = client.get("/api/tasks", params={"q": f"no such task {n}"}, headers=headers)
    assert empty.status_code == 200 and empty.json()["data"] == [], empty.text


def test_listings_compile_once_per_shape(
    unlimited_client: TestClient,
    unlimited_register: Callable[..., Account],
    compilations: list[str],
) -> None:
    account = unlimited_register("lists-compiled@example.com")
    for n in range(6):  # some with a due date and tags, some without (the last pages)
        body: dict[str, Any] = {"title": f"task {n}", "priority": ("low", "medium", "high")[n % 3]}
        if n % 2:
            body |= {"due_date": f"2030-01-0{n}T00:00:00Z", "tags": [f"tag{n % 2}"]}
        created = unlimited_client.post("/api/tasks", json=body, headers=account.headers)
        assert created.status_code == 201, created.text
    _listings(unlimited_client, account, 0)
    assert compilations, "the counter sees compilations"
    compilations.clear()
    for n in range(1, 21):
        _listings(unlimited_client, account, n)
    assert compilations == [], f"compiled per request: {sorted(set(compilations))}"


def test_a_listing_is_built_once_per_shape() -> None:
    """Its values are bound, not built in: two listings that differ only in values share
    the statement object (the sender's compiled form and the scope check are per object)."""
    since = datetime(2030, 1, 1, tzinfo=UTC)
    one = TaskListQuery(
        TaskFilters(priorities=(Priority.high,), tags=("a",), q="x", list_id=3),
        sort=TaskSort.due_date,
        limit=5,
        after=Keyset(since, 7),
    )
    other = TaskListQuery(
        TaskFilters(priorities=(Priority.low, Priority.medium), tags=("b", "c"), q="y", list_id=9),
        sort=TaskSort.due_date,
        limit=50,
        after=Keyset(since + timedelta(days=1), 8),
    )
    assert one.values() != other.values()
    assert listing(one.shape()) is listing(other.shape())
    in_no_due_date = TaskListQuery(one.filters, sort=TaskSort.due_date, after=Keyset(None, 7))
    assert listing(in_no_due_date.shape()) is not listing(one.shape())
