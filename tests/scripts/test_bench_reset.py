"""`scripts.bench.seed.reset` runs between scenarios while requests of the run that just ended
may still be in flight. Such a request holds its caller's change lock and then waits for its
task's row; the reset must not hold that row while waiting for the same lock (a deadlock that
aborted the benchmark, or the request, after a mix run)."""

from __future__ import annotations

import threading
import time

from sqlalchemy import create_engine, text

from backend.db.engine import normalize_url
from scripts import seeding
from scripts.bench import seed


def test_reset_waits_for_a_writer_holding_the_change_lock(database_url: str) -> None:
    db = seed.prepare(database_url, 3, 30, reuse=True, quiet=True)
    engine = create_engine(normalize_url(db.url))
    try:
        with engine.begin() as conn:
            created = conn.execute(
                text(
                    "INSERT INTO tasks (user_id, title) SELECT 'user-' || (1 + g % 3), 'made' "
                    "FROM generate_series(1, 30) AS g RETURNING id, user_id"
                )
            ).all()
        victim = next(task_id for task_id, user_id in created if user_id == "user-2")
        finished: list[int] = []
        # A request in flight: it has taken user-2's change lock on entry (as the door does)...
        with engine.connect() as request:
            request.execute(text("SELECT task_events_lock('user-2')"))
            resetter = threading.Thread(target=lambda: finished.append(seed.reset(engine)))
            resetter.start()
            with engine.connect() as probe:
                for _ in range(200):  # ...and the reset now waits for that lock
                    waiting = probe.scalar(
                        text(
                            "SELECT count(*) FROM pg_locks WHERE NOT granted "
                            "AND locktype = 'advisory' AND database = ("
                            "  SELECT oid FROM pg_database WHERE datname = current_database())"
                        )
                    )
                    if waiting:
                        break
                    time.sleep(0.05)
                assert waiting, "the reset never waited for user-2's change lock"
            # ...then deletes a task the run created: it must get the row, not a deadlock.
            deleted = request.execute(
                text("DELETE FROM tasks WHERE user_id = 'user-2' AND id = :id RETURNING id"),
                {"id": victim},
            ).all()
            request.commit()
        resetter.join(timeout=30)
        assert deleted == [(victim,)]
        assert finished == [db.max_seed_id]
        with engine.connect() as conn:
            left = conn.scalar(text("SELECT count(*) FROM tasks WHERE id > :m"), {"m": finished[0]})
        assert left == 0
    finally:
        engine.dispose()


def test_reset_puts_moved_tasks_back_and_drops_made_lists(database_url: str) -> None:
    """After the list scenarios: seeded list tasks moved are back in their seeded places (the
    next run's moves see the same list), and lists made for deleting are gone."""
    db = seed.prepare(database_url, 3, 30, reuse=True, quiet=True)
    assert db.list_owners == 3
    engine = create_engine(normalize_url(db.url))
    try:
        with engine.begin() as conn:
            # What the seed made (the list scenarios' lists and the shared list's): reset keeps
            # exactly that.
            seeded_lists = conn.scalar(text("SELECT count(*) FROM task_lists"))
            seeded_tasks = conn.scalar(text("SELECT count(*) FROM tasks WHERE list_id IS NOT NULL"))
            first, second = conn.execute(
                text(
                    "SELECT id, position FROM tasks WHERE user_id = 'lister-1' "
                    "AND parent_id IS NULL AND list_id IS NOT NULL ORDER BY position LIMIT 2"
                )
            ).all()
            # A move: the first task right after the second.
            conn.execute(
                text("UPDATE tasks SET position = :p WHERE id = :id"),
                {"p": second.position + 1, "id": first.id},
            )
            seeding.seed_lists(conn, ["lister-2"], "Disposable test")
        seed.reset(engine)
        with engine.connect() as conn:
            moved = conn.scalar(text("SELECT position FROM tasks WHERE id = :id"), {"id": first.id})
            lists = conn.scalar(text("SELECT count(*) FROM task_lists"))
            tasks = conn.scalar(text("SELECT count(*) FROM tasks WHERE list_id IS NOT NULL"))
        assert moved == first.position
        assert lists == seeded_lists >= 3
        assert tasks == seeded_tasks >= 3 * seeding.LIST_TASKS
    finally:
        engine.dispose()
