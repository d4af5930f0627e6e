"""Concurrent moves in one list, through the real server (issue 24, "Done means"): no
duplicate positions and no task lost, however the moves interleave.

Each writer makes a fixed number of moves (counted, never timed) of random tasks to random
places in the same list: after or before a random sibling (so gaps close and neighbours are
respaced), or last, and sometimes out to another list and back. A user's writes are
serialized by their change lock (migration 0008), so "read the neighbours, then write" is
exact; the unique sibling position (migration 0017) would refuse a duplicate if it were not.
"""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
from sqlalchemy import Engine, text

from tests.conftest import Account

TASKS = 12
WRITERS = 6
MOVES = 30


def test_concurrent_moves_keep_every_task_once_at_a_distinct_place(
    unlimited_live_server: str, alice: Account, db_engine: Engine
) -> None:
    with httpx.Client(base_url=unlimited_live_server, headers=alice.headers, timeout=60) as http:
        board = http.post("/api/lists", json={"name": "Board"}).json()["data"]["id"]
        elsewhere = http.post("/api/lists", json={"name": "Elsewhere"}).json()["data"]["id"]
        ids = [
            http.post("/api/tasks", json={"title": f"t{n}", "list_id": board}).json()["data"]["id"]
            for n in range(TASKS)
        ]
        # Subtasks move with their parents.
        for parent in ids[:3]:
            child = http.post("/api/tasks", json={"title": "step", "parent_id": parent})
            assert child.status_code == 201, child.text

    def write(seed: int) -> list[int]:
        rng = random.Random(seed)  # noqa: S311  (a reproducible workload)
        statuses = []
        with httpx.Client(
            base_url=unlimited_live_server, headers=alice.headers, timeout=60
        ) as http:
            for _ in range(MOVES):
                task, anchor = rng.sample(ids, 2)
                kind = rng.random()
                if kind < 0.4:
                    body: dict[str, Any] = {"after_id": anchor}
                elif kind < 0.8:
                    body = {"before_id": anchor}
                elif kind < 0.9:
                    body = {}
                else:
                    body = {"list_id": elsewhere}
                # (An anchor another writer took to the other list takes this task there
                # too: the anchor's siblings are the destination.)
                statuses.append(http.post(f"/api/tasks/{task}/move", json=body).status_code)
                if body.get("list_id") == elsewhere:
                    back = http.post(f"/api/tasks/{task}/move", json={"list_id": board})
                    statuses.append(back.status_code)
        return statuses

    with ThreadPoolExecutor(max_workers=WRITERS) as pool:
        statuses = [s for batch in pool.map(write, range(WRITERS)) for s in batch]
    assert set(statuses) == {200}, sorted(set(statuses))
    assert len(statuses) >= WRITERS * MOVES

    with httpx.Client(base_url=unlimited_live_server, headers=alice.headers, timeout=60) as http:
        # What followed an anchor to the other list comes back, last.
        strays = http.get("/api/tasks", params={"list_id": elsewhere, "parent_id": "none"})
        for stray in strays.json()["data"]:
            moved = http.post(f"/api/tasks/{stray['id']}/move", json={"list_id": board})
            assert moved.status_code == 200, moved.text
        page = http.get(
            "/api/tasks", params={"list_id": board, "parent_id": "none", "sort": "position"}
        ).json()
        listed = [t["id"] for t in page["data"]]
        positions = [t["position"] for t in page["data"]]
        subtasks = http.get("/api/tasks", params={"list_id": board}).json()["meta"]
    assert sorted(listed) == sorted(ids)  # every task, once: none lost, none duplicated
    assert positions == sorted(set(positions))  # distinct, in order
    assert page["meta"]["count"] == TASKS and subtasks["count"] == TASKS + 3
    with db_engine.connect() as conn:
        duplicates = conn.execute(
            text(
                "SELECT count(*) FROM (SELECT 1 FROM tasks WHERE user_id = :u "
                "GROUP BY list_id, parent_id, position HAVING count(*) > 1) AS d"
            ),
            {"u": alice.id},
        ).scalar_one()
        in_board = conn.execute(
            text("SELECT count(*) FROM tasks WHERE user_id = :u AND list_id = :l"),
            {"u": alice.id, "l": board},
        ).scalar_one()
    assert duplicates == 0
    assert in_board == TASKS + 3  # the subtasks came back with their parents
