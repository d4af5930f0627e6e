"""A task's children, declared once (issue 60; backend/models/task_children.py): every table
with a key to `tasks` is declared a child or says why not, the database's registry is the
declared one, each child follows its task through a handover and a deletion, a row of every
child, on a task and on its subtask, comes back field by field from the trash, and a child's
rows added, changed and removed are events its task's readers see (but a member's own
reminders'). A new child gets all of it from its declaration and its migration's
registration: no test here names one."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import BigInteger, Column, Engine, MetaData, Table, Text, text
from sqlmodel import SQLModel

from backend.auth.tokens import TokenClaims
from backend.config import Settings
from backend.models.references import Action
from backend.models.task_children import CHILDREN, NOT_CHILDREN, TaskChild
from backend.services.tasks.child_rows import ChildRows, TaskChildService
from backend.services.unit_of_work import UnitOfWork
from tests.conftest import Account
from tests.sharing.helpers import add_member, make_list, make_task

# Every foreign key to `tasks`: the referencing table, its columns, the key's actions.
_KEYS_TO_TASKS = text(
    """
    SELECT k.conrelid::regclass::text AS child,
           array(SELECT a.attname::text FROM unnest(k.conkey) WITH ORDINALITY AS c(n, i)
                 JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = c.n
                 ORDER BY c.i) AS columns,
           k.confupdtype AS on_update, k.confdeltype AS on_delete
    FROM pg_constraint k
    WHERE k.contype = 'f' AND k.confrelid = 'tasks'::regclass
    """
)


def _keys(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(_KEYS_TO_TASKS))


def test_every_table_keyed_to_tasks_is_a_child_or_says_why_not(db_engine: Engine) -> None:
    keyed = {row.child for row in _keys(db_engine)}
    declared = {child.name for child in CHILDREN}
    assert keyed - declared - set(NOT_CHILDREN) == set(), "declare it in CHILDREN"
    assert set(NOT_CHILDREN) - keyed == set(), "no longer keyed to tasks"
    assert declared & set(NOT_CHILDREN) == set()
    assert len(declared) == len(CHILDREN)


def registration(child: TaskChild) -> tuple[Any, ...]:
    """What `child`'s migration registers in `task_children`: its noun, edited columns and
    stored columns (its key, size and uploader)."""
    stored = child.stored
    return (
        child.snake if child.events else None,
        list(child.edited),
        *((stored.key, stored.size, stored.by) if stored else (None, None, None)),
    )


def test_the_registry_is_the_declared_children(db_engine: Engine) -> None:
    """Migration 0052's functions take their tables from `task_children`, 0062's events their
    nouns and edited columns, 0079's stored bytes their columns: the same names, and events
    where the declaration says so, each table that records them with the registry's triggers
    (`task_children_register`), each stored child's columns (`task_children_store`)."""
    with db_engine.connect() as conn:
        registered = {
            row.name: (row.noun, list(row.edits), row.stored, row.stored_size, row.stored_by)
            for row in conn.execute(
                text("SELECT name, noun, edits, stored, stored_size, stored_by FROM task_children")
            )
        }
        recording = set(
            conn.execute(
                text(
                    "SELECT DISTINCT tgrelid::regclass::text FROM pg_trigger "
                    "WHERE tgfoid = 'task_children_record_event'::regproc"
                )
            ).scalars()
        )
    assert registered == {child.name: registration(child) for child in CHILDREN}
    assert recording == {child.name for child in CHILDREN if child.events}
    assert not next(child for child in CHILDREN if child.name == "task_member_reminders").events


@pytest.mark.parametrize("child", CHILDREN, ids=lambda child: child.name)
def test_a_child_follows_its_task_through_a_handover_and_a_deletion(
    db_engine: Engine, child: TaskChild
) -> None:
    """Its key is (user_id, task_id) -> tasks (user_id, id), cascading both ways: a list's
    transfer moves the rows to the new owner's space with their task, and a task's (or an
    account's) deletion takes them with it."""
    keys = [row for row in _keys(db_engine) if row.child == child.name]
    assert [(row.columns, row.on_update, row.on_delete) for row in keys] == [
        (["user_id", "task_id"], "c", "c")
    ]


def _user_columns(child: TaskChild) -> list[str]:
    """The child's columns, but `user_id`, with a key to `users`."""
    table = child.table.__table__  # type: ignore[attr-defined]
    return sorted(
        column.name
        for column in table.columns
        if column.name != "user_id"
        and any(key.column.table.name == "users" for key in column.foreign_keys)
    )


