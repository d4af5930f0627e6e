"""A user's row points only at that user's rows (specs/data-model.md, "References between
rows"), enforced by the database: every reference from one per-user table to another is a
foreign key on `(user_id, <ref>)` to the target's `(user_id, id)`.

The per-user tables are read from the database (every table with a `user_id` column), so a
new table, or a new `<name>_id` column on one (a list, a parent task), is checked without
anyone listing it: it must be such a key, or say on its column why it is none
(`info=not_a_reference("why")`).
"""

from __future__ import annotations

from typing import NamedTuple

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text
from sqlalchemy.exc import IntegrityError
from sqlmodel import SQLModel

import backend.models  # noqa: F401  (every table, found: their columns' declarations)
from backend.errors import ACCOUNT_KEY_SUFFIXES
from backend.models.references import NOT_A_REFERENCE
from backend.models.task_children import CHILDREN
from tests.conftest import ROOT, Account


def not_references() -> dict[tuple[str, str], str]:
    """Columns that name a row but are not references a client can set, with why they need no
    key: declared on the column (`Column(..., info=not_a_reference("why"))`,
    backend/models/references.py), read here from every table."""
    return {
        (table.name, column.name): column.info[NOT_A_REFERENCE]
        for table in SQLModel.metadata.tables.values()
        for column in table.columns
        if NOT_A_REFERENCE in column.info
    }


NOT_REFERENCES = not_references()


# A task's child is reached through its task (its `(user_id, task_id)` key): a `list_id` on
# one is a copy of its task's list, never set by a client, kept for the plans of its reads;
# specs/data-model.md ("A task's children") says why each child that keeps one does.
CHILD_COPIES = {
    (child.name, "list_id"): "a copy of its task's list: specs/data-model.md, \"A task's children\""
    for child in CHILDREN
    if "list_id" in child.table.__table__.columns  # type: ignore[attr-defined]
}


# A child's `author` (`TaskChild.author`: who added the row, the caller on insert) names an
# account, not a row of the owner's: declared, it needs no line above (checked where its name
# is an id column's, `<name>_id`).
CHILD_AUTHORS = {
    (child.name, child.author): "an account: who added the row (`TaskChild.author`)"
    for child in CHILDREN
    if child.author is not None and child.author.endswith("_id")
}


def _children_section() -> str:
    """The section's text, its lines joined (a phrase may wrap anywhere)."""
    text_ = (ROOT / "specs" / "data-model.md").read_text()
    return " ".join(text_.split("## A task's children", 1)[1].split("\n## ", 1)[0].split())


# What the data model's section says of every child that keeps a `list_id`, once for all.
COPY_STATEMENT = (
    "Every child whose table has a `list_id` column keeps in it a copy of its task's list, "
    "never set by a client: `tasks_move_children` (migration 0053) rewrites it in every such "
    "child"
)


def test_the_specs_say_why_a_child_keeps_a_copied_list_id() -> None:
    """No hand exemption for a child's copy, and no line per child: the data model's section
    on a task's children says once, for every child with one, what the copy is and why (the
    copy's reason is the spec's, not a test's); the next test checks each child does so."""
    assert COPY_STATEMENT in _children_section()


@pytest.mark.parametrize("table", [t for t, _ in CHILD_COPIES] or [None])
def test_a_childs_copied_list_id_is_what_the_specs_say(
    client: TestClient, db_engine: Engine, alice: Account, table: str | None
) -> None:
    """No client writes the copy (no field of the child's is `list_id`), and it follows its
    task from one list to another and out of any (the trigger reads the registry)."""
    if table is None:
        pytest.skip("no child keeps a list_id")
    from tests.sharing.helpers import make_list, make_task

    child = next(c for c in CHILDREN if c.name == table)
    assert "list_id" not in child.fields
    first, second = make_list(client, alice, "One"), make_list(client, alice, "Two")
    task_id = make_task(client, alice, "Moves", list_id=first)
    columns = child.table.__table__.columns  # type: ignore[attr-defined]
    row = {"user_id": alice.id, "task_id": task_id, "list_id": first, **child.sample}
    for column in columns:  # every user column the owner's (an author, say)
        if any(key.column.table.name == "users" for key in column.foreign_keys):
            row[column.name] = alice.id
    with db_engine.begin() as conn:
        conn.execute(child.table.__table__.insert().values(**row))  # type: ignore[attr-defined]
    copies = text(f"SELECT list_id FROM {table} WHERE task_id = :task")
    for list_id in (second, None):
        moved = client.patch(
            f"/api/tasks/{task_id}", json={"list_id": list_id}, headers=alice.headers
        )
        assert moved.status_code == 200, moved.text
        with db_engine.connect() as conn:
            assert list(conn.execute(copies, {"task": task_id}).scalars()) == [list_id]


