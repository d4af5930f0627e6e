"""Refused requests leave no client text in PostgreSQL's log (issue 30, item 1).

Refusals (over the write limit, a revoked token, an Idempotency-Key's replay and mismatch, a
bulk step's 404 or 422) are notices and a transaction-local setting, not SQL errors: an error
makes PostgreSQL log the whole failing statement at its default `log_min_error_statement =
error`, with the caller's titles, tags and keys in it. A server of our own, at its default
logging settings, whose log we can read: every refusal carries a unique marker, and none may
appear in the log. A failing statement with a marker of its own, sent on the app's engine,
must appear in it: the reader sees what an error would have logged.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg2
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from backend.config import Settings
from backend.db.engine import create_db_engine
from backend.db.migrations import migrate_up
from backend.main import create_app
from tests.conftest import TEST_SECRET, bearer
from tests.reliability.servers import DedicatedPostgres

WRITES = 3  # the keyed user: a create, its replay, a mismatch
MARK = f"mark{secrets.token_hex(6)}"


def marker(what: str) -> str:
    return f"{MARK}-{what}"


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[DedicatedPostgres, str]]:
    postgres = DedicatedPostgres()
    try:
        postgres.start()
        url = postgres.create_database("task_api_log")
        migrate_up(url)
        yield postgres, url
    finally:
        postgres.close()


def _settings(url: str) -> Settings:
    return Settings(
        environment="test",
        database_url=url,
        jwt_secret=TEST_SECRET,
        auto_migrate=False,
        rate_limit_enabled=True,
        rate_limit_task_window_seconds=24 * 3600,
        rate_limit_task_writes_per_user=WRITES,
        rate_limit_sign_up_per_ip=1000,
        rate_limit_sign_up_per_account=1000,
    )


def _log(postgres: DedicatedPostgres) -> str:
    return (postgres.root / "log").read_text(errors="replace")


def _wait_for_in_log(postgres: DedicatedPostgres, url: str, line: str) -> str:
    """The log once a line we asked the server to log is in it: everything logged before it
    has been written."""
    assert re.fullmatch(r"[a-z0-9-]+", line)  # safe inside a literal
    connection = psycopg2.connect(url)
    connection.autocommit = True
    with connection.cursor() as cur:
        cur.execute(f"DO $$ BEGIN RAISE LOG '{line}'; END $$")
    connection.close()
    deadline = time.monotonic() + 60
    while line not in (log := _log(postgres)):
        assert time.monotonic() < deadline, f"{line} never reached the log:\n{log[-2000:]}"
        time.sleep(0.1)
    return log


def _stored(url: str) -> str:
    """Every row of every table a request writes, as text."""
    connection = psycopg2.connect(url)
    with connection.cursor() as cur:
        dumped = []
        for table in ("tasks", "task_lists", "task_events", "idempotency_keys", "users"):
            cur.execute(f"SELECT row_to_json(t)::text FROM {table} t")
            dumped += [row[0] for row in cur.fetchall()]
    connection.close()
    return "\n".join(dumped)


def _register(client: TestClient, name: str) -> dict[str, str]:
    response = client.post(
        "/api/auth/register", json={"email": f"{name}@example.com", "password": "pass-1234"}
    )
    assert response.status_code == 201, response.text
    return bearer(response.json()["data"]["access_token"])


def _task(name: str, **extra: Any) -> dict[str, Any]:
    mark = marker(name)
    return {"title": mark, "description": f"{mark} description", "tags": [mark], **extra}


def _status(response: Any, expected: int, code: str | None = None) -> None:
    assert response.status_code == expected, response.text
    if code is not None:
        assert response.json()["error"]["code"] == code, response.text


def test_refusals_leave_no_client_text_in_the_server_log(
    server: tuple[DedicatedPostgres, str],
) -> None:
    postgres, url = server
    settings = _settings(url)
    refused: list[str] = []  # markers that only refused requests carried
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        # Over the write limit: 429, nothing created.
        busy = _register(client, "busy")
        for n in range(WRITES):
            _status(client.post("/api/tasks", json={"title": f"ok {n}"}, headers=busy), 201)
        over = client.post("/api/tasks", json=_task("over-limit"), headers=busy)
        _status(over, 429, "RATE_LIMITED")
        refused.append(marker("over-limit"))

        # A bulk request whose step 2 names a missing task: 404, step 1's tag undone.
        bulk = _register(client, "bulk")
        task_id = client.post("/api/tasks", json={"title": "plain"}, headers=bulk).json()
        task_id = task_id["data"]["id"]
        missing = client.post(
            "/api/tasks/bulk",
            json={
                "operations": [
                    {"op": "add_tag", "id": task_id, "tag": marker("bulk-404")},
                    {"op": "complete", "id": 999_999},
                ]
            },
            headers=bulk,
        )
        _status(missing, 404)
        refused.append(marker("bulk-404"))

        # A bulk request whose step 2 adds a tag to a task whose tags are full: 422.
        full = _register(client, "full")
        tags = [f"t{n}" for n in range(20)]
        full_id = client.post("/api/tasks", json={"title": "full", "tags": tags}, headers=full)
        _status(full_id, 201)
        too_many = client.post(
            "/api/tasks/bulk",
            json={
                "operations": [
                    {"op": "set_priority", "id": full_id.json()["data"]["id"], "priority": "low"},
                    {"op": "add_tag", "id": full_id.json()["data"]["id"], "tag": marker("b422")},
                ]
            },
            headers=full,
        )
        _status(too_many, 422)
        refused.append(marker("b422"))
        stored_full = client.get(f"/api/tasks/{full_id.json()['data']['id']}", headers=full)
        assert stored_full.json()["data"]["priority"] != "low"  # step 1 undone
        assert stored_full.json()["data"]["tags"] == tags

        # An Idempotency-Key: its replay (201, the first answer) and a mismatch (422).
        keyed = _register(client, "keyed")
        key = {**keyed, "Idempotency-Key": marker("key")}
        first = client.post("/api/tasks", json={"title": "keyed once"}, headers=key)
        _status(first, 201)
        replay = client.post("/api/tasks", json={"title": "keyed once"}, headers=key)
        _status(replay, 201)
        assert replay.headers["idempotent-replayed"] == "true"
        assert replay.content == first.content
        mismatch = client.post("/api/tasks", json=_task("mismatch"), headers=key)
        _status(mismatch, 422)
        refused += [marker("key"), marker("mismatch")]

        # A revoked token: 401, nothing created.
        revoked = _register(client, "revoked")
        _status(client.post("/api/auth/logout-all", headers=revoked), 204)
        late = client.post("/api/tasks", json=_task("revoked"), headers=revoked)
        _status(late, 401)
        refused.append(marker("revoked"))

    # Nothing of a refused request was written (the key only as the first request's record).
    stored = _stored(url)
    assert [m for m in refused if m in stored and m != marker("key")] == []
    keys = [json.loads(row) for row in stored.splitlines() if marker("key") in row]
    assert len(keys) == 1 and keys[0]["key"] == marker("key"), keys
    connection = psycopg2.connect(url)
    with connection.cursor() as cur:
        cur.execute("SELECT count(*) FROM tasks")
        assert cur.fetchone() == (WRITES + 3,)  # busy, then one each: bulk, full, keyed
    connection.close()

    # The control: an error sent on the app's engine is logged with its text (so the reader
    # below would see a refusal that was still an error).
    engine = create_db_engine(url, settings)
    try:
        with pytest.raises(DBAPIError), engine.connect() as conn:
            conn.execute(text(f"SELECT 1/0 -- {marker('control')}"))
    finally:
        engine.dispose()

    log = _wait_for_in_log(postgres, url, marker("end-of-test"))
    assert "database system is ready to accept connections" in log
    assert f"SELECT 1/0 -- {marker('control')}" in log, log[-2000:]
    leaked = [m for m in refused if m in log]
    assert leaked == [], f"refused requests' text in the server log: {leaked}\n{log[-4000:]}"


def test_the_log_is_the_servers_own(server: tuple[DedicatedPostgres, str]) -> None:
    """The log read above is the server's stderr at default settings (no collector, no
    statement logging): what a provider's log would hold."""
    postgres, url = server
    connection = psycopg2.connect(url)
    with connection.cursor() as cur:
        cur.execute(
            "SELECT name, setting FROM pg_settings WHERE name IN "
            "('log_min_error_statement', 'log_statement', 'logging_collector')"
        )
        settings = dict(cur.fetchall())
    connection.close()
    assert settings == {
        "log_min_error_statement": "error",
        "log_statement": "none",
        "logging_collector": "off",
    }
    assert Path(postgres.root / "log").stat().st_size > 0