def _add_row(
    engine: Engine, child: TaskChild, owner: Account, list_id: int, task_id: int, member: Account
) -> None:
    """A row of `child` on the task, made as its own writer would leave it: in the owner's
    space and the task's list, every user column a member of the list."""
    table = child.table.__table__  # type: ignore[attr-defined]
    values: dict[str, Any] = {"user_id": owner.id, "task_id": task_id, **child.sample}
    if "list_id" in table.columns:
        values["list_id"] = list_id
    values |= dict.fromkeys(_user_columns(child), member.id)
    with engine.begin() as conn:
        conn.execute(table.insert().values(**values))


def _rows(engine: Engine, child: TaskChild, ids: list[int]) -> list[Any]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                text(
                    f"SELECT to_jsonb(c) FROM {child.name} c WHERE c.task_id = ANY (:ids) "
                    "ORDER BY to_jsonb(c)::text"
                ),
                {"ids": ids},
            ).scalars()
        )


@pytest.mark.parametrize("child", CHILDREN, ids=lambda child: child.name)
def test_a_row_of_every_child_comes_back_from_the_trash_field_by_field(
    client: TestClient, alice: Account, bob: Account, db_engine: Engine, child: TaskChild
) -> None:
    list_id = make_list(client, alice)
    add_member(db_engine, alice, list_id, bob, "editor")
    root = make_task(client, alice, "Plan the trip", list_id=list_id)
    subtask = make_task(client, alice, "Book", parent_id=root)
    for task_id in (root, subtask):
        _add_row(db_engine, child, alice, list_id, task_id, bob)
    before = _rows(db_engine, child, [root, subtask])
    assert len(before) == 2

    deleted = client.delete(f"/api/tasks/{root}", headers=bob.headers)
    assert deleted.status_code == 204, deleted.text
    assert _rows(db_engine, child, [root, subtask]) == []
    restored = client.post(f"/api/trash/{root}/restore", headers=bob.headers)
    assert restored.status_code == 200, restored.text
    assert _rows(db_engine, child, [root, subtask]) == before


@pytest.fixture
def throwaway_child(setup_engine: Engine) -> Iterator[str]:
    """A child table made as a new child's migration would make it (registered, with events
    of its noun `test_link` and `url` edited), then dropped."""
    with setup_engine.begin() as conn:
        conn.execute(
            text(
                """
                CREATE TABLE test_task_links (
                    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                    user_id TEXT NOT NULL,
                    task_id BIGINT NOT NULL,
                    list_id BIGINT,
                    url TEXT NOT NULL,
                    title TEXT,
                    added_by TEXT REFERENCES users (id) ON DELETE SET NULL,
                    FOREIGN KEY (user_id, task_id) REFERENCES tasks (user_id, id)
                        ON UPDATE CASCADE ON DELETE CASCADE
                );
                CALL task_children_register('test_task_links', 'test_link', ARRAY['url']);
                """
            )
        )
    try:
        yield "test_task_links"
    finally:
        with setup_engine.begin() as conn:
            conn.execute(text("DELETE FROM task_children WHERE name = 'test_task_links'"))
            conn.execute(text("DROP TABLE test_task_links"))


def test_a_new_child_needs_no_line_in_the_trash(
    client: TestClient, alice: Account, bob: Account, db_engine: Engine, throwaway_child: str
) -> None:
    """The trash's functions name no child: a table registered by its migration is kept and
    restored, a column with a key to a user that is gone coming back NULL."""
    root = make_task(client, alice, "Read up")
    with db_engine.begin() as conn:
        conn.execute(
            text(
                f"INSERT INTO {throwaway_child} (user_id, task_id, url, added_by) "
                "VALUES (:owner, :task, 'https://example.com/a', :owner), "
                "(:owner, :task, 'https://example.com/b', :bob)"
            ),
            {"owner": alice.id, "task": root, "bob": bob.id},
        )
    query = text(f"SELECT id, url, added_by FROM {throwaway_child} ORDER BY id")
    with db_engine.connect() as conn:
        before = [tuple(row) for row in conn.execute(query)]
    assert client.delete(f"/api/tasks/{root}", headers=alice.headers).status_code == 204
    deleted_bob = client.request(
        "DELETE", "/api/auth/me", json={"password": bob.password}, headers=bob.headers
    )
    assert deleted_bob.status_code == 204, deleted_bob.text
    restored = client.post(f"/api/trash/{root}/restore", headers=alice.headers)
    assert restored.status_code == 200, restored.text
    with db_engine.connect() as conn:
        after = [tuple(row) for row in conn.execute(query)]
    assert after == [before[0], (*before[1][:2], None)]