_PER_USER_TABLES = text(
    "SELECT table_name FROM information_schema.columns "
    "WHERE table_schema = 'public' AND column_name = 'user_id'"
)
_ID_COLUMNS = text(
    "SELECT table_name, column_name FROM information_schema.columns "
    "WHERE table_schema = 'public' AND column_name LIKE '%\\_id' AND column_name <> 'user_id'"
)
# Every foreign key with its columns and the target's, in key order.
_FOREIGN_KEYS = text(
    """
    SELECT c.conname, src.relname, dst.relname,
           ARRAY(SELECT a.attname FROM unnest(c.conkey) WITH ORDINALITY k(n, i)
                 JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n ORDER BY k.i),
           ARRAY(SELECT a.attname FROM unnest(c.confkey) WITH ORDINALITY k(n, i)
                 JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.n ORDER BY k.i)
    FROM pg_constraint c
    JOIN pg_class src ON src.oid = c.conrelid
    JOIN pg_class dst ON dst.oid = c.confrelid
    JOIN pg_namespace ns ON ns.oid = src.relnamespace AND ns.nspname = 'public'
    WHERE c.contype = 'f'
    """
)


class ForeignKey(NamedTuple):
    name: str
    source: str
    target: str
    columns: list[str]
    target_columns: list[str]


def _schema(engine: Engine) -> tuple[set[str], set[tuple[str, str]], list[ForeignKey]]:
    with engine.connect() as conn:
        per_user = set(conn.execute(_PER_USER_TABLES).scalars())
        id_columns = {(table, column) for table, column in conn.execute(_ID_COLUMNS)}
        keys = [ForeignKey(*row) for row in conn.execute(_FOREIGN_KEYS)]
    return per_user, id_columns, keys


def test_every_reference_between_per_user_rows_is_a_same_user_key(db_engine: Engine) -> None:
    per_user, id_columns, keys = _schema(db_engine)
    assert {"tasks", "task_reminders", "idempotency_keys"} <= per_user
    # A key between per-user tables includes the owner on both sides.
    wrong = [
        (name, source, columns, target, target_columns)
        for name, source, target, columns, target_columns in keys
        if source in per_user
        and target in per_user
        and not (columns[0] == "user_id" and target_columns == ["user_id", "id"])
    ]
    assert not wrong, f"keys between per-user tables without (user_id, ...): {wrong}"
    # Every `<name>_id` column of a per-user table is such a key, or exempt for a reason.
    keyed = {
        (source, columns[1])
        for _, source, target, columns, _ in keys
        if source in per_user and target in per_user and len(columns) == 2
    }
    unkeyed = {
        (table, column)
        for table, column in id_columns
        if table in per_user and column != "id" and (table, column) not in keyed
    }
    exempt = set(NOT_REFERENCES) | set(CHILD_COPIES) | set(CHILD_AUTHORS)
    assert unkeyed == exempt, (
        f"per-user reference columns without a same-user key: {unkeyed - exempt}; "
        f"exemptions that no longer apply: {exempt - unkeyed}"
    )
    # The keys of today's references, so the checks above are not vacuous.
    assert {("task_reminders", "task_id"), ("tasks", "list_id"), ("tasks", "parent_id")} <= keyed


def test_the_database_refuses_a_row_pointing_at_another_users_row(
    client: TestClient, db_engine: Engine, alice: Account, bob: Account
) -> None:
    created = client.post("/api/tasks", json={"title": "alice's"}, headers=alice.headers)
    assert created.status_code == 201, created.text
    alices_task = created.json()["data"]["id"]
    insert = text(
        "INSERT INTO task_reminders (task_id, user_id, remind_at) VALUES (:task, :user, now())"
    )
    with pytest.raises(IntegrityError) as refused, db_engine.begin() as conn:
        conn.execute(insert, {"task": alices_task, "user": bob.id})
    assert "fk_task_reminders_user_id_task_id_tasks" in str(refused.value)
    # The same row for its owner is accepted (the key refuses the owner, not the row).
    with db_engine.begin() as conn:
        conn.execute(insert, {"task": alices_task, "user": alice.id})
        conn.execute(text("DELETE FROM task_reminders WHERE task_id = :t"), {"t": alices_task})


def test_every_key_to_users_is_recognised_as_the_account_key(db_engine: Engine) -> None:
    """A write racing its account's deletion is a 401 on any per-user table: the mapping
    recognises the key by the naming convention, so every key to `users` must follow it."""
    with db_engine.connect() as conn:
        names = set(
            conn.execute(
                text(
                    "SELECT c.conname FROM pg_constraint c "
                    "WHERE c.contype = 'f' AND c.confrelid = 'users'::regclass"
                )
            ).scalars()
        )
    assert {"fk_tasks_user_id_users", "fk_idempotency_keys_user_id_users"} <= names
    assert all(name.endswith(ACCOUNT_KEY_SUFFIXES) for name in names), names
