"""The benchmark's naive baseline (scripts/bench/naive.py, issues 31 and 37): the app a FastAPI
user would write from the tutorials, started as the benchmark starts it (`servers.start`) over
the test PostgreSQL, answers the five compared routes for the token's user only, on a plain
table of its own seeded with a copy of the API's tasks (no trigger of ours), the benchmark's
validation accepts it (and refuses a task that differs from the API's), PostgreSQL's CPU is
found and counted, and the report sets the naive app beside the API per route."""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text

from backend.db.engine import normalize_url
from scripts.bench import report, seed, servers, validate, workload, wrk
from scripts.bench.run import parse_only


@pytest.fixture(scope="module")
def running(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The naive app and the API (the validation's reference) on a seed of 2 users x 100
    tasks; the seed's writes are undone after each test (`seed.reset`)."""
    db = seed.prepare(database_url, 2, 200, reuse=True, quiet=True)
    secret = secrets.token_urlsafe(48)
    tokens = workload.mint_tokens(workload.settings_for(secret, db.url), db.users)
    owned = workload.owned_pairs(db)
    logs = tmp_path_factory.mktemp("naive-logs")
    common = {"workers": 1, "database_url": db.url, "secret": secret, "log_dir": Path(logs)}
    with ExitStack() as stack:
        started = {
            kind: stack.enter_context(servers.start(kind, **common))  # type: ignore[arg-type]
            for kind in ("api", "naive")
        }
        yield started, db, tokens, owned
    shutil.rmtree(logs, ignore_errors=True)


@pytest.fixture
def bench(running: Any) -> Iterator[Any]:
    yield running
    engine = create_engine(normalize_url(running[1].url))
    seed.reset(engine)
    engine.dispose()


def _row(db: seed.BenchDb, task_id: int) -> Any:
    engine = create_engine(normalize_url(db.url))
    with engine.connect() as conn:
        row = conn.execute(
            text(
                "SELECT user_id, title, priority, completed, completed_at FROM naive_tasks "
                "WHERE id = :i"
            ),
            {"i": task_id},
        ).one()
    engine.dispose()
    return row


def _owned_ids(db: seed.BenchDb, user: str) -> set[int]:
    engine = create_engine(normalize_url(db.url))
    with engine.connect() as conn:
        ids = conn.scalars(text("SELECT id FROM naive_tasks WHERE user_id = :u"), {"u": user}).all()
    engine.dispose()
    return set(ids)


def test_the_naive_app_answers_the_five_routes(bench: Any) -> None:
    started, db, tokens, owned = bench
    naive = started["naive"].url
    user, task_id = owned[0]
    headers = {"Authorization": f"Bearer {tokens[user - 1]}"}
    with httpx.Client(base_url=naive, headers=headers, timeout=30) as client:
        one = client.get(f"/api/tasks/{task_id}")
        assert one.status_code == 200, one.text
        assert one.json()["data"]["id"] == task_id
        assert one.json()["data"]["title"] == _row(db, task_id).title

        page = client.get("/api/tasks")
        assert page.status_code == 200, page.text
        ids = [t["id"] for t in page.json()["data"]]
        assert len(ids) == 100 and set(ids) <= _owned_ids(db, f"user-{user}")

        body = {"title": "Made by the naive app", "priority": "high", "due_date": "2030-12-01"}
        created = client.post("/api/tasks", json=body)
        assert created.status_code == 201, created.text
        new = created.json()["data"]
        assert new["title"] == body["title"] and new["due_date"].startswith("2030-12-01T00:00")
        assert _row(db, new["id"]).user_id == f"user-{user}"

        patched = client.patch(f"/api/tasks/{new['id']}", json={"title": "Renamed"})
        assert patched.status_code == 200, patched.text
        assert patched.json()["data"]["title"] == "Renamed" == _row(db, new["id"]).title
        assert _row(db, new["id"]).priority == "high"  # what the PATCH left out is kept

        toggled = client.patch(f"/api/tasks/{new['id']}/complete")
        assert toggled.status_code == 200, toggled.text
        stored = _row(db, new["id"])
        assert toggled.json()["data"]["completed"] is True is stored.completed
        assert stored.completed_at is not None
        again = client.patch(f"/api/tasks/{new['id']}/complete").json()["data"]
        assert again["completed"] is False and again["completed_at"] is None

    refused = httpx.get(f"{naive}/api/tasks", headers={"Authorization": "Bearer x.y.z"})
    assert refused.status_code == 401


def _count(db: seed.BenchDb, sql: str) -> Any:
    engine = create_engine(normalize_url(db.url))
    with engine.connect() as conn:
        value = conn.scalar(text(sql))
    engine.dispose()
    return value


def test_the_naive_app_writes_a_plain_table_of_its_own(bench: Any) -> None:
    """Its table is a copy of the seeded tasks (the same ids, owners and values), with no
    trigger and two indexes (the key and user_id); its writes leave the API's tables alone."""
    started, db, tokens, owned = bench
    same = (
        "SELECT count(*) FROM naive_tasks AS n JOIN tasks AS t USING (id) WHERE "
        "(n.user_id, n.title, n.description, n.completed, n.completed_at, n.priority, "
        "n.due_date, n.tags, n.created_at, n.updated_at) IS NOT DISTINCT FROM (t.user_id, "
        "t.title, t.description, t.completed, t.completed_at, t.priority::text, t.due_date, "
        "t.tags, t.created_at, t.updated_at)"
    )
    assert _count(db, same) == _count(
        db, f"SELECT count(*) FROM tasks WHERE id <= {db.max_seed_id}"
    )
    assert _count(db, "SELECT count(*) FROM naive_tasks") == _count(db, same)
    triggers = "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'naive_tasks'::regclass"
    assert _count(db, triggers) == 0
    indexes = (
        "SELECT array_agg(indexdef ORDER BY indexname) FROM pg_indexes "
        "WHERE tablename = 'naive_tasks'"
    )
    assert [d.split(" USING ")[1] for d in _count(db, indexes)] == ["btree (user_id)", "btree (id)"]
    events = "SELECT count(*) FROM task_events"
    before = (_count(db, "SELECT max(id) FROM tasks"), _count(db, events))
    user, task_id = owned[0]
    headers = {"Authorization": f"Bearer {tokens[user - 1]}"}
    with httpx.Client(base_url=started["naive"].url, headers=headers, timeout=30) as client:
        created = client.post("/api/tasks", json={"title": "Plain"})
        assert created.status_code == 201
        new = created.json()["data"]["id"]  # the seeded rows stay as the API's (validation)
        assert new > db.max_seed_id
        assert client.patch(f"/api/tasks/{new}", json={"title": "x"}).status_code == 200
        assert client.patch(f"/api/tasks/{new}/complete").status_code == 200
        assert client.get(f"/api/tasks/{task_id}").status_code == 200
    assert (_count(db, "SELECT max(id) FROM tasks"), _count(db, events)) == before


def test_the_naive_app_is_scoped_by_user(bench: Any) -> None:
    """Another user's task is a 404 for every route, and stays as it was."""
    started, db, tokens, owned = bench
    naive = started["naive"].url
    user, _ = owned[0]
    stranger_id = next(t for u, t in owned if u != user)
    before = _row(db, stranger_id)
    headers = {"Authorization": f"Bearer {tokens[user - 1]}"}
    with httpx.Client(base_url=naive, headers=headers, timeout=30) as client:
        assert client.get(f"/api/tasks/{stranger_id}").status_code == 404
        assert client.patch(f"/api/tasks/{stranger_id}", json={"title": "x"}).status_code == 404
        assert client.patch(f"/api/tasks/{stranger_id}/complete").status_code == 404
        listed = {t["id"] for t in client.get("/api/tasks?limit=1000").json()["data"]}
    assert stranger_id not in listed
    assert listed == _owned_ids(db, f"user-{user}")
    assert _row(db, stranger_id) == before


def test_the_benchmarks_validation_accepts_the_naive_app(bench: Any) -> None:
    started, _, tokens, owned = bench
    checked = validate.naive(started["naive"].url, tokens, owned, reference=started["api"].url)
    assert checked == [
        "naive: list 100 and get one: 100 tasks, the API's tasks and values on the fields it has",
        "naive: create 201, update and toggle (twice) do what was asked",
        "naive: a malformed token is refused (401), another user's task is 404",
    ]


def test_the_validation_refuses_a_task_unlike_the_apis() -> None:
    api = {"id": 1, "title": "a", "created_at": "2026-11-24T10:00:00Z", "subtask_count": 0}
    same = {"id": 1, "title": "a", "created_at": "2026-11-24T10:00:00+00:00"}
    validate._naive_task("same", same, api)  # another spelling of the same instant
    for wrong in (
        {**same, "title": "b"},
        {**same, "created_at": "2026-11-24T10:00:01Z"},
        {**same, "owner": "user-1"},  # a field the API does not have
        {"title": "a"},  # no id
    ):
        with pytest.raises(validate.Mismatch):
            validate._naive_task("wrong", wrong, api)


def test_the_naive_app_is_a_server_kind_run_by_default() -> None:
    assert parse_only(None) == ("api", "baseline", "naive")
    assert parse_only("naive,api") == ("api", "naive")
    assert parse_only("naive", before=True) == ("before", "naive")
    with pytest.raises(SystemExit):
        parse_only("naïve")
    # It takes part in the five routes it serves, and only those.
    assert {s for s in wrk.SCENARIOS if wrk.serves("naive", s)} == set(wrk.NAIVE)
    assert wrk.serves("baseline", "search") and not wrk.serves("naive", "search")


def test_postgres_cpu_is_found_and_counts_work(database_url: str) -> None:
    postgres = servers.PostgresCpu.for_url(database_url)
    if postgres.pid is None and os.environ.get("TEST_DATABASE_URL"):
        pytest.skip("TEST_DATABASE_URL's server is not a process of this machine")
    first = postgres.cpu_seconds()
    assert first is not None
    engine = create_engine(normalize_url(database_url))
    with engine.connect() as conn:
        conn.execute(text("SELECT count(*) FROM generate_series(1, 3000000)"))
        while_open = postgres.cpu_seconds()  # the backend is a live child
    engine.dispose()
    assert while_open is not None and while_open > first
    # Once the connection closes, its backend's time moves to the postmaster's reaped
    # children: the total never goes back, whenever the exit lands between the reads.
    for _ in range(50):
        second = postgres.cpu_seconds()
        assert second is not None and second >= while_open - 0.02
    assert servers.PostgresCpu(None).cpu_seconds() is None


def _run(scenario: str, server: str, rtt: float | None, level: int, **figures: float) -> Any:
    return {
        "size": "10k",
        "workers": 1,
        "scenario": scenario,
        "connections": level,
        "server": server,
        "db_rtt_ms": rtt,
        "rps": figures.get("rps", 100.0),
        "p50_ms": figures.get("p50", 1.0),
        "p90_ms": 2.0,
        "p99_ms": 3.0,
        "cpu_ms_per_request": figures.get("cpu", 1.0),
        "postgres_cpu_ms_per_request": figures.get("pg", 0.5),
        "peak_rss_mb": 100.0,
    }


def test_the_report_sets_the_naive_app_beside_the_api() -> None:
    runs = [
        _run(scenario, server, rtt, level, p50=p50, rps=rps, cpu=cpu, pg=pg)
        for scenario in wrk.NAIVE
        for rtt, p50 in ((0.0, 2.0), (10.0, 12.0))
        for level in (1, 32)
        for server, rps, cpu, pg in (("api", 700.0, 1.1, 3.3), ("naive", 320.0, 4.4, 1.2))
    ]
    runs.append(_run("search", "api", 0.0, 32))  # a route the naive app does not serve
    results = {
        "machine": report.machine("18"),
        "config": {
            "preset": "quick",
            "sizes": ["10k"],
            "concurrency": [1, 32],
            "seconds": 2,
            "servers": ["api", "naive"],
            "rate_limit": "100000000",
        },
        "runs": runs,
        "validation": [],
    }
    results["targets"] = report.targets(results)
    markdown = report.markdown(results)
    assert "## The API beside the naive app (issue 31)" in markdown
    assert "the naive app (FastAPI + SQLModel" in markdown
    for route in ("GET one", "list 100", "PATCH", "toggle", "create"):
        assert f"| {route} | 0 ms | 2.0 / 2.0 | 700 / 320 | 1.1 / 4.4 | 3.3 / 1.2 |" in markdown
        assert f"| {route} | 10 ms | 12.0 / 12.0 | 700 / 320 | 1.1 / 4.4 | 3.3 / 1.2 |" in markdown
    assert "| search |" not in markdown.split("(issue 31)")[1].split("## Results")[0]
    flat = {(r["scenario"], r["db_rtt_ms"], r["connections"]): r for r in report.comparisons(runs)}
    assert flat[("get", 10.0, 32)]["naive_postgres_cpu_ms_per_request"] == 1.2
    assert flat[("get", 10.0, 32)]["api_postgres_cpu_ms_per_request"] == 3.3