def test_a_child_that_records_events_has_an_id() -> None:
    """A child's event names its row by `id` (the feed's `child`, the activity's
    `object_id`): a child whose rows have none records no events."""
    for child in CHILDREN:
        if child.events:
            assert "id" in child.table.__table__.c, child.name  # type: ignore[attr-defined]


def test_the_declared_tables_are_the_models(db_engine: Engine) -> None:
    """Each child names a table of the metadata (and so of the schema)."""
    for child in CHILDREN:
        assert SQLModel.metadata.tables[child.name] is child.table.__table__  # type: ignore[attr-defined]


def test_a_change_writes_the_fields_sent_and_keeps_the_others(
    client: TestClient,
    alice: Account,
    db_engine: Engine,
    settings: Settings,
    throwaway_child: str,
) -> None:
    """A child's `PATCH` (`TaskChildService.change`) writes the fields sent, a null among
    them, and keeps the others: a child's update schema may make every field optional."""
    table = Table(
        throwaway_child,
        MetaData(),
        Column("id", BigInteger, primary_key=True),
        Column("user_id", Text),
        Column("task_id", BigInteger),
        Column("list_id", BigInteger),
        Column("url", Text),
        Column("title", Text),
        Column("added_by", Text),
    )
    links = TaskChild(
        SimpleNamespace(__table__=table, __tablename__=throwaway_child),  # type: ignore[arg-type]
        noun="test link",
        read=Action.LIST_READ,
        write=Action.TASK_WRITE,
        fields=("url", "title"),
    )

    class TestLinkService(TaskChildService):
        rows = ChildRows(links)

    task = make_task(client, alice, "Read up")
    with db_engine.connect() as conn:
        version = conn.execute(
            text("SELECT token_version FROM users WHERE id = :id"), {"id": alice.id}
        ).scalar_one()
    claims = TokenClaims(subject=alice.id, local=True, token_version=version)
    with UnitOfWork(db_engine, settings, claims=claims, counts_write=True) as work:
        row = work.service(TestLinkService).add(
            task, {"url": "https://example.com/a", "title": "A"}
        )
    with UnitOfWork(db_engine, settings, claims=claims, counts_write=True) as work:
        kept = work.service(TestLinkService).change(task, row.id, {"title": "Renamed"})
    assert (kept.url, kept.title) == ("https://example.com/a", "Renamed")
    with UnitOfWork(db_engine, settings, claims=claims, counts_write=True) as work:
        cleared = work.service(TestLinkService).change(task, row.id, {"title": None})
    assert (cleared.url, cleared.title) == ("https://example.com/a", None)


def _child_events(client: TestClient, account: Account, noun: str) -> dict[str, list[Any]]:
    """The `<noun>.*` entries `account` reads in the change feed (type, task, the task's title:
    an upsert of the unchanged task, the row named) and the activity (event, object type, its
    id, list)."""
    feed = client.get("/api/tasks/changes", params={"limit": 1000}, headers=account.headers)
    assert feed.status_code == 200, feed.text
    activity = client.get("/api/activity", params={"limit": 100}, headers=account.headers)
    assert activity.status_code == 200, activity.text
    return {
        "feed": [
            (c["type"], c["task_id"], c["task"] and c["task"]["title"], c["child"])
            for c in feed.json()["data"]
            if c["type"].startswith(f"{noun}.")
        ],
        "activity": [
            (a["event"], a["object_type"], a["object_id"], a["list_id"])
            for a in reversed(activity.json()["data"])
            if a["object_type"] == noun
        ],
    }


