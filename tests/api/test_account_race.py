"""A write whose account is deleted while the request runs is a 401, not a 409 (issue 13,
item 5).

The request resolves its account (the row is there), then inserts; meanwhile another
transaction deletes the account. Made deterministic with PostgreSQL's own locks: a second
connection deletes the user row without committing, so the request's INSERT blocks in the
foreign-key check on that row; once the request is seen waiting on the lock, the deletion
commits and the check fails (foreign_key_violation on fk_tasks_user_id_users).
"""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx
import psycopg2
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from backend.db.engine import libpq_url
from tests.conftest import Account, count_rows


def _wait_until_a_request_waits_on_a_lock(admin: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    with admin.cursor() as cur:
        while time.monotonic() < deadline:
            cur.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND application_name = 'task-api' AND datname = current_database()"
            )
            if cur.fetchone()[0] > 0:
                return
            time.sleep(0.02)
    pytest.fail("the request never waited on the deleting transaction's lock")


@pytest.mark.parametrize("keyed", [False, True], ids=["plain", "idempotency-key"])
def test_a_create_racing_the_account_deletion_is_401(
    client: TestClient, database_url: str, db_engine: Engine, alice: Account, keyed: bool
) -> None:
    headers = dict(alice.headers)
    if keyed:
        headers["Idempotency-Key"] = "race-1"
    deleter = psycopg2.connect(libpq_url(database_url))
    watcher = psycopg2.connect(libpq_url(database_url))
    watcher.autocommit = True
    answers: list[httpx.Response] = []
    try:
        with deleter.cursor() as cur:
            cur.execute("DELETE FROM users WHERE id = %s", (alice.id,))  # not committed yet
        request = threading.Thread(
            target=lambda: answers.append(
                client.post("/api/tasks", json={"title": "orphan"}, headers=headers)
            )
        )
        request.start()
        _wait_until_a_request_waits_on_a_lock(watcher)
        deleter.commit()
        request.join(timeout=30)
    finally:
        deleter.close()
        watcher.close()
    [response] = answers
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json() == {
        "error": {
            "code": "UNAUTHORIZED",
            "message": "The account for this token no longer exists",
            "details": [],
        }
    }
    assert count_rows(db_engine, "tasks") == 0
    assert count_rows(db_engine, "users") == 0


def test_other_integrity_errors_are_still_409(client: TestClient, alice: Account) -> None:
    """Only the account's own foreign key means "account gone": sign-up with a taken email
    stays a 409 CONFLICT."""
    response = client.post(
        "/api/auth/register", json={"email": alice.email, "password": "password-123"}
    )
    assert response.status_code == 409, response.text
    assert response.json()["error"]["code"] == "CONFLICT"
