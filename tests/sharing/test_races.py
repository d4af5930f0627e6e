"""A member's writes racing its removal, through the real server with real concurrency (each
writer its own connection): every answer is a success before the removal and the missing
task's 404 after it, never a success again, and the stored task is the last write that
succeeded. Counted, never timed."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
from sqlalchemy import Engine, text

from tests.conftest import Account

# The writer starts the removal after this many writes, and goes on until it has been
# refused this many times (however fast either side is).
BEFORE, AFTER = 10, 5


def test_a_removal_during_a_members_writes_ends_in_one_state(
    unlimited_live_server: str, alice: Account, bob: Account, db_engine: Engine
) -> None:
    with httpx.Client(base_url=unlimited_live_server, headers=alice.headers, timeout=60) as http:
        list_id = http.post("/api/lists", json={"name": "Team"}).json()["data"]["id"]
        made = http.post("/api/tasks", json={"title": "start", "list_id": list_id})
        task_id = made.json()["data"]["id"]
    with db_engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO list_members (user_id, list_id, member_id, role) "
                "VALUES (:owner, :list_id, :member, 'editor')"
            ),
            {"owner": alice.id, "list_id": list_id, "member": bob.id},
        )
    halfway = threading.Event()

    def write() -> list[tuple[int, str]]:
        answers = []
        with httpx.Client(base_url=unlimited_live_server, headers=bob.headers, timeout=60) as b:
            n = 0
            while sum(code == 404 for code, _ in answers) < AFTER and n < 10_000:
                if n == BEFORE:
                    halfway.set()
                title = f"bob {n}"
                answer = b.patch(f"/api/tasks/{task_id}", json={"title": title})
                answers.append((answer.status_code, title))
                n += 1
        return answers

    def remove() -> None:
        halfway.wait(timeout=60)
        with db_engine.begin() as conn:
            conn.execute(
                text("DELETE FROM list_members WHERE list_id = :list_id AND member_id = :member"),
                {"list_id": list_id, "member": bob.id},
            )

    with ThreadPoolExecutor(max_workers=2) as pool:
        writing = pool.submit(write)
        pool.submit(remove).result()
        answers = writing.result()

    codes = [code for code, _ in answers]
    assert set(codes) <= {200, 404}, codes
    first_refused = codes.index(404)  # the removal landed within the writes
    assert all(code == 404 for code in codes[first_refused:]), codes
    last_written = answers[first_refused - 1][1] if first_refused else "start"
    with httpx.Client(base_url=unlimited_live_server, headers=alice.headers, timeout=60) as http:
        stored = http.get(f"/api/tasks/{task_id}").json()["data"]
    assert stored["title"] == last_written
