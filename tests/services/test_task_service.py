"""TaskService against the real database, below the HTTP layer."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import Connection, Engine

from backend.auth.tokens import TokenClaims
from backend.config import Settings
from backend.db.sender import Sender
from backend.errors import NotFound
from backend.models import SortOrder, TaskCreate, TaskSort, TaskStatus, TaskUpdate
from backend.services.tasks.service import TaskService
from backend.services.tasks.task_listing import TaskFilters, TaskListQuery
from backend.services.unit_of_work import UnitOfWork


def work_as(engine: Engine, settings: Settings, user_id: str) -> UnitOfWork:
    """A unit of work for `user_id` (provisioned like an external identity on entry)."""
    return UnitOfWork(engine, settings, claims=TokenClaims(subject=user_id, local=False))


def write_as(engine: Engine, settings: Settings, user_id: str) -> UnitOfWork:
    """A write's unit of work for `user_id`, as the door opens one: counted, in a transaction."""
    claims = TokenClaims(subject=user_id, local=False)
    return UnitOfWork(engine, settings, claims=claims, counts_write=True)


@pytest.fixture
def session(db_engine: Engine, settings: Settings) -> Iterator[Connection]:
    """One open transaction in which "owner" and "intruder" exist."""
    for user_id in ("owner", "intruder"):
        with work_as(db_engine, settings, user_id):
            pass
    with db_engine.connect() as conn:
        yield Sender(conn, "")  # type: ignore[misc]


def test_create_and_get(session: Connection) -> None:
    service = TaskService(session, "owner")
    task = service.create(TaskCreate(title="write tests"))
    assert task.id is not None and task.user_id == "owner"
    assert service.get(task.id).title == "write tests"


def test_other_users_service_sees_nothing(session: Connection) -> None:
    task = TaskService(session, "owner").create(TaskCreate(title="private"))
    assert task.id is not None
    intruder = TaskService(session, "intruder")
    assert intruder.list_page(TaskListQuery()).items == []
    for attempt in (
        lambda: intruder.get(task.id),  # type: ignore[arg-type]
        lambda: intruder.update(task.id, TaskUpdate(title="x")),  # type: ignore[arg-type]
        lambda: intruder.set_completed(task.id, None),  # type: ignore[arg-type]
        lambda: intruder.delete(task.id),  # type: ignore[arg-type]
    ):
        with pytest.raises(NotFound):
            attempt()
    unchanged = TaskService(session, "owner").get(task.id)
    assert unchanged.title == "private" and unchanged.completed is False


def test_update_with_nothing_set_changes_only_updated_at(session: Connection) -> None:
    service = TaskService(session, "owner")
    task = service.create(TaskCreate(title="same", description="d"))
    session.commit()
    assert task.id is not None
    before = task.updated_at
    after = service.update(task.id, TaskUpdate())
    assert (after.title, after.description, after.completed) == ("same", "d", False)
    assert after.updated_at is not None and before is not None
    assert after.updated_at > before


def test_list_orders_and_filters(session: Connection) -> None:
    service = TaskService(session, "owner")
    b = service.create(TaskCreate(title="b"))
    a = service.create(TaskCreate(title="A", completed=True))
    page = service.list_page(TaskListQuery(sort=TaskSort.title))
    assert [t.id for t in page.items] == [a.id, b.id] and page.next is None
    pending = TaskFilters(status=TaskStatus.pending)
    page = service.list_page(
        TaskListQuery(filters=pending, sort=TaskSort.title, order=SortOrder.desc)
    )
    assert [t.id for t in page.items] == [b.id]
    page = service.list_page(TaskListQuery(limit=1))
    assert len(page.items) == 1 and page.next is not None


def test_concurrent_toggles_lose_no_update(db_engine: Engine, settings: Settings) -> None:
    """N toggles racing on one task leave it completed exactly when N is odd."""
    with work_as(db_engine, settings, "racer") as work:
        task_id = work.service(TaskService).create(TaskCreate(title="race")).id

    def toggle(_: int) -> None:
        with work_as(db_engine, settings, "racer") as work:
            work.service(TaskService).set_completed(task_id, None)

    toggles = 25
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(toggle, range(toggles)))
    with work_as(db_engine, settings, "racer") as work:
        final = work.service(TaskService).get(task_id)
    assert final.completed is (toggles % 2 == 1)
    assert (final.completed_at is not None) is final.completed
    assert final.version == 1 + toggles  # every toggle bumped the version (the ETag) once


def _daily_from_2030(db_engine: Engine, settings: Settings, user_id: str) -> int:
    """A new daily task of `user_id`'s, first due 2030-01-01 09:00 UTC: its id."""
    with write_as(db_engine, settings, user_id) as work:
        return (
            work.service(TaskService)
            .create(TaskCreate(title="racing", due_date="2030-01-01T09:00:00Z", recurrence="daily"))
            .id
        )


def test_concurrent_completions_of_a_series_add_one_occurrence(
    db_engine: Engine, settings: Settings
) -> None:
    """Toggles racing on a recurring task (each completion read, then written apart from its
    read: `_write_completing`) lose no toggle and no event, and its series gets exactly one
    next occurrence, from the version that was completed first."""
    task_id = _daily_from_2030(db_engine, settings, "series racer")

    def toggle(_: int) -> bool:
        with write_as(db_engine, settings, "series racer") as work:
            return work.service(TaskService).set_completed(task_id, None).completed

    toggles = 25
    with ThreadPoolExecutor(max_workers=8) as pool:
        outcomes = list(pool.map(toggle, range(toggles)))
    with work_as(db_engine, settings, "series racer") as work:
        final = work.service(TaskService).get(task_id)
    assert final.completed is (toggles % 2 == 1)
    assert final.version == 1 + toggles
    # The completions alternate with the reopenings whatever the order they ran in.
    assert sum(outcomes) == (toggles + 1) // 2
    with db_engine.connect() as conn:
        successors = conn.exec_driver_sql(
            "SELECT count(*), min(due_date) FROM tasks WHERE previous_task_id = %s", (task_id,)
        ).one()
        events = conn.exec_driver_sql(
            "SELECT type, (task->>'version')::int FROM task_events WHERE task_id = %s ORDER BY id",
            (task_id,),
        ).all()
    assert successors[0] == 1
    assert successors[1].isoformat().startswith("2030-01-02")
    # One event per write, in the order of the versions they left.
    assert [version for _, version in events] == list(range(1, toggles + 2))


def test_concurrent_schedule_changes_all_land(db_engine: Engine, settings: Settings) -> None:
    """Schedule changes racing on one task (each reads the stored rule in a message that
    commits, then writes naming the version read: `_replan`) all land, none answered 409:
    a write that keeps losing the race reads under the caller's change lock."""
    task_id = _daily_from_2030(db_engine, settings, "schedule racer")

    def move(day: int) -> int:
        with write_as(db_engine, settings, "schedule racer") as work:
            due = f"2030-02-{day:02d}T09:00:00Z"
            return work.service(TaskService).update(task_id, TaskUpdate(due_date=due)).version

    changes = 16
    with ThreadPoolExecutor(max_workers=8) as pool:
        versions = list(pool.map(move, range(1, changes + 1)))
    assert sorted(versions) == list(range(2, changes + 2))
    with work_as(db_engine, settings, "schedule racer") as work:
        final = work.service(TaskService).get(task_id)
    assert final.version == 1 + changes
