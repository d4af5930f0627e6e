"""What the logs say while the database is away (issue 61, item 6), on a dedicated
PostgreSQL that is stopped under the app.

Item 6: a statement cut by the outage is logged by its error class (its SQLSTATE) and the code
that sent it, never with SQLAlchemy's `[SQL: ...] [parameters: {...}]`: no e-mail,
Idempotency-Key, title or user id of the request reaches the log but the access line's
`user_id`. Two requests are held on a table lock (so their statements are in flight, seen in
`pg_stat_activity`) when the server shuts down, on the real `serve` at LOG_LEVEL=DEBUG.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import psycopg2

from tests.conftest import running_server
from tests.reliability.servers import DedicatedPostgres

DEADLINE = 60.0  # generous: a wait on a condition, on 2 busy cores


@contextlib.contextmanager
def started_again(postgres: DedicatedPostgres) -> Iterator[None]:
    """The server runs again after the block, however it ended (the module shares it)."""
    try:
        yield
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):  # already running
            postgres.start()


def _until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not condition():
        assert time.monotonic() < deadline, f"waited {DEADLINE} s for {what}"
        time.sleep(0.05)


def _waiting_on_locks(url: str) -> int:
    with contextlib.closing(psycopg2.connect(url)) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        row = cur.fetchone()
        return int(row[0]) if row else 0


def _records(text: str) -> list[dict[str, Any]]:
    found = []
    for line in text.splitlines():
        with contextlib.suppress(ValueError):
            record = json.loads(line)
            if isinstance(record, dict):
                found.append(record)
    return found


def test_statements_cut_by_an_outage_are_logged_without_sql_or_values(
    dedicated_pg: DedicatedPostgres, dedicated_db: str
) -> None:
    mark = secrets.token_hex(6)
    email, key, title = f"outage-{mark}@example.com", f"key-{mark}", f"title-{mark}"
    env = {
        "LOG_LEVEL": "DEBUG",
        "LOG_FORMAT": "json",
        "AUTO_MIGRATE": "false",
        "RATE_LIMIT_ENABLED": "false",
        # The held statements wait on a lock until the shutdown ends them, not a timeout.
        "DB_STATEMENT_TIMEOUT_MS": "0",
    }
    with running_server(dedicated_db, **env) as (base_url, _, log):
        with httpx.Client(base_url=base_url, timeout=DEADLINE) as http:
            signed = http.post(
                "/api/auth/register",
                json={"email": f"owner-{mark}@example.com", "password": "a long password 1"},
            )
            assert signed.status_code == 201, signed.text
            user_id = signed.json()["data"]["user"]["id"]
            token = signed.json()["data"]["access_token"]
            answers: dict[str, httpx.Response] = {}

            def send(name: str, path: str, body: dict[str, str], headers: dict[str, str]) -> None:
                answers[name] = http.post(path, json=body, headers=headers)

            requests = [
                threading.Thread(
                    target=send,
                    args=(
                        "register",
                        "/api/auth/register",
                        {"email": email, "password": f"password {mark}"},
                        {},
                    ),
                ),
                threading.Thread(
                    target=send,
                    args=(
                        "create",
                        "/api/tasks",
                        {"title": title},
                        {"Authorization": f"Bearer {token}", "Idempotency-Key": key},
                    ),
                ),
            ]
            with started_again(dedicated_pg):
                holder = psycopg2.connect(dedicated_db)
                try:
                    with holder.cursor() as cur:
                        cur.execute("LOCK TABLE users IN ACCESS EXCLUSIVE MODE")
                    for request in requests:
                        request.start()
                    _until(
                        lambda: _waiting_on_locks(dedicated_db) >= 2,
                        "both requests' statements to wait on the lock",
                    )
                    dedicated_pg.stop("fast")  # ends every session, the held ones mid-statement
                finally:
                    for request in requests:
                        request.join(timeout=DEADLINE)
                    with contextlib.suppress(psycopg2.Error):
                        holder.close()
        assert {name: r.status_code for name, r in answers.items()} == {
            "register": 503,
            "create": 503,
        }, {name: r.text for name, r in answers.items()}
        ids = {r.headers["x-request-id"] for r in answers.values()}

        def both_logged() -> bool:
            records = _records(log.read_text())
            return ids <= {r.get("request_id") for r in records if r["logger"] == ACCESS}

        _until(both_logged, "the access lines of both requests")
        text = log.read_text()
    records = _records(text)
    errors = [r for r in records if r.get("request_id") in ids and r["level"] == "ERROR"]
    assert errors, "no error line for the outage's requests"
    for secret in ("[SQL", "[parameters", "INSERT INTO", "SELECT ", email, key, title, mark):
        assert secret not in text, f"{secret!r} in the log"
    for record in records:
        if record.get("logger") != ACCESS:
            assert user_id not in json.dumps(record), record
    for error in errors:
        assert error["message"].startswith("database unavailable: OperationalError ("), error
        assert " sent from backend." in error["message"], error  # the statement's sender
        assert "Traceback (most recent call last)" in error["exc_info"]  # where, still


ACCESS = "task_api.access"
