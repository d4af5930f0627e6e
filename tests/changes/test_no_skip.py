"""No change is ever skipped: a change whose transaction commits after a later-numbered one
is still delivered to a poller, and a listing plus its changes cursor reproduce every task.

The trap: ids are taken at insert time, not commit time. A reader that has passed id n+1
would never see id n if n committed after it. One user's changes are therefore inserted and
committed one transaction at a time (migration 0008's lock); the first test shows the
property failing when that lock is removed.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import httpx
import psycopg2
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from backend.db.engine import libpq_url
from backend.models.task_fields import DERIVED
from tests.changes.test_feed import drain
from tests.changes.test_outbox import create
from tests.conftest import Account


def _every_task(http: httpx.Client) -> list[dict[str, Any]]:
    """Every task of the caller, page after page: how many the writers leave depends on how
    fast the machine is, and may be more than one page holds."""
    tasks: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": 500}
    while True:
        body = http.get("/api/tasks", params=params).json()
        tasks.extend(body["data"])
        if not body["meta"].get("next_cursor"):
            return tasks
        params = {"limit": 500, "cursor": body["meta"]["next_cursor"]}


@contextmanager
def without_change_lock(engine: Engine) -> Iterator[None]:
    """A deliberately broken outbox: the per-user change lock does nothing."""
    with engine.begin() as conn:
        original = conn.execute(
            text("SELECT pg_get_functiondef('task_events_lock(text)'::regprocedure)")
        ).scalar_one()
        conn.execute(
            text(
                "CREATE OR REPLACE FUNCTION task_events_lock(owner TEXT) RETURNS void "
                "LANGUAGE plpgsql AS $$ BEGIN END $$"
            )
        )
    try:
        yield
    finally:
        with engine.begin() as conn:
            conn.execute(text(original))


def _until_blocked_by_or_done(holder: Any, writer: threading.Thread) -> None:
    """Until `writer` has finished or some backend waits on a lock `holder` holds."""
    holder_pid = holder.get_backend_pid()
    watcher = psycopg2.connect(holder.dsn)
    watcher.autocommit = True
    deadline = time.monotonic() + 60
    try:
        with watcher.cursor() as cur:
            while writer.is_alive():
                cur.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE %s = ANY(pg_blocking_pids(pid))",
                    (holder_pid,),
                )
                if cur.fetchone()[0]:
                    return
                assert time.monotonic() < deadline, "the writer neither finished nor waited"
                time.sleep(0.02)
    finally:
        watcher.close()


def late_commit_race(
    client: TestClient, alice: Account, database_url: str
) -> tuple[list[int], list[int]]:
    """Change task A in a transaction held open, change task B through the API meanwhile,
    poll, then commit A and poll again. Returns the task ids of the changes the poller saw,
    and of every change recorded, both in feed order."""
    a, b = create(client, alice, "a"), create(client, alice, "b")
    _, cursor = drain(client, alice, None)
    holder = psycopg2.connect(libpq_url(database_url))
    try:
        with holder.cursor() as cur:  # a slow writer: its change gets the lower id
            cur.execute("UPDATE tasks SET title = 'slow' WHERE id = %s", (a,))
        writer = threading.Thread(
            target=lambda: client.patch(
                f"/api/tasks/{b}", json={"title": "fast"}, headers=alice.headers
            )
        )
        writer.start()
        # With the lock it waits for the slow writer; without, it finishes. Either way the
        # poll below comes after, however slow the machine (a fixed wait was not).
        _until_blocked_by_or_done(holder, writer)
        seen, cursor = drain(client, alice, cursor)
        holder.commit()
        writer.join(timeout=30)
        assert not writer.is_alive()
        later, _ = drain(client, alice, cursor)
    finally:
        holder.close()
    all_changes, _ = drain(client, alice, None)
    return [c["task_id"] for c in seen + later], [c["task_id"] for c in all_changes[2:]]


def test_a_change_committed_after_a_later_numbered_one_is_not_skipped(
    client: TestClient, alice: Account, database_url: str
) -> None:
    seen, recorded = late_commit_race(client, alice, database_url)
    assert recorded == seen
    assert len(seen) == 2


def test_without_the_lock_the_same_race_skips_a_change(
    client: TestClient, alice: Account, database_url: str, db_engine: Engine
) -> None:
    """The check above can fail: with the lock removed, the poller passes the fast writer's
    change before the slow one commits, and never sees the slow one."""
    with without_change_lock(db_engine):
        seen, recorded = late_commit_race(client, alice, database_url)
    assert len(recorded) == 2
    assert len(seen) == 1 and set(seen) < set(recorded)


WRITERS = 6
SECONDS = 6


def test_many_writers_and_a_racing_poller_never_skip_or_repeat(
    unlimited_live_server: str, alice: Account, db_engine: Engine
) -> None:
    """Writers create, change, complete and delete tasks through the real server while a
    poller follows the feed from a listing's cursor. Afterwards the poller has seen every
    recorded change exactly once, in order, and the listing plus the changes it saw rebuild
    the final state of every task."""
    headers = alice.headers
    with httpx.Client(base_url=unlimited_live_server, headers=headers, timeout=30) as http:
        for n in range(20):
            assert http.post("/api/tasks", json={"title": f"seed {n}"}).status_code == 201
        listing = http.get("/api/tasks", params={"limit": 500}).json()
        state: dict[int, dict[str, Any]] = {t["id"]: t for t in listing["data"]}
        start = listing["meta"]["changes_cursor"]
    with db_engine.connect() as conn:  # nothing is writing yet: the listing's position
        listed = conn.execute(
            text("SELECT max(id) FROM task_events WHERE user_id = :u"), {"u": alice.id}
        ).scalar_one()
    stop = time.monotonic() + SECONDS

    def write(seed: int) -> int:
        rng, writes = random.Random(seed), 0  # noqa: S311  (a reproducible workload)
        with httpx.Client(base_url=unlimited_live_server, headers=headers, timeout=30) as http:
            mine: list[int] = []
            while time.monotonic() < stop:
                action = rng.random()
                if action < 0.35 or not mine:
                    created = http.post("/api/tasks", json={"title": f"w{seed}-{writes}"})
                    assert created.status_code == 201, created.text
                    mine.append(created.json()["data"]["id"])
                elif action < 0.6:
                    task_id = rng.choice(mine)
                    assert http.patch(f"/api/tasks/{task_id}/complete").status_code == 200
                elif action < 0.85:
                    task_id = rng.choice(mine)
                    body = {"title": f"w{seed}-{writes}", "priority": rng.choice(["low", "high"])}
                    assert http.patch(f"/api/tasks/{task_id}", json=body).status_code == 200
                else:
                    task_id = mine.pop(rng.randrange(len(mine)))
                    assert http.delete(f"/api/tasks/{task_id}").status_code == 204
                writes += 1
        return writes

    seen: list[dict[str, Any]] = []

    def poll() -> None:
        cursor = start
        with httpx.Client(base_url=unlimited_live_server, headers=headers, timeout=30) as http:
            while True:
                finished = time.monotonic() > stop + 2
                page = http.get("/api/tasks/changes", params={"cursor": cursor, "limit": 7})
                assert page.status_code == 200, page.text
                body = page.json()
                seen.extend(body["data"])
                cursor = body["meta"]["next_cursor"]
                if finished and not body["meta"]["has_more"]:
                    return

    with ThreadPoolExecutor(max_workers=WRITERS + 1) as pool:
        poller = pool.submit(poll)
        writes = sum(pool.map(write, range(WRITERS)))
        poller.result()

    with db_engine.connect() as conn:
        recorded = list(
            conn.execute(
                text(
                    "SELECT event_id::text FROM task_events WHERE user_id = :u AND id > :listed "
                    "ORDER BY id"
                ),
                {"u": alice.id, "listed": listed},
            ).scalars()
        )
    assert writes > 50
    assert [c["event_id"] for c in seen] == recorded  # every change, once, in commit order
    for change in seen:
        if change["type"] == "deleted":
            state.pop(change["task_id"])
        else:
            state[change["task_id"]] = change["task"]
    with httpx.Client(base_url=unlimited_live_server, headers=headers, timeout=30) as http:
        final = _every_task(http)
    # Kept by the database from the subtasks, not part of a change: the subtask counts.
    strip = ("is_overdue", *DERIVED)
    assert {k: {f: v for f, v in t.items() if f not in strip} for k, t in state.items()} == {
        t["id"]: {f: v for f, v in t.items() if f not in strip} for t in final
    }
