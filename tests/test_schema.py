"""The migrated database and the SQLModel models describe the same schema; migrations roll
back and forward cleanly."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg2
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, create_engine, inspect, text
from sqlalchemy.engine import make_url
from sqlmodel import SQLModel

import backend.models  # noqa: F401  (registers the tables)
from backend.db.engine import libpq_url, normalize_url
from backend.db.migrations import migrate_down, migrate_up, migration_ids, migration_status
from backend.models import TaskPublic
from scripts import schema as schema_file


def _ignore_bookkeeping(
    obj: object, name: str | None, type_: str, reflected: bool, compare_to: object
) -> bool:
    # yoyo keeps its bookkeeping in _yoyo_* tables and yoyo_lock.
    return not (type_ == "table" and name is not None and "yoyo" in name)


def test_migrated_schema_matches_models(db_engine: Engine) -> None:
    with db_engine.connect() as conn:
        context = MigrationContext.configure(
            conn,
            opts={"compare_type": True, "include_object": _ignore_bookkeeping},
        )
        diff = compare_metadata(context, SQLModel.metadata)
    assert diff == []


def test_expected_indexes_and_constraints_exist(db_engine: Engine) -> None:
    inspector = inspect(db_engine)
    indexes = {ix["name"] for ix in inspector.get_indexes("tasks")}
    assert indexes == {
        "ix_tasks_user_id_created_at_id",
        "ix_tasks_user_id_completed_created_at_id",
        "ix_tasks_user_id_lower_title_id",
        "ix_tasks_user_id_updated_at_id",
        "ix_tasks_user_id_priority_id",
        "ix_tasks_user_id_due_date_asc_id",
        "ix_tasks_user_id_due_date_desc_id",
        "ix_tasks_user_id_tags",
        # One next occurrence per occurrence (0009): the unique constraint's index.
        "uq_tasks_previous_task_id",
        # What a same-user reference points at (0013, tests/test_references.py).
        "uq_tasks_user_id_id",
        # One task per place among its siblings; a list's page in manual order (0017).
        "uq_tasks_user_id_list_id_parent_id_position",
        # A task's subtasks (0017).
        "ix_tasks_user_id_parent_id",
    }
    checks = {c["name"] for c in inspector.get_check_constraints("tasks")}
    assert {
        "ck_tasks_title_length",
        "ck_tasks_title_trimmed",
        "ck_tasks_description_length",
        "ck_tasks_completed_at_matches",
        "ck_tasks_recurrence_length",
        "ck_tasks_time_zone_length",
        "ck_tasks_reminders_array",
        "ck_tasks_recurrence_series",
        "ck_tasks_next_due_date_later",
    } <= checks
    keys = {fk["name"]: fk for fk in inspector.get_foreign_keys("tasks")}
    assert set(keys) == {
        "fk_tasks_user_id_users",
        # Same-user keys to the list and the parent (0017): deleting either deletes the task.
        "fk_tasks_user_id_list_id_task_lists",
        "fk_tasks_user_id_parent_id_tasks",
    }
    assert all(fk["options"]["ondelete"] == "CASCADE" for fk in keys.values())


@pytest.mark.parametrize(
    "statement",
    [
        "INSERT INTO tasks (user_id, title) VALUES ('u1', '')",
        "INSERT INTO tasks (user_id, title) VALUES ('u1', ' padded ')",
        "INSERT INTO tasks (user_id, title) VALUES ('u1', repeat('x', 201))",
        "INSERT INTO tasks (user_id, title, description) VALUES ('u1', 'ok', repeat('x', 2001))",
        "INSERT INTO tasks (user_id, title, completed) VALUES ('u1', 'ok', true)",
        "INSERT INTO tasks (user_id, title, completed_at) VALUES ('u1', 'ok', now())",
        "INSERT INTO tasks (id, user_id, title) VALUES (5, 'u1', 'ok')",
        "INSERT INTO tasks (user_id, title) VALUES ('no-such-user', 'ok')",
        "INSERT INTO users (id, email) VALUES ('u2', 'Upper@Example.com')",
        "INSERT INTO tasks (user_id, title, priority) VALUES ('u1', 'ok', 'urgent')",
        "INSERT INTO tasks (user_id, title, tags) "
        "VALUES ('u1', 'ok', array_fill('t'::text, ARRAY[21]))",
        "INSERT INTO tasks (user_id, title, tags) VALUES ('u1', 'ok', ARRAY[NULL]::text[])",
        # Recurrence (0009): a rule needs a due date and a whole series; limits on the text.
        "INSERT INTO tasks (user_id, title, recurrence) VALUES ('u1', 'ok', 'FREQ=DAILY')",
        "INSERT INTO tasks (user_id, title, recurrence, due_date, series_id, series_start) "
        "VALUES ('u1', 'ok', repeat('x', 501), now(), gen_random_uuid(), now())",
        "INSERT INTO tasks (user_id, title, series_start) VALUES ('u1', 'ok', now())",
        "INSERT INTO tasks (user_id, title, next_due_date) VALUES ('u1', 'ok', now())",
        "INSERT INTO tasks (user_id, title, recurrence, due_date, series_id, series_start, "
        "next_due_date) VALUES ('u1', 'ok', 'FREQ=DAILY', now(), gen_random_uuid(), now(), "
        "now() - interval '1 day')",
        "INSERT INTO tasks (user_id, title, time_zone) VALUES ('u1', 'ok', '')",
        "INSERT INTO tasks (user_id, title, reminders) VALUES ('u1', 'ok', '{}')",
        "INSERT INTO tasks (user_id, title, reminders) "
        "VALUES ('u1', 'ok', '[{}, {}, {}, {}, {}, {}]')",
    ],
)
def test_database_constraints_back_up_the_api_limits(db_engine: Engine, statement: str) -> None:
    with db_engine.begin() as conn:
        conn.execute(text("INSERT INTO users (id) VALUES ('u1')"))
    with (
        pytest.raises(Exception, match=r"violates|cannot insert|invalid input value"),
        db_engine.begin() as conn,
    ):
        conn.execute(text(statement))


@contextmanager
def scratch_database(database_url: str, name: str) -> Iterator[str]:
    """A new, empty database on the test server (dropped afterwards); yields its URL."""
    admin = psycopg2.connect(libpq_url(database_url))
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        cur.execute(f"CREATE DATABASE {name}")
    url = make_url(libpq_url(database_url)).set(database=name)
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.close()


def _migrated_up_to(scratch: str, last: str) -> list[str]:
    """The schema as it was when `last` was the newest migration: all the way up, then
    every later one rolled back (which the rollback files must allow). Returns those."""
    migrate_up(scratch)
    later = [m for m in sorted(migration_ids()) if m > last]
    assert migrate_down(scratch, steps=len(later)) == later[::-1]
    return later


def test_migrations_roll_back_and_reapply(database_url: str) -> None:
    """On a scratch database: up, down all the way, up again."""
    with scratch_database(database_url, "task_api_migrations") as scratch:
        shipped = sorted(migration_ids())
        assert migrate_up(scratch) == shipped
        assert migrate_up(scratch) == []
        assert migration_status(scratch).pending == []
        assert migrate_down(scratch, steps=len(shipped)) == shipped[::-1]
        engine = create_engine(normalize_url(scratch))
        with engine.connect() as conn:
            assert not inspect(conn).has_table("tasks")
            assert not inspect(conn).has_table("users")
        engine.dispose()
        assert migration_status(scratch).pending == shipped
        assert migrate_up(scratch) == shipped


def test_changes_recorded_before_recurrence_still_render(database_url: str) -> None:
    """A change recorded by 0008, before 0009 added columns to tasks, is read by today's
    feed (0010 gave its task the columns 0009 added; a column added later is read with its
    declared default, `TaskPublic.from_stored`)."""
    from tests.changes.test_outbox import events

    with scratch_database(database_url, "task_api_upgrade") as scratch:
        later = _migrated_up_to(scratch, "0008_task_events")
        engine = create_engine(normalize_url(scratch))
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO users (id) VALUES ('u1')"))
            conn.execute(text("INSERT INTO tasks (user_id, title) VALUES ('u1', 'old')"))
        assert migrate_up(scratch) == later
        [change] = events(engine)
        task = TaskPublic.from_stored(change["task"])
        assert (task.title, task.recurrence, task.time_zone, task.reminders) == (
            "old",
            None,
            "UTC",
            [],
        )
        engine.dispose()


def test_text_migration_normalizes_stored_text_and_keeps_it_readable(database_url: str) -> None:
    """0012 (the text rule, issue 25 item 6): rows written before it are normalized to NFC, as
    an ordinary change (new version, an `updated` change recorded); text the rule now refuses
    stays, and both it and the changes recorded before are still read by `TaskPublic`."""
    from tests.changes.test_outbox import events

    nfd, nfc = "e\u0301", "\u00e9"
    rows = {
        "decomposed": (f"caf{nfd}", f"line\n{nfd}", [nfd, nfc, "x", f"x{nfd}"]),
        "refused now": ("ring\u0007bell", "bidi \u202e", ["\u200b"]),
        "too long in NFC": ("\u0958" * 150, None, []),
        "already NFC": (f"caf{nfc}", None, [nfc]),
    }
    with scratch_database(database_url, "task_api_text") as scratch:
        later = _migrated_up_to(scratch, "0011_task_events_dead")
        engine = create_engine(normalize_url(scratch))
        ids = {}
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO users (id) VALUES ('u1'), ('u2')"))
            for label, (title, description, tags) in rows.items():
                owner = "u2" if label == "already NFC" else "u1"
                ids[label] = conn.execute(
                    text(
                        "INSERT INTO tasks (user_id, title, description, tags) "
                        "VALUES (:owner, :title, :description, :tags) RETURNING id"
                    ),
                    {"owner": owner, "title": title, "description": description, "tags": tags},
                ).scalar_one()
        recorded = events(engine)
        assert migrate_up(scratch) == later
        with engine.connect() as conn:
            stored = {row.id: row for row in conn.execute(text("SELECT * FROM tasks ORDER BY id"))}
        changed = stored[ids["decomposed"]]
        assert (changed.title, changed.description, changed.tags, changed.version) == (
            f"caf{nfc}",
            f"line\n{nfc}",
            [nfc, "x", f"x{nfc}"],
            2,
        )
        for label in ("refused now", "too long in NFC", "already NFC"):
            row = stored[ids[label]]
            assert (row.title, row.description, row.tags, row.version) == (
                *rows[label],
                1,
            ), label
        # One `updated` change, for the normalized task only; every change renders.
        new = events(engine)[len(recorded) :]
        assert [(e["type"], e["task_id"]) for e in new] == [("updated", ids["decomposed"])]
        for change in events(engine):
            TaskPublic.from_stored(change["task"])
        for row in stored.values():
            TaskPublic.model_validate(row)
        engine.dispose()


def test_lists_migration_leaves_tasks_where_they_were(database_url: str) -> None:
    """0017 (issue 24): existing tasks are in no list, top level, and in the order the default
    listing shows them (newest first) by `position`; the backfill changes no version and
    records no change; a change recorded before it reads the new fields with their defaults."""
    from tests.changes.test_outbox import events

    with scratch_database(database_url, "task_api_lists") as scratch:
        later = _migrated_up_to(scratch, "0014_request_entry")
        engine = create_engine(normalize_url(scratch))
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO users (id) VALUES ('u1'), ('u2')"))
            for n, (user, age) in enumerate(
                [("u1", 3), ("u1", 1), ("u2", 5), ("u1", 2), ("u1", 1)]
            ):
                conn.execute(
                    text(
                        "INSERT INTO tasks (user_id, title, created_at) "
                        "VALUES (:u, :t, now() - make_interval(days => :age))"
                    ),
                    {"u": user, "t": f"task {n}", "age": age},
                )
            recorded = conn.execute(text("SELECT count(*) FROM task_events")).scalar_one()
        assert migrate_up(scratch) == later
        with engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT user_id, title, list_id, parent_id, position, version FROM tasks "
                    "ORDER BY user_id, position"
                )
            ).all()
            assert conn.execute(text("SELECT count(*) FROM task_events")).scalar_one() == recorded
        by_user = {
            user: [(r.title, r.position) for r in rows if r.user_id == user]
            for user in ("u1", "u2")
        }
        # Newest first; of two created at once, the higher id first (the listing's tie-break).
        assert by_user["u1"] == [
            ("task 4", 65536),
            ("task 1", 131072),
            ("task 3", 196608),
            ("task 0", 262144),
        ]
        assert by_user["u2"] == [("task 2", 65536)]
        assert all(r.list_id is None and r.parent_id is None and r.version == 1 for r in rows)
        old = TaskPublic.from_stored(events(engine)[0]["task"])
        assert (old.list_id, old.parent_id, old.position, old.subtask_count) == (
            None,
            None,
            0,
            None,
        )
        engine.dispose()


def test_chat_feed_urls_migration_withholds_them_as_the_chat_does(database_url: str) -> None:
    """0054 (issue 61 review, F1): a `create_calendar_feed` call stored with its URL before
    the chat withheld it is rewritten exactly as `withheld_call` reads it (`url` replaced by
    `url_withheld`); every other call, and a call stored since, stay as they were."""
    import json

    from backend.mcp.tools import withheld_call

    token = "T0ken" * 8
    calls = [
        {
            "name": "add_task",
            "arguments": {"title": "x"},
            "outcome": "ok",
            "error_code": None,
            "result": {"task_id": 1, "status": "created", "title": "x"},
        },
        {
            "name": "create_calendar_feed",
            "arguments": {},
            "outcome": "ok",
            "error_code": None,
            "result": {
                "feed_id": 7,
                "status": "created",
                "kind": "events",
                "list_id": None,
                "url": f"https://tasks.example/api/calendar/{token}.ics",
            },
        },
        {
            "name": "create_calendar_feed",
            "arguments": {"list_id": 9},
            "outcome": "error",
            "error_code": "NOT_FOUND",
            "result": {"error": {"code": "NOT_FOUND"}},
        },
    ]
    since = [withheld_call(calls[1])]
    with scratch_database(database_url, "task_api_feed_urls") as scratch:
        later = _migrated_up_to(scratch, "0053_task_children_follow")
        engine = create_engine(normalize_url(scratch))
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO users (id) VALUES ('u1')"))
            conversation = conn.execute(
                text("INSERT INTO conversations (user_id) VALUES ('u1') RETURNING id")
            ).scalar_one()
            asked = conn.execute(
                text(
                    "INSERT INTO messages (user_id, conversation_id, role, content) "
                    "VALUES ('u1', :c, 'user', 'hi') RETURNING id"
                ),
                {"c": conversation},
            ).scalar_one()
            for stored, reply_to in ((calls, asked), (since, None), (None, None)):
                conn.execute(
                    text(
                        "INSERT INTO messages (user_id, conversation_id, role, content, "
                        "tool_calls, reply_to) VALUES ('u1', :c, :role, 'ok', "
                        "CAST(:calls AS jsonb), :reply_to)"
                    ),
                    {
                        "c": conversation,
                        "role": "user" if reply_to is None else "assistant",
                        "calls": None if stored is None else json.dumps(stored),
                        "reply_to": reply_to,
                    },
                )
        assert migrate_up(scratch) == later
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT tool_calls FROM messages ORDER BY id")).scalars()
            after = list(rows)
        engine.dispose()
    assert after == [None, [withheld_call(call) for call in calls], since, None]
    assert token not in json.dumps(after)
    assert "url_withheld" in after[1][1]["result"] and after[1][1] != calls[1]


def test_schema_file_is_what_the_migrations_build(database_url: str) -> None:
    """specs/schema.sql (the schema to read instead of 41 migrations) is regenerated with the
    migrations: a scratch database migrated from nothing dumps to exactly its text. The session
    database is not used: tests add triggers and indexes to it."""
    with scratch_database(database_url, "task_api_schema_file") as scratch:
        migrate_up(scratch)
        built = schema_file.render(scratch)
    committed = schema_file.SCHEMA_FILE.read_text()
    assert built == committed, (
        "specs/schema.sql is not what the migrations build: run `python -m scripts.schema`\n"
        + schema_file.difference(committed, built)
    )
    # It holds what one reads it for: the live body of a function redefined by five migrations.
    assert "CREATE FUNCTION public.task_api_enter(" in committed
    assert "CREATE TRIGGER" in committed and "_yoyo" not in committed


def test_schema_file_keeps_out_what_varies_between_dumps() -> None:
    dump = (
        "--\n-- PostgreSQL database dump\n--\n\n\\restrict AbC\n\n-- Dumped from database version"
        " 18.6\n-- Dumped by pg_dump version 18.6\n\nSET lock_timeout = 0;\n\n--\n-- Name: t;"
        " Type: TABLE; Schema: public; Owner: -\n--\n\nCREATE TABLE public.t (\n    id integer"
        "   \n);\n\n\n\n--\n-- PostgreSQL database dump complete\n--\n\n\\unrestrict AbC\n\n"
    )
    text = schema_file.normalize(dump, "0001_x")
    assert text.startswith(schema_file.HEADER.format(last="0001_x"))
    assert text.endswith(
        "\n--\n-- Name: t; Type: TABLE; Schema: public; Owner: -\n--\n\n"
        "CREATE TABLE public.t (\n    id integer\n);\n"
    )
    for varying in ("restrict", "Dumped", "SET lock_timeout", "complete"):
        assert varying not in text


def test_dav_objects_within_migration_marks_completions_sent_inside_a_series(
    database_url: str,
) -> None:
    """0094 (issue 70): a completion made before it in the override form (an unserved kept
    object with a RECURRENCE-ID whose UID the served object of its series holds) is marked
    `within`; a Tasks.org completion (no override), another series' object unserved for its
    UID, and served objects stay as they were."""
    series = "'00000000-0000-0000-0000-00000000000a'"
    other = "'00000000-0000-0000-0000-00000000000b'"
    rule = "'FREQ=WEEKLY'"
    body = "BEGIN:VCALENDAR\r\nBEGIN:VTODO\r\nUID:{uid}\r\nEND:VTODO\r\n{more}END:VCALENDAR\r\n"
    override = "BEGIN:VTODO\r\nUID:{uid}\r\nRECURRENCE-ID:20261207T090000Z\r\nEND:VTODO\r\n"
    # (task, series, completed, kept object: uid, name, with an override), inserted in this
    # order: the first holds the UID and is served, the others are not (0069's trigger).
    rows = [
        (2, series, False, ("s", "s.ics", True)),  # the series' object
        (1, series, True, ("s", "s.ics", True)),  # the override form's completion
        (3, series, True, ("s", "s-old.ics", False)),  # Tasks.org's: no override
        (4, other, False, ("s", "o.ics", True)),  # another series' object, a clashing UID
    ]
    with scratch_database(database_url, "task_api_dav_within") as scratch:
        later = _migrated_up_to(scratch, "0091_reminder_deliveries")
        engine = create_engine(normalize_url(scratch))
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO users (id) VALUES ('u1')"))
            for task, in_series, completed, (uid, name, more) in rows:
                conn.execute(
                    text(
                        "INSERT INTO tasks (id, user_id, title, completed, completed_at, "
                        "due_date, recurrence, series_id, series_start, position) "
                        "OVERRIDING SYSTEM VALUE "
                        f"VALUES (:id, 'u1', 'Bins', :done, CASE WHEN :done THEN now() END, "
                        f"'2026-12-07T09:00Z', {rule}, {in_series}::uuid, '2026-11-30T09:00Z', "
                        ":id)"
                    ),
                    {"id": task, "done": completed},
                )
                text_ = body.format(uid=uid, more=override.format(uid=uid) if more else "")
                conn.execute(
                    text(
                        "INSERT INTO task_dav_objects (user_id, task_id, uid, name, body) "
                        "VALUES ('u1', :t, :u, :n, :b)"
                    ),
                    {"t": task, "u": uid, "n": name, "b": text_},
                )
        assert migrate_up(scratch) == later
        with engine.connect() as conn:
            marked = conn.execute(
                text("SELECT task_id, served, within FROM task_dav_objects ORDER BY task_id")
            ).all()
        engine.dispose()
    assert [tuple(row) for row in marked] == [
        (1, False, True),
        (2, True, False),
        (3, False, False),
        (4, False, False),
    ]
