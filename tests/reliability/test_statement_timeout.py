"""Promise: a slow or huge statement is cut by DB_STATEMENT_TIMEOUT_MS and answered with a
clean 503, never a 500 and never a hang; the timeout is set per transaction (SET LOCAL), so it
holds behind PgBouncer / Neon's pooler and never leaks into a pooled connection's session.

tests/reliability/test_pgbouncer.py runs this module again through PgBouncer in transaction
pooling mode.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import APIRouter
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from backend.api.deps import AnonymousDoor, Door, DoorRoute
from backend.config import Settings
from backend.db.engine import create_db_engine
from backend.db.sender import Sender, transaction_locals
from backend.errors import STATEMENT_TIMEOUT_MESSAGE
from backend.main import create_app
from backend.models import TaskCreate
from backend.services.tasks.service import TaskService
from tests.conftest import count_rows

TIMEOUT_MS = 300
SLOW = {
    # A statement that waits, and one that computes: both are cut at the timeout.
    "sleep": "SELECT pg_sleep(30)",
    "huge": "SELECT count(*) FROM generate_series(1, 1000000000)",
}


@pytest.fixture(scope="module")
def slow_client(settings: Settings) -> Iterator[TestClient]:
    """The real app (engine, the door's unit of work, error handlers) with a short statement
    timeout and test-only routes that run a slow statement in the request's transaction (sent
    by the unit of work's `Sender`, which only tests reach past the services)."""
    app = create_app(settings.model_copy(update={"db_statement_timeout_ms": TIMEOUT_MS}))

    def run_slow(door: AnonymousDoor, kind: str) -> dict[str, Any]:
        door.send.read(text(SLOW[kind]), {})
        return {"data": "finished"}

    def show_timeout(door: AnonymousDoor) -> dict[str, Any]:
        return {"data": door.send.read(text("SHOW statement_timeout"), {}).scalar()}

    def create_then_slow(door: Door) -> dict[str, Any]:
        door.hold_commit()  # more follows the write: it may not commit the request itself
        door.service(TaskService).create(TaskCreate(title="never committed"))
        door.send.write(text(SLOW["sleep"]), {})
        return {"data": "finished"}

    test_only = APIRouter(prefix="/test-only", route_class=DoorRoute)
    test_only.add_api_route("/slow/{kind}", run_slow, methods=["GET"])
    test_only.add_api_route("/create-then-slow", create_then_slow, methods=["POST"])
    test_only.add_api_route("/timeout", show_timeout, methods=["GET"])
    app.include_router(test_only)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


@pytest.mark.parametrize("kind", sorted(SLOW))
def test_slow_statement_is_cut_with_a_clean_503(
    slow_client: TestClient, database_url: str, kind: str
) -> None:
    started = time.monotonic()
    response = slow_client.get(f"/test-only/slow/{kind}")
    elapsed = time.monotonic() - started
    assert response.status_code == 503, response.text
    assert response.json() == {
        "error": {
            "code": "SERVICE_UNAVAILABLE",
            "message": STATEMENT_TIMEOUT_MESSAGE,
            "details": [],
        }
    }
    assert response.headers["Retry-After"] == "1"
    # Cut long before the statement itself would have finished (30 s, or far longer), with a
    # margin a slow or loaded machine keeps: the body above says it was the timeout that cut.
    assert elapsed < 10
    # The connection is usable again straight away.
    assert slow_client.get("/test-only/timeout").json() == {"data": f"{TIMEOUT_MS}ms"}


def test_a_cancelled_request_writes_nothing_and_the_next_one_works(
    slow_client: TestClient, db_engine: Engine, alice: Any
) -> None:
    """A statement timeout mid-request rolls the whole request back (no partial write)."""
    response = slow_client.post("/test-only/create-then-slow", headers=alice.headers)
    assert response.status_code == 503, response.text
    assert count_rows(db_engine, "tasks") == 0
    created = slow_client.post("/api/tasks", json={"title": "after"}, headers=alice.headers)
    assert created.status_code == 201, created.text
    assert count_rows(db_engine, "tasks") == 1


def test_timeout_is_per_transaction_and_does_not_stick_to_the_connection(
    settings: Settings, database_url: str
) -> None:
    engine = create_db_engine(
        database_url,
        settings.model_copy(update={"db_statement_timeout_ms": TIMEOUT_MS, "db_pool_size": 1}),
    )
    try:
        with engine.begin() as conn:
            # A transaction of psycopg2's own, sent through a `Sender` (sign-up, sign-in).
            send = Sender(conn, transaction_locals(TIMEOUT_MS))
            assert send.read(text("SHOW statement_timeout"), {}).scalar() == f"{TIMEOUT_MS}ms"
        # The same pooled connection, outside any transaction: the server default again, so
        # a pooler that lends this server connection to another client lends no timeout.
        raw = engine.raw_connection()
        try:
            raw.autocommit = True  # type: ignore[attr-defined]  # psycopg2's connection
            cursor = raw.cursor()
            cursor.execute("SHOW statement_timeout")
            assert cursor.fetchone() == ("0",)
        finally:
            raw.close()
    finally:
        engine.dispose()


def test_zero_turns_the_timeout_off(settings: Settings, database_url: str) -> None:
    engine = create_db_engine(
        database_url, settings.model_copy(update={"db_statement_timeout_ms": 0})
    )
    try:
        with engine.begin() as conn:
            assert conn.scalar(text("SHOW statement_timeout")) == "0"
            conn.execute(text("SELECT pg_sleep(0.4)"))  # longer than TIMEOUT_MS, not cut
    finally:
        engine.dispose()
