"""What the logs say while the database is away (issue 61, items 6 and 9), on a dedicated
PostgreSQL that is stopped under the app.

Item 6: a statement cut by the outage is logged by its error class (its SQLSTATE) and the code
that sent it, never with SQLAlchemy's `[SQL: ...] [parameters: {...}]`: no e-mail,
Idempotency-Key, title or user id of the request reaches the log but the access line's
`user_id`. Two requests are held on a table lock (so their statements are in flight, seen in
`pg_stat_activity`) when the server shuts down, on the real `serve` at LOG_LEVEL=DEBUG.

Item 9: the live streams' reader logs one line when its polls start failing and one, with the
count, when they succeed again, none with the request id of the request that started it. The
outage is a listener on the server's port that closes every connection it accepts: each failed
poll is one connection, counted, so the test waits for failures, not for time.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import psycopg2
import pytest
from asgi_correlation_id import CorrelationIdFilter, correlation_id

from backend.auth.tokens import TokenClaims
from backend.config import Settings
from backend.db.engine import create_db_engine
from backend.services.live import LiveFeeds
from tests.conftest import TEST_SECRET, running_server
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


class _Refuser:
    """A listener on a stopped server's port that closes each connection at once: to a client
    the database is away, and each attempt to reach it is counted."""

    def __init__(self, port: int) -> None:
        self.accepted = 0
        self._sock = socket.socket()
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", port))
        self._sock.listen(64)
        self._sock.settimeout(0.1)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            conn.close()
            self.accepted += 1

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self._sock.close()


async def _until_async(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not condition():
        assert time.monotonic() < deadline, f"waited {DEADLINE} s for {what}"
        await asyncio.sleep(0.02)


def test_the_live_reader_logs_an_outage_once_and_its_end_with_a_count(
    dedicated_pg: DedicatedPostgres, dedicated_db: str, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(
        environment="test",
        database_url=dedicated_db,
        jwt_secret=TEST_SECRET,
        auto_migrate=False,
        stream_poll_ms=10,
    )
    engine = create_db_engine(dedicated_db, settings)
    feeds = LiveFeeds(engine, settings)
    caplog.set_level(logging.DEBUG, logger="backend.services.live")
    # What `serve` puts on its handler: each record's request id, as a JSON line shows it.
    caplog.handler.addFilter(CorrelationIdFilter(uuid_length=None, default_value=None))
    failures = 6

    async def outage() -> None:
        # The stream is opened by a request: its id is in the context the reader starts from.
        correlation_id.set(f"stream-request-{uuid.uuid4().hex}")
        listener = feeds.admit(TokenClaims(subject=f"live-{uuid.uuid4().hex}", local=False))
        correlation_id.set(None)
        try:
            await _until_async(lambda: feeds.polls >= 2, "the reader's first polls")
            with started_again(dedicated_pg):
                await asyncio.to_thread(dedicated_pg.stop, "fast")
                refuser = _Refuser(dedicated_pg.port)
                try:
                    await _until_async(
                        lambda: refuser.accepted >= failures, f"{failures} failed polls"
                    )
                finally:
                    refuser.close()
            polls = feeds.polls
            # Two polls after the restart: the first one back has returned (and said so).
            await _until_async(lambda: feeds.polls >= polls + 2, "the reader to poll again")
        finally:
            feeds.leave(listener)

    try:
        asyncio.run(outage())
    finally:
        engine.dispose()
    lines = [r for r in caplog.records if r.name == "backend.services.live"]
    said = [r.getMessage() for r in lines]
    request_ids = {getattr(r, "correlation_id", "unset") for r in lines}
    # One line as the polls start failing, one when they succeed again; no request's id.
    assert ([r.levelno for r in lines], request_ids) == ([logging.WARNING] * 2, {None}), said
    assert "cannot read" in said[0], said
    assert "again after" in said[1], said
    count = int(said[1].split("again after ")[1].split()[0])
    assert count >= failures, said