def test_a_new_child_records_its_events_for_whoever_reads_its_task(
    client: TestClient,
    alice: Account,
    bob: Account,
    register: Any,
    db_engine: Engine,
    throwaway_child: str,
) -> None:
    """Registered by its migration, a child's row added, its edited column changed and the row
    removed are `<noun>.created`, `.updated`, `.deleted` on its task, in the change feed and
    the activity of the task's owner and of a member of its list (the row's copy of its
    task's list), never of anyone else; each names the row (its kind and id, the deleted
    one's as it was)."""
    carol = register()
    list_id = make_list(client, alice)
    add_member(db_engine, alice, list_id, bob, "viewer")
    task = make_task(client, alice, "Read up", list_id=list_id)
    with db_engine.begin() as conn:
        link = conn.execute(
            text(
                f"INSERT INTO {throwaway_child} (user_id, task_id, list_id, url) "
                "VALUES (:owner, :task, :list, 'https://example.com/a') RETURNING id"
            ),
            {"owner": alice.id, "task": task, "list": list_id},
        ).scalar_one()
        conn.execute(
            text(f"UPDATE {throwaway_child} SET added_by = :bob WHERE id = :id"),
            {"bob": bob.id, "id": link},
        )  # not an edited column: no event
        conn.execute(
            text(f"UPDATE {throwaway_child} SET url = 'https://example.com/b' WHERE id = :id"),
            {"id": link},
        )
        conn.execute(text(f"DELETE FROM {throwaway_child} WHERE id = :id"), {"id": link})
    kinds = ["test_link.created", "test_link.updated", "test_link.deleted"]
    seen = {
        "feed": [(kind, task, "Read up", {"kind": "test_link", "id": link}) for kind in kinds],
        "activity": [(kind, "test_link", link, list_id) for kind in kinds],
    }
    assert _child_events(client, alice, "test_link") == seen
    assert _child_events(client, bob, "test_link") == seen
    assert _child_events(client, carol, "test_link") == {"feed": [], "activity": []}
    with db_engine.connect() as conn:
        changes = conn.execute(
            text("SELECT changes FROM task_events WHERE type = 'test_link.updated'")
        ).scalar_one()
    assert changes == {"url": ["https://example.com/a", "https://example.com/b"]}


# What prints the table of specs/data-model.md's "A task's children" to paste.
REGENERATE = (
    'python -c "from tests.test_task_children import children_table; '
    "print(children_table(), end='')\""
)


def children_table() -> str:
    """The table of the children in specs/data-model.md, from the declarations."""
    lines = [
        "| child | routes under `/api/tasks/{task_id}/` | read / write | per task | events |",
        "|---|---|---|---|---|",
    ]
    for child in CHILDREN:
        routes = f"`{child.path}`" if child.path else "none"
        actions = "-"
        if child.read is not None and child.write is not None:
            actions = f"`{child.read.value}` / `{child.write.value}`"
        events = ", ".join(f"`{kind}`" for kind in child.event_types) or "none"
        limit = f"{child.per_task:,}" if child.per_task else "-"
        lines.append(f"| `{child.name}` | {routes} | {actions} | {limit} | {events} |")
    return "\n".join(lines) + "\n"


def test_the_children_in_data_model_md_are_the_declared_ones() -> None:
    """specs/data-model.md lists every declared child (its list went stale: two of four)."""
    spec = (Path(__file__).resolve().parent.parent / "specs" / "data-model.md").read_text()
    assert children_table() in spec, (
        "specs/data-model.md's table of a task's children is not the declared one: replace it "
        f'(under "A task\'s children") with the output of\n  {REGENERATE}\n'
    )


def test_a_members_own_reminders_record_no_event(
    client: TestClient, alice: Account, bob: Account, db_engine: Engine
) -> None:
    """`TaskChild(events=False)`: a member's reminders are its own, no one else's to see."""
    list_id = make_list(client, alice)
    add_member(db_engine, alice, list_id, bob, "editor")
    task = make_task(client, alice, "Call", list_id=list_id, due_date="2030-01-01T09:00:00Z")
    last = text("SELECT coalesce(max(id), 0) FROM task_events")
    with db_engine.connect() as conn:
        before = conn.execute(last).scalar_one()
    reminded = client.patch(
        f"/api/tasks/{task}", json={"reminders": [{"minutes_before_due": 30}]}, headers=bob.headers
    )
    assert reminded.status_code == 200, reminded.text
    with db_engine.connect() as conn:
        rows = conn.execute(
            text("SELECT count(*) FROM task_member_reminders WHERE member_id = :bob"),
            {"bob": bob.id},
        ).scalar_one()
        recorded = conn.execute(
            text("SELECT type, object FROM task_events WHERE id > :before"), {"before": before}
        ).all()
    assert rows == 1
    assert [row for row in recorded if row.object is not None] == []
