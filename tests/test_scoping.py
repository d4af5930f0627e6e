"""The one scope check (backend/db/scope_check.py): it sees every statement the app sends,
accepts the scoped ones and refuses the others before the database sees them, so a passing
suite means something. Statements are given as the sender compiles them (pyformat;
`%(owner)s` is the caller)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import (
    Engine,
    bindparam,
    delete,
    func,
    insert,
    literal,
    not_,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlmodel import col

from backend.db import scope_check
from backend.db.scope import OWNER, Scoped, owned
from backend.db.scope_check import Unscoped, problem, scoped_tables, unscoped
from backend.db.sender import Sender
from backend.models import Task
from backend.services.sharing import lists, members
from backend.services.statements import rules
from backend.services.tasks.task_sending import Step
from tests.conftest import Account, count_rows

CALLER = "alice-id"
_MINE = "tasks.user_id = %(owner)s"


@pytest.mark.parametrize(
    "statement",
    [
        f"SELECT tasks.id FROM tasks WHERE {_MINE} AND tasks.id = %(id)s",
        f"UPDATE tasks SET title = 'x' WHERE {_MINE} AND tasks.id = 1",
        "INSERT INTO tasks (user_id, title) VALUES (%(owner)s::VARCHAR, 'x') RETURNING tasks.id",
        # The one-message create: a data-modifying CTE.
        "WITH r AS (INSERT INTO tasks (user_id, title, position) VALUES (%(owner)s::VARCHAR, "
        "'x', 1), (%(owner)s, 'y', 2) RETURNING tasks.id, tasks.title) "
        "SELECT task_api_return(jsonb_agg(to_jsonb(r))) FROM r",
        # INSERT ... SELECT from the caller's rows (the owner or a scoped user_id).
        "INSERT INTO tasks (user_id, title, list_id) SELECT %(owner)s, 'x', task_lists.id "
        "FROM task_lists WHERE task_lists.user_id = %(owner)s AND task_lists.id = 3 "
        "RETURNING tasks.id",
        "INSERT INTO tasks (user_id, title) SELECT src.user_id, src.title FROM tasks AS src "
        "WHERE src.user_id = %(owner)s AND src.id = 1",
        # UPDATE ... FROM and DELETE ... USING, both sides scoped; a JOIN scoped in its ON.
        f"UPDATE tasks SET list_id = task_lists.id FROM task_lists WHERE {_MINE} AND "
        "task_lists.user_id = %(owner)s AND task_lists.id = 2",
        f"DELETE FROM tasks USING task_lists WHERE {_MINE} AND task_lists.user_id = %(owner)s",
        "SELECT t.id FROM tasks AS t JOIN task_lists AS l ON l.id = t.list_id AND "
        "l.user_id = %(owner)s WHERE t.user_id = %(owner)s",
        # Subqueries and UNION arms, each scoped at its own level.
        f"SELECT tasks.id FROM tasks WHERE {_MINE} AND tasks.id IN (SELECT child.parent_id "
        "FROM tasks AS child WHERE child.user_id = %(owner)s) UNION ALL SELECT task_lists.id "
        "FROM task_lists WHERE task_lists.user_id = %(owner)s",
        # A bulk operation: its steps bound (each checked when `Scoped._steps` rendered it).
        "SELECT task_api_steps(%(steps)s::TEXT[]) AS steps",
        "SELECT users.id, users.token_version FROM users WHERE users.id = %(id_1)s",
        # The two tables whose rows are the caller's by their `member_id` (a membership, a
        # member's own reminders), qualified or not.
        "SELECT m.list_id FROM list_members AS m WHERE m.member_id = %(owner)s",
        "DELETE FROM task_member_reminders WHERE task_id = 1 AND member_id = %(owner)s",
        # A literal `%` (compiled as `%%`) beside the parameters.
        f"SELECT tasks.id FROM tasks WHERE {_MINE} AND tasks.title LIKE '50%%'",
        # Functions of our own, raw text: no table is named.
        "SELECT task_api_idempotency_key(%(owner)s, %(key)s, %(lock)s, %(fingerprint)s)",
    ],
)
def test_scoped_statements_pass(statement: str) -> None:
    assert problem(statement) is None


@pytest.mark.parametrize(
    "statement",
    [
        # No predicate at all.
        "SELECT tasks.id FROM tasks WHERE tasks.id = 1",
        # A predicate naming another user, or another parameter than the caller's.
        "DELETE FROM tasks WHERE tasks.user_id = 'mallory' AND tasks.id = 1",
        "DELETE FROM tasks WHERE tasks.user_id = %(user_id)s AND tasks.id = 1",
        # The owner predicate widened by OR, or negated.
        f"SELECT tasks.id FROM tasks WHERE {_MINE} OR true",
        f"UPDATE tasks SET title = 'x' WHERE ({_MINE} OR tasks.id = 1) AND tasks.id > 0",
        f"SELECT tasks.id FROM tasks WHERE NOT ({_MINE})",
        # The outer statement scoped, its subquery not.
        "DELETE FROM idempotency_keys WHERE idempotency_keys.user_id = %(owner)s AND "
        "(user_id, key) IN (SELECT user_id, key FROM idempotency_keys WHERE expires_at < now())",
        # An insert for someone else: plain, in a data-modifying CTE, one row of several.
        "INSERT INTO tasks (user_id, title) VALUES ('mallory', 'x')",
        "INSERT INTO tasks (user_id, title) VALUES (%(user_id)s, 'x')",
        "WITH r AS (INSERT INTO tasks (user_id, title) VALUES ('mallory'::VARCHAR, 'x') "
        "RETURNING tasks.id) SELECT task_api_return(jsonb_agg(to_jsonb(r))) FROM r",
        "INSERT INTO tasks (user_id, title) VALUES (%(owner)s, 'x'), ('mallory', 'y')",
        "INSERT INTO idempotency_keys (key, fingerprint) VALUES ('k', 'f')",
        # INSERT ... SELECT of another user's id, or of an unscoped row's.
        "INSERT INTO tasks (user_id, title) SELECT 'mallory', 'x'",
        "INSERT INTO tasks (user_id, title) SELECT src.user_id, src.title FROM tasks AS src "
        "WHERE src.id = 1",
        # UPDATE ... FROM whose FROM table is unscoped (and DELETE ... USING).
        f"UPDATE tasks SET list_id = task_lists.id FROM task_lists WHERE {_MINE} "
        "AND task_lists.id = 2",
        f"DELETE FROM tasks USING task_lists WHERE {_MINE} AND task_lists.id = tasks.list_id",
        # A JOIN, a UNION arm, a CTE not scoped.
        "SELECT tasks.id FROM tasks JOIN task_lists ON task_lists.id = tasks.list_id "
        f"WHERE {_MINE}",
        f"SELECT tasks.id FROM tasks WHERE {_MINE} UNION SELECT task_lists.id FROM task_lists",
        f"WITH o AS (SELECT tasks.id FROM tasks) SELECT o.id FROM o, tasks WHERE {_MINE}",
        # Steps given as text in the statement: no one checked them.
        "SELECT task_api_steps(ARRAY['DELETE FROM tasks WHERE tasks.id = 2'])",
        # A second statement in the message, unscoped.
        "SELECT task_api_enter(%(owner)s); SELECT count(*) FROM tasks",
        # `member_id = <caller>` scopes those two tables only: on any other it is no scope.
        "SELECT t.id FROM tasks AS t WHERE t.member_id = %(owner)s",
        "DELETE FROM task_reminders WHERE member_id = %(owner)s",
        "SELECT t.id FROM list_members AS m JOIN tasks AS t ON t.list_id = m.list_id "
        "AND t.member_id = %(owner)s WHERE m.member_id = %(owner)s",
        # A change of owner (issue 49): an UPDATE that sets `user_id`, even to the caller (a
        # member would take a shared row into its own space), an upsert's too.
        f"UPDATE tasks SET user_id = 'mallory' WHERE {_MINE}",
        f"UPDATE tasks SET user_id = %(owner)s, title = 'x' WHERE {_MINE}",
        f"WITH w AS (UPDATE tasks SET user_id = %(to)s WHERE {_MINE} RETURNING tasks.id) "
        "SELECT w.id FROM w",
        "INSERT INTO tasks (user_id, title) VALUES (%(owner)s, 'x') ON CONFLICT (id) "
        "DO UPDATE SET user_id = 'mallory'",
        # Not SQL at all.
        "SELECT FROM WHERE",
    ],
)
def test_unscoped_statements_are_reported(statement: str) -> None:
    assert problem(statement) is not None


# Many callers (issue 64, `scope.each_caller`): `callers.owner` is a caller only in a SELECT
# whose own FROM holds `unnest(<bound arrays>) AS callers(owner, ...)`, the one `callers`.
_UNNEST = "unnest(CAST(%(callers_owner)s AS TEXT[]), CAST(%(callers_after)s AS BIGINT[]))"
_CALLERS = f"{_UNNEST} WITH ORDINALITY AS callers(owner, after, n)"
_THEIRS = "tasks.user_id = callers.owner"


@pytest.mark.parametrize(
    "statement",
    [
        f"SELECT callers.n, t.id FROM {_CALLERS} JOIN LATERAL (SELECT tasks.id FROM tasks "
        f"WHERE {_THEIRS} AND tasks.id > callers.after) AS t ON true",
        f"SELECT p.id FROM {_CALLERS}, LATERAL (SELECT m.list_id AS id FROM list_members AS m "
        "WHERE m.member_id = callers.owner) AS p",
        # Each level checked as for one caller: the membership's array too.
        f"SELECT t.id FROM {_UNNEST} AS callers(owner, after) CROSS JOIN LATERAL (SELECT "
        "tasks.id FROM tasks WHERE tasks.list_id = ANY(ARRAY(SELECT m.list_id FROM "
        "list_members AS m WHERE m.member_id = callers.owner))) AS t",
    ],
)
def test_a_statement_for_many_callers_binding_each_passes(statement: str) -> None:
    assert problem(statement) is None


@pytest.mark.parametrize(
    "statement",
    [
        # `callers` from a table, a subquery, a CTE, or an unnest of what is not bound.
        f"SELECT t.id FROM users AS callers(owner) JOIN LATERAL (SELECT tasks.id FROM tasks "
        f"WHERE {_THEIRS}) AS t ON true",
        f"SELECT t.id FROM (SELECT users.id AS owner FROM users) AS callers JOIN LATERAL "
        f"(SELECT tasks.id FROM tasks WHERE {_THEIRS}) AS t ON true",
        f"WITH callers AS (SELECT users.id AS owner FROM users) SELECT t.id FROM callers "
        f"JOIN LATERAL (SELECT tasks.id FROM tasks WHERE {_THEIRS}) AS t ON true",
        "SELECT t.id FROM unnest(ARRAY(SELECT users.id FROM users)) AS callers(owner) "
        f"JOIN LATERAL (SELECT tasks.id FROM tasks WHERE {_THEIRS}) AS t ON true",
        "SELECT t.id FROM unnest(ARRAY['mallory']) AS callers(owner) "
        f"JOIN LATERAL (SELECT tasks.id FROM tasks WHERE {_THEIRS}) AS t ON true",
        "SELECT t.id FROM unnest(%(owner)s) AS callers(owner) "
        f"JOIN LATERAL (SELECT tasks.id FROM tasks WHERE {_THEIRS}) AS t ON true",
        "SELECT t.id FROM generate_series(1, 2) AS callers(owner) "
        f"JOIN LATERAL (SELECT tasks.id FROM tasks WHERE {_THEIRS}) AS t ON true",
        # Its first column not `owner`; another column, an unqualified `owner`.
        f"SELECT t.id FROM {_UNNEST} AS callers(after, owner) JOIN LATERAL (SELECT tasks.id "
        f"FROM tasks WHERE {_THEIRS}) AS t ON true",
        f"SELECT t.id FROM {_CALLERS} JOIN LATERAL (SELECT tasks.id FROM tasks "
        "WHERE tasks.user_id = callers.after) AS t ON true",
        f"SELECT t.id FROM {_CALLERS} JOIN LATERAL (SELECT tasks.id FROM tasks "
        "WHERE tasks.user_id = owner) AS t ON true",
        # A second `callers` anywhere: shadowed, nothing is granted.
        f"SELECT t.id FROM {_CALLERS} JOIN LATERAL (SELECT tasks.id FROM tasks, "
        f"users AS callers WHERE {_THEIRS}) AS t ON true",
        f"SELECT t.id FROM {_CALLERS} JOIN LATERAL (SELECT tasks.id FROM tasks JOIN "
        f"(SELECT users.id AS owner FROM users) AS callers ON true WHERE {_THEIRS}) AS t ON true",
        # `callers` not in the statement's own FROM, but a subquery's.
        f"SELECT t.id FROM (SELECT callers.owner FROM {_CALLERS}) AS c JOIN LATERAL (SELECT "
        "tasks.id FROM tasks WHERE tasks.user_id = c.owner) AS t ON true",
        # Writes never: an UPDATE, a DELETE, an INSERT for many callers.
        f"UPDATE tasks SET title = 'x' FROM {_CALLERS} WHERE {_THEIRS}",
        f"DELETE FROM tasks USING {_CALLERS} WHERE {_THEIRS}",
        f"INSERT INTO tasks (user_id, title) SELECT callers.owner, 'x' FROM {_CALLERS}",
        # Beside it, a table read without any caller.
        f"SELECT t.id FROM {_CALLERS} JOIN LATERAL (SELECT tasks.id FROM tasks) AS t ON true",
    ],
)
def test_no_other_statement_gets_the_many_callers_allowance(statement: str) -> None:
    assert problem(statement) is not None


def test_the_feeds_page_for_many_callers_is_the_one_callers_checked() -> None:
    """The live reader's statement passes the check as compiled, and is the feed's page:
    with `callers.owner` read back as `:owner` and `callers.after` as `:after`, its
    lateral page is the one caller's page's SQL, character for character."""
    from sqlalchemy.dialects import postgresql

    from backend.services.history import changes

    dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
    assert unscoped(changes._PAGES) is None
    assert unscoped(changes._PAGE) is None
    many = str(changes._EACH.page.element.compile(dialect=dialect))
    one = str(changes._PAGE.compile(dialect=dialect))
    # The one caller's binds carry the casts of their comparisons; the row's columns are typed.
    untyped = lambda sql: re.sub(r"%\((owner|after)\)s(::\w+)?", r"%(\1)s", sql)
    read_back = (
        many.replace("callers.owner", "%(owner)s")
        .replace("callers.after", "%(after)s")
        # The planner's gate, decided by the memberships' arrays for a caller of a row.
        .replace("AND true AND", "AND task_api_member_planned(%(owner)s) AND")
    )
    assert "task_api_member_planned" not in many
    assert "callers.owner" in many
    assert untyped(read_back) == untyped(one)


def test_a_change_of_owner_passes_only_where_it_is_allowed() -> None:
    change = f"UPDATE tasks SET user_id = %(to)s WHERE {_MINE}"
    assert problem(change) is not None
    assert problem(change, owner_change=True) is None
    # Allowed to change owners is not allowed to skip the scope.
    assert problem("UPDATE tasks SET user_id = %(to)s", owner_change=True) is not None


def test_the_owner_changes_are_the_ones_rules_names() -> None:
    """The statements marked `changes_owner` are those backend/services/statements/rules.py
    `OWNER_CHANGES` names, each one an UPDATE that sets `user_id` (not a stale name)."""
    import importlib

    named = {}
    for name in rules.OWNER_CHANGES:
        module, attribute = name.rsplit(".", 1)
        named[name] = getattr(importlib.import_module(module), attribute)
    assert set(map(id, named.values())) == set(map(id, scope_check._OWNER_CHANGES))
    for name, statement in named.items():
        scope_check._OWNER_CHANGES.discard(statement)
        try:
            assert unscoped(statement) is not None, f"{name} changes no owner"
        finally:
            scope_check._OWNER_CHANGES.add(statement)
        assert unscoped(statement) is None, name
    assert set(rules.OWNER_CHANGES) == {"backend.services.sharing.members._TRANSFER"}
    assert members._TRANSFER in scope_check._OWNER_CHANGES


def test_the_scoped_tables_come_from_the_metadata() -> None:
    # Every table with a `user_id` column, with no list to keep up to date.
    assert {"tasks", "idempotency_keys", "task_events", "task_reminders"} <= scoped_tables()
    assert "users" not in scoped_tables()


def test_a_statement_is_parsed_once_per_text() -> None:
    sql = f"SELECT tasks.id FROM tasks WHERE {_MINE} AND tasks.id = %(parsed_once)s"
    before = problem.cache_info()
    for _ in range(3):
        assert problem(sql) is None
    after = problem.cache_info()
    assert (after.misses - before.misses, after.hits - before.hits) == (1, 2)
    assert after.maxsize is not None  # bounded


_ALIEN = Task.__table__.alias("other")  # type: ignore[attr-defined]
_OWNER_IS_CALLER = col(Task.user_id) == bindparam(OWNER)
_CTE_INSERT_OTHER = insert(Task).values(user_id="bob", title="x").returning(col(Task.id)).cte()
_CTE_UPDATE_UNOWNED = update(Task).values(title="x").returning(col(Task.id)).cte()


@pytest.mark.parametrize(
    "statement",
    [
        select(col(Task.id)),
        select(col(Task.id)).where(col(Task.user_id) == "alice-id"),
        owned(select(col(Task.id)), col(Task.user_id)).join(_ALIEN, _ALIEN.c.id == col(Task.id)),
        update(Task).values(title="x"),
        delete(Task).where(col(Task.id) == 1),
        insert(Task).values(user_id="alice-id", title="x"),
        text("SELECT count(*) FROM tasks"),
        # A raw statement that binds :owner, widened (issue 49: once accepted as text).
        text("SELECT count(*) FROM tasks WHERE tasks.user_id = :owner OR true"),
        select(col(Task.id)).where(or_(_OWNER_IS_CALLER, col(Task.id) == 1)),
        select(col(Task.id)).where(not_(_OWNER_IS_CALLER)),
        select(_CTE_INSERT_OTHER.c.id),
        select(_CTE_UPDATE_UNOWNED.c.id),
        insert(Task).from_select(["user_id", "title"], select(literal("bob"), literal("x"))),
        insert(Task).from_select(["user_id", "title"], select(col(Task.user_id), col(Task.title))),
        owned(update(Task), col(Task.user_id)).values(user_id=bindparam("to")),
        pg_insert(Task)
        .values(user_id=bindparam(OWNER), title="x")
        .on_conflict_do_update(index_elements=["id"], set_={"user_id": "bob"}),
    ],
    ids=[
        "select",
        "literal-owner",
        "unowned-join",
        "update",
        "delete",
        "insert",
        "text",
        "text-or-true",
        "or",
        "not",
        "cte-insert-other",
        "cte-update-unowned",
        "insert-select-other",
        "insert-select-unowned",
        "update-sets-user-id",
        "upsert-sets-user-id",
    ],
)
def test_the_executor_refuses_an_unscoped_statement(db_engine: Engine, statement: Any) -> None:
    # Refused before it reaches the database: a service cannot run one by mistake.
    with db_engine.connect() as conn, pytest.raises(Unscoped):
        service = Scoped(Sender(conn, ""), CALLER)
        (service._write if getattr(statement, "is_dml", False) else service._read)(statement)


@pytest.mark.parametrize(
    "statement",
    [
        owned(select(col(Task.id)), col(Task.user_id)).where(
            or_(col(Task.id) == 1, col(Task.id) == 2)
        ),
        select(
            insert(Task)
            .values(user_id=bindparam(OWNER), title="x")
            .returning(col(Task.id))
            .cte()
            .c.id
        ),
        select(
            owned(update(Task).values(title="x"), col(Task.user_id))
            .returning(col(Task.id))
            .cte()
            .c.id
        ),
        insert(Task).from_select(["user_id", "title"], select(bindparam(OWNER), literal("x"))),
        insert(Task).from_select(
            ["user_id", "title"],
            owned(select(col(Task.user_id), col(Task.title)), col(Task.user_id)),
        ),
        text("SELECT count(*) FROM tasks WHERE tasks.user_id = :owner AND tasks.id > :id"),
    ],
    ids=[
        "or-beside-owner",
        "cte-insert",
        "cte-update",
        "insert-select",
        "insert-select-own",
        "text",
    ],
)
def test_the_runtime_check_accepts_scoped_shapes(statement: Any) -> None:
    assert unscoped(statement) is None


def test_the_executor_runs_a_scoped_statement(db_engine: Engine) -> None:
    with db_engine.connect() as conn:
        count = owned(select(func.count()).select_from(Task), col(Task.user_id))
        assert Scoped(Sender(conn, ""), CALLER)._read(count).scalar() == 0


def test_a_bulk_steps_statement_and_its_reason_are_checked_before_sending(
    db_engine: Engine,
) -> None:
    """`TaskSending._steps` (the task service's own mode, beside it in backend/services/)
    checks each step's statement and its `reason` as `_read` does: either unscoped refuses the
    whole message before anything is sent."""
    from backend.services.tasks.task_sending import TaskSending

    scoped = owned(select(col(Task.id)), col(Task.user_id)).where(col(Task.id) == 1)
    unscoped_ = select(literal("x")).where(col(Task.id) == 1)
    with db_engine.connect() as conn:
        service = TaskSending(Sender(conn, ""), CALLER)
        for step in (Step(unscoped_, {}, 1), Step(scoped, {}, 1, reason=unscoped_)):
            with pytest.raises(Unscoped):
                service._steps([step])


def test_a_known_scoped_shape_does_not_vouch_for_an_unscoped_one(db_engine: Engine) -> None:
    """The sender remembers the statements it compiled and checked (by object and value
    names); a statement that differs only in the owner predicate is another one, checked
    again."""
    scoped = owned(select(col(Task.id)), col(Task.user_id)).where(col(Task.id) == 1)
    literal = select(col(Task.id)).where(col(Task.user_id) == CALLER, col(Task.id) == 1)
    with db_engine.connect() as conn:
        service = Scoped(Sender(conn, ""), CALLER)
        for _ in range(2):
            assert service._read(scoped).all() == []
            with pytest.raises(Unscoped):
                service._read(literal)


def test_a_value_named_like_a_column_is_checked_as_sent(db_engine: Engine) -> None:
    """An UPDATE sets a column for each value named after one (`execute`'s rule): a scoped
    update sent with a `user_id` value is a change of owner, refused as sent."""
    rename = owned(update(Task), col(Task.user_id)).values(title=bindparam("new_title"))
    with db_engine.connect() as conn:
        service = Scoped(Sender(conn, ""), CALLER)
        service._write(rename, new_title="x")
        with pytest.raises(Unscoped, match="sets user_id"):
            service._write(rename, new_title="x", user_id="bob")


def test_no_value_rebinds_the_caller(db_engine: Engine) -> None:
    mine = owned(select(func.count()).select_from(Task), col(Task.user_id))
    with db_engine.connect() as conn:
        bound = Scoped(Sender(conn, ""), CALLER)._bind(mine, {OWNER: "bob-id"})
    assert bound[1][OWNER] == CALLER


def test_an_unscoped_write_never_reaches_the_database(
    client: TestClient, alice: Account, bob: Account, db_engine: Engine
) -> None:
    """A raw statement that binds :owner and widens it (`OR true`) is refused before it is
    sent: bob's task is still there."""
    made = client.post("/api/tasks", json={"title": "bob's"}, headers=bob.headers)
    assert made.status_code == 201, made.text
    wipe = text("DELETE FROM tasks WHERE tasks.user_id = :owner OR true")
    with db_engine.connect() as conn, pytest.raises(Unscoped, match="OR true"):
        Scoped(Sender(conn, ""), alice.id)._write(wipe)
    assert count_rows(db_engine, "tasks") == 1


def test_a_services_unscoped_statement_fails_its_first_request(
    client: TestClient, alice: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A deliberate break in a service: `GET /api/lists/{id}`'s statement as raw text with
    `OR true` after its access predicate. The first request fails (500), refused before it
    was sent; the statement without the break is scoped."""
    made = client.post("/api/lists", json={"name": "Mine"}, headers=alice.headers)
    assert made.status_code == 201, made.text
    path = f"/api/lists/{made.json()['data']['id']}"
    scoped = (
        "SELECT * FROM task_lists WHERE task_lists.id = :list_id AND task_lists.user_id = :owner"
    )
    assert unscoped(text(scoped)) is None
    monkeypatch.setattr(lists, "_GET", text(scoped + " OR true"))
    answer = client.get(path, headers=alice.headers)
    assert answer.status_code == 500, answer.text


# Every function under backend/ that sends a statement itself (not through `Scoped._read` and
# its siblings), as (module, function), and why it may: it is the executor, or it runs outside a
# caller's request, or over no per-user table. Nothing is exempt by class: a new method that
# sends a statement fails the test below until it is listed here with its reason.
OUTSIDE_THE_EXECUTOR = {
    ("backend.dav.objects", "Served.body"): "no statement: `vtodo.render` writes iCalendar "
    "text (a name the scan counts as a send)",
    ("backend.dav.answer", "stored_tag"): "no statement: `vtodo.render` of the stored object",
    ("backend.db.scope", "Scoped._read"): "the executor: binds :owner, the sender checks",
    ("backend.db.scope", "Scoped._write"): "the executor: binds, the sender checks",
    ("backend.services.tasks.task_sending", "TaskSending._write_then"): "the executor: binds the "
    "write and its `then`s, the sender checks",
    ("backend.services.tasks.task_sending", "TaskSending._write_or_stored"): "the executor: binds "
    "both, the sender checks",
    ("backend.services.tasks.task_sending", "TaskSending._steps"): "the executor: renders (checks) "
    "every step first",
    ("backend.db.scope", "Scoped._ahead"): "the executor: binds, the sender checks as it renders",
    ("backend.db.scope", "Scoped._at_commit"): "the executor: binds, the sender checks, queues",
    ("backend.db.sender", "Sender.ahead"): "the sender: renders (compiles and checks) a statement",
    ("backend.db.sender", "Sender.at_commit"): "the sender: renders (compiles and checks)",
    ("backend.db.sender", "Sender.beside"): "the sender: renders (compiles and checks) a column",
    ("backend.db.sender", "Sender.commit"): "the sender: COMMIT with what was queued (checked)",
    ("backend.db.sender", "Sender.send_entry"): "the sender: the caller's entry, no table",
    ("backend.db.sender", "Sender._send"): "the sender: compiles, checks (`_compile`), sends",
    ("backend.db.sender", "inline"): "the sender: renders a checked statement's parameters",
    ("backend.db.engine", "_learn_server_clock"): "the engine: the server's clock, no table",
    ("backend.db.engine", "_keep_heap"): "the engine: a new connection's heap kept, no table",
    ("backend.db.engine", "BreakerPool.connect"): "the pool: a new connection's probe",
    ("backend.db.preflight", "probe"): "startup: the database answers, before any request",
    ("backend.events.outbox", "backlog"): "the outbox worker: every user's pending events",
    ("backend.events.deliveries", "DeliveryQueue.exchange"): "the events worker: the leased "
    "deliveries' outcomes and the next lease of every user's due reminder deliveries",
    ("backend.events.outbox", "lease"): "the outbox worker: every user's pending events",
    ("backend.events.deliveries", "dead_letters"): "the events admin command: every user's "
    "dead reminder deliveries",
    ("backend.events.deliveries", "requeue"): "the events admin command: every user's",
    ("backend.events.outbox", "dead_letters"): "the outbox admin command: every user's",
    ("backend.events.outbox", "delivered"): "the outbox worker: marks what it delivered",
    ("backend.events.outbox", "failed"): "the outbox worker: marks what it failed",
    ("backend.events.outbox", "deferred"): "the outbox worker: an attempt a full receiver "
    "left uncalled",
    ("backend.events.outbox", "exhausted"): "the outbox worker: every user's due events out "
    "of attempts, dead",
    ("backend.events.outbox", "covered"): "the outbox worker: every user's due events that "
    "every live sink has (with none live: all), done with",
    ("backend.events.outbox", "register"): "the outbox worker: its sinks (no user_id)",
    ("backend.events.outbox", "live_sinks"): "the outbox worker and `events status`: every "
    "worker's registered sinks (no user_id)",
    ("backend.events.outbox", "requeue"): "the outbox admin command: every user's",
    ("backend.services.history.changes", "prune"): "the prune command and the worker: every user's",
    ("backend.db.sender", "read_for_callers"): "the sender: compiles and checks (`_compiled`) "
    "the live reader's message, each caller bound (`scope.each_caller`)",
    ("backend.services.live", "feed_head"): "the live streams' reader: every user's newest id",
    ("backend.services.live", "moved_since"): "the live streams' reader: whose feeds moved",
    (
        "backend.services.accounts.stream_tickets",
        "use",
    ): "a stream ticket names its user: used (deleted) by its hash before any caller is known",
    ("backend.services.idempotency", "prune_expired"): "the prune command: every user's",
    ("backend.services.delivery.reminders", "fire_due"): "the worker: every user's due reminders",
    (
        "backend.services.history.trash",
        "purge_expired",
    ): "the worker: every user's trash past its days",
    (
        "backend.services.transfer.imports",
        "claim",
    ): "the import runner: every user's queued imports (or "
    "one whose runner's lease ran out); the run then works as the import's owner",
    ("backend.services.tasks.attachments", "sweep_orphans"): "the worker: which stored objects any "
    "attachment (or trash) still names, every user's",
    ("backend.services.health", "pending_migrations"): "readiness: the migrations table",
    ("backend.services.rate_limits", "RateLimiter._hit"): "counters keyed by token subject "
    "or IP, before an account is read",
    ("backend.services.rate_limits", "RateLimiter._hit_then"): "an address's confirmation "
    "counters, keyed by the account's subject, then by the mailbox (no per-user table)",
    (
        "backend.services.unit_of_work",
        "UnitOfWork.__exit__",
    ): "COMMIT (with what was queued for it, checked when queued), or the caller's entry alone",
    ("backend.services.unit_of_work", "UnitOfWork._feed_entry"): "a feed's fetch: its count, "
    "rendered (compiled and checked: `render`) to ride in the entry, by the token's hash",
    ("backend.services.unit_of_work", "UnitOfWork._refused"): "the write's recount after a "
    "refusal: the caller's counter, no per-user table",
    ("backend.services.accounts.users", "UserService.delete"): "the accounts table (no user_id)",
    (
        "backend.services.accounts.users",
        "UserService.find_by_email",
    ): "the accounts table (no user_id)",
    ("backend.services.accounts.users", "UserService.get"): "the accounts table (no user_id)",
    ("backend.services.accounts.users", "UserService.register"): "the accounts table (no user_id)",
    (
        "backend.services.accounts.users",
        "UserService.revoke_tokens",
    ): "the accounts table (no user_id)",
}
# A connection's (or cursor's) ways to run a statement: `self._read(...).scalar()` reads a
# result, so a call on a call's result is not one; a connection or cursor is a name.
_EXECUTING = {"execute", "exec_driver_sql", "scalar", "scalars"}
# Ways to send (or render for sending) a statement, in its own message or in another
# statement's: any call of these names is a send, as is any call on a `Sender` (`send`).
_SENDING = {"render", "inline", "mogrify"}
_SENDERS = {"send", "_send"}
_SENDER_SENDS = {"read", "write", "steps", "ahead", "at_commit", "commit", "send_entry"}


def _sends(node: Any) -> bool:
    import ast

    if not isinstance(node, ast.Call):
        return False
    function = node.func
    name = getattr(function, "attr", getattr(function, "id", None))
    if name in _SENDING:
        return True
    target = getattr(function, "value", None)
    if getattr(target, "attr", getattr(target, "id", None)) in _SENDERS:
        return name in _SENDER_SENDS
    return (
        isinstance(function, ast.Attribute)
        and name in _EXECUTING
        and not isinstance(function.value, ast.Call)
    )


def _executing_code() -> set[tuple[str, str]]:
    """(module, function) for every function (`Class.method` for a method; module-level code
    as `<module>`) of every module under backend/ that sends a statement itself."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    found: set[tuple[str, str]] = set()
    for path in sorted((root / "backend").rglob("*.py")):
        module = ".".join(path.relative_to(root).with_suffix("").parts)
        units: list[tuple[str, ast.AST]] = []
        for top in ast.parse(path.read_text()).body:
            if isinstance(top, ast.FunctionDef | ast.AsyncFunctionDef):
                units.append((top.name, top))
            elif isinstance(top, ast.ClassDef):
                for item in top.body:
                    name = getattr(item, "name", "<class body>")
                    units.append((f"{top.name}.{name}", item))
            else:
                units.append(("<module>", top))
        for name, unit in units:
            if any(_sends(node) for node in ast.walk(unit)):
                found.add((module, name))
    return found


def test_services_run_statements_only_through_the_executor() -> None:
    found = _executing_code()
    assert found <= set(OUTSIDE_THE_EXECUTOR), (
        "statements run outside Scoped._read/_write (build them with owned() and send them "
        f"with self._read or self._write): {sorted(found - set(OUTSIDE_THE_EXECUTOR))}"
    )
    assert found == set(OUTSIDE_THE_EXECUTOR), (
        f"no longer executing, drop: {sorted(set(OUTSIDE_THE_EXECUTOR) - found)}"
    )
