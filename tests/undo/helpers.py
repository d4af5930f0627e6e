"""What the undo tests share: the newest activity entry of a task, the undo request, and the
task's row as stored (to compare before and after)."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from tests.conftest import Account
from tests.sharing.helpers import get


def last_entry(client: TestClient, account: Account, task_id: int, event: str) -> dict[str, Any]:
    """The newest entry `event` (`task.updated`, ...) of the task in the caller's activity."""
    items = get(client, account, "/api/activity", limit=100)["data"]
    return next(
        item
        for item in items
        if item["object_type"] == "task" and item["object_id"] == task_id and item["event"] == event
    )


def undo(client: TestClient, account: Account, entry_id: int | str, **headers: str) -> Any:
    return client.post(f"/api/activity/{entry_id}/undo", headers={**account.headers, **headers})


def stored(db_engine: Engine, task_id: int) -> dict[str, Any] | None:
    """The task's row as stored (every column), or None."""
    with db_engine.connect() as conn:
        row = conn.execute(text("SELECT * FROM tasks WHERE id = :id"), {"id": task_id}).first()
    return None if row is None else dict(row._mapping)


def entries(db_engine: Engine) -> int:
    with db_engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM task_events")).scalar_one())
