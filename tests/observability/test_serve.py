"""Logs and metrics of the real `serve` command: 2 worker processes, JSON logs, /metrics
aggregated across the workers; and the error logs of a real uvicorn server."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from prometheus_client.parser import text_string_to_metric_families

from backend.observability.metrics import POOL_SAMPLE_SECONDS
from tests.conftest import (
    ROOT,
    TEST_SECRET,
    _free_port,
    bearer,
    make_token,
    running_server,
    stop_process,
)
from tests.observability.crashing_server import SECRET_DETAIL

METRICS_TOKEN = "test-metrics-token-0123456789"
ROUTE = "/api/tasks/{task_id}"
POOL_SIZE = 3


def _json_lines(log: Path) -> list[dict[str, Any]]:
    """Every line of the log, each of which must be one JSON object."""
    lines = [line for line in log.read_text().splitlines() if line.strip()]
    assert lines
    records = []
    for line in lines:
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            pytest.fail(f"log line is not JSON: {line!r}")
    return records


def _records_when(
    log: Path, ready: Callable[[list[dict[str, Any]]], bool], timeout: float = 15
) -> list[dict[str, Any]]:
    """The log's records once `ready` holds: a worker writes its access line just after
    sending the response, so the client can be a moment ahead of the log."""
    deadline = time.monotonic() + timeout
    while True:
        records = _json_lines(log)
        if ready(records) or time.monotonic() > deadline:
            return records
        time.sleep(0.1)


def _has(request_id: str, logger: str) -> Callable[[list[dict[str, Any]]], bool]:
    return lambda records: any(
        r["request_id"] == request_id and r["logger"] == logger for r in records
    )


def _samples(base_url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    response = httpx.get(
        f"{base_url}/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}, timeout=10
    )
    assert response.status_code == 200, response.text
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def _value(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


@pytest.fixture(scope="module")
def two_workers(database_url: str) -> Iterator[tuple[str, Path]]:
    with running_server(
        database_url,
        workers=2,
        LOG_FORMAT="json",
        METRICS_TOKEN=METRICS_TOKEN,
        DB_POOL_SIZE=str(POOL_SIZE),
    ) as (base_url, _, log):
        yield base_url, log


def test_access_log_and_metrics_across_two_workers(
    two_workers: tuple[str, Path], database_url: str
) -> None:
    base_url, log = two_workers
    email = f"obs-{uuid.uuid4().hex[:8]}@example.com"
    registered = httpx.post(
        f"{base_url}/api/auth/register",
        json={"email": email, "password": "password-123"},
        timeout=10,
    )
    assert registered.status_code == 201, registered.text
    token = registered.json()["data"]["access_token"]
    user_id = registered.json()["data"]["user"]["id"]
    auth = {"Authorization": f"Bearer {token}"}
    created = httpx.post(f"{base_url}/api/tasks", json={"title": "observe"}, headers=auth)
    assert created.status_code == 201
    task_id = created.json()["data"]["id"]
    before = _samples(base_url)

    # A new connection per request, until both workers have answered some (the access log
    # names the process), so the counter below must add up both workers' files.
    request_ids: set[str] = set()
    own_id = "caller-chosen.id-1"
    sent = 0
    while sent < 400:
        headers = {**auth, "X-Request-ID": own_id} if sent == 0 else auth
        response = httpx.get(f"{base_url}/api/tasks/{task_id}/", headers=headers, timeout=10)
        assert response.status_code == 200
        request_ids.add(response.headers["x-request-id"])
        sent += 1
        if sent >= 20 and sent % 10 == 0:
            pids = {
                r["pid"]
                for r in _json_lines(log)
                if r.get("logger") == "task_api.access" and r.get("request_id") in request_ids
            }
            if len(pids) == 2:
                break
    assert own_id in request_ids and len(request_ids) == sent

    labels = {"method": "GET", "route": ROUTE, "status": "200"}

    def counted(samples: dict[tuple[str, frozenset[tuple[str, str]]], float]) -> float:
        return min(
            _value(samples, name, **labels) - _value(before, name, **labels)
            for name in ("http_requests_total", "http_request_duration_seconds_count")
        )

    # A worker counts a request just after sending its response (as it logs it), so the
    # client can be a moment ahead of the other worker's scrape: wait until every request is
    # counted (a count past `sent` fails below all the same), not a fixed time.
    after = _samples(base_url)
    deadline = time.monotonic() + 15
    while counted(after) < sent and time.monotonic() < deadline:
        time.sleep(0.1)
        after = _samples(base_url)
    assert (
        _value(after, "http_requests_total", **labels)
        - _value(before, "http_requests_total", **labels)
        == sent
    )
    for le in ("0.001", "0.005", "0.1", "1.0", "5.0", "+Inf"):
        assert (
            "http_request_duration_seconds_bucket",
            frozenset({**labels, "le": le}.items()),
        ) in after
    assert (
        _value(after, "http_request_duration_seconds_count", **labels)
        - _value(before, "http_request_duration_seconds_count", **labels)
        == sent
    )
    # Gauges summed over the two live workers; no connection left checked out. The worker
    # not answering the scrape samples its pool every POOL_SAMPLE_SECONDS, so its gauge may
    # still show the last request in flight: wait for its next sample, not a fixed time.
    assert _value(after, "db_pool_size") == 2 * POOL_SIZE
    settled = after
    deadline = time.monotonic() + 10 * POOL_SAMPLE_SECONDS
    while _value(settled, "db_pool_checked_out") and time.monotonic() < deadline:
        time.sleep(POOL_SAMPLE_SECONDS / 4)
        settled = _samples(base_url)
    assert _value(settled, "db_pool_checked_out") == 0
    assert _value(settled, "db_pool_overflow") == 0
    assert ("http_requests_in_flight", frozenset()) in after

    # The access log: one JSON line per request, every field, nothing of the token.
    records = _records_when(log, lambda rs: sum(r["request_id"] in request_ids for r in rs) >= sent)
    text = log.read_text()
    assert token not in text and "Bearer" not in text
    access = [r for r in records if r.get("logger") == "task_api.access"]
    assert not [r for r in records if r.get("logger") == "uvicorn.access"]
    ours = [r for r in access if r["request_id"] in request_ids]
    # Exactly one line per response, under that response's X-Request-ID: none twice or missing.
    assert sorted(r["request_id"] for r in ours) == sorted(request_ids)
    assert len({r["pid"] for r in ours}) == 2
    for record in ours:
        assert record["level"] == "INFO"
        assert datetime.fromisoformat(record["timestamp"]).utcoffset() == timedelta(0)
        assert record["method"] == "GET"
        assert record["route"] == ROUTE
        assert record["status"] == 200
        assert record["user_id"] == user_id
        assert record["client"] == "127.0.0.1"
        assert isinstance(record["duration_ms"], float) and 0 <= record["duration_ms"] < 5000
    assert [r for r in ours if r["request_id"] == own_id]
    # Unauthenticated requests carry no user id; uvicorn's own lines are JSON too.
    register_line = next(
        r for r in access if r["route"] == "/api/auth/register" and r["status"] == 201
    )
    assert register_line["user_id"] is None
    assert any("Application startup complete" in r["message"] for r in records)


def test_metrics_needs_the_token(two_workers: tuple[str, Path]) -> None:
    base_url, log = two_workers
    missing = httpx.get(f"{base_url}/metrics")
    wrong = httpx.get(f"{base_url}/metrics", headers={"Authorization": "Bearer wrong-token"})
    for response in (missing, wrong):
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.json()["error"]["code"] == "UNAUTHORIZED"
        assert "http_requests" not in response.text
    assert METRICS_TOKEN not in log.read_text()


@pytest.fixture(scope="module")
def crashing_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """The app plus a failing route, on real uvicorn with JSON logs, and a database that
    refuses connections (for the 503 path)."""
    port = _free_port()
    log = tmp_path_factory.mktemp("crashing-server") / "server.log"
    env = {
        "PATH": "/usr/bin:/bin",
        "ENVIRONMENT": "test",
        "JWT_SECRET": TEST_SECRET,
        "DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none",
        "DB_CONNECT_TIMEOUT_SECONDS": "2",
        "AUTO_MIGRATE": "false",
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "INFO",
    }
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.observability.crashing_server", str(port)],
            cwd=ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while "Application startup complete" not in log.read_text():
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"server did not start:\n{log.read_text()}")
            time.sleep(0.1)
        yield base_url, log
    finally:
        stop_process(process)


def test_unhandled_error_traceback_is_logged_not_answered(
    crashing_server: tuple[str, Path],
) -> None:
    base_url, log = crashing_server
    response = httpx.get(f"{base_url}/boom/7", timeout=10)
    assert response.status_code == 500
    assert "Traceback" not in response.text and "secret" not in response.text
    request_id = response.headers["x-request-id"]
    records = _records_when(log, _has(request_id, "task_api.access"))
    error = next(r for r in records if r["level"] == "ERROR" and r["request_id"] == request_id)
    assert error["logger"] == "backend.errors"
    assert "Traceback (most recent call last)" in error["exc_info"]
    assert f"RuntimeError: {SECRET_DETAIL}" in error["exc_info"]
    access = next(
        r for r in records if r["logger"] == "task_api.access" and r["request_id"] == request_id
    )
    assert access["route"] == "/boom/{item_id}" and access["status"] == 500


def test_database_unavailable_is_logged_with_traceback(
    crashing_server: tuple[str, Path],
) -> None:
    base_url, log = crashing_server
    token = make_token()
    response = httpx.get(f"{base_url}/api/tasks", headers=bearer(token), timeout=20)
    assert response.status_code == 503
    assert "Traceback" not in response.text and "127.0.0.1" not in response.text
    request_id = response.headers["x-request-id"]
    records = _records_when(log, _has(request_id, "task_api.access"))
    error = next(r for r in records if r["level"] == "ERROR" and r["request_id"] == request_id)
    assert error["message"].startswith("database unavailable: OperationalError (")
    assert "Traceback (most recent call last)" in error["exc_info"]
    access = next(
        r for r in records if r["logger"] == "task_api.access" and r["request_id"] == request_id
    )
    assert access["status"] == 503 and access["route"] == "/api/tasks"
    assert access["user_id"] == "external-user-1"
    assert token not in log.read_text()


def test_killed_worker_leaves_no_stale_gauges(database_url: str) -> None:
    """uvicorn replaces a killed worker; the replacement drops the dead one's live gauges,
    so pool sizes are summed over the two live workers, not three."""
    with running_server(
        database_url, workers=2, METRICS_TOKEN=METRICS_TOKEN, DB_POOL_SIZE=str(POOL_SIZE)
    ) as (base_url, process, log):
        assert _value(_samples(base_url), "db_pool_size") == 2 * POOL_SIZE
        workers = [
            child
            for child in psutil.Process(process.pid).children()
            if "multiprocessing" in " ".join(child.cmdline())
            and "resource_tracker" not in " ".join(child.cmdline())
        ]
        assert len(workers) == 2, [w.cmdline() for w in workers]
        directory = Path(workers[1].environ()["PROMETHEUS_MULTIPROC_DIR"])
        assert directory.stat().st_mode & 0o777 == 0o700  # private to the server's user
        workers[0].kill()
        workers[0].wait(10)
        deadline = time.monotonic() + 60
        while log.read_text().count("Application startup complete") < 3:
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        found = _samples(base_url)
    assert _value(found, "db_pool_size") == 2 * POOL_SIZE
    assert _value(found, "http_requests_in_flight") == 1  # the scrape itself, nothing stale
    assert not directory.exists()  # removed when serve exits
