"""The scoping check itself (tests/scoping.py): it sees the app's statements, accepts the
scoped ones and reports the unscoped ones, so a passing suite means something."""

from __future__ import annotations

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
from sqlmodel import col

from backend.db.scope import OWNER, Scoped, Unscoped, owned, scoped_tables, unscoped
from backend.db.sender import Sender
from backend.models import Task
from backend.services.registry import CALLER_KEY
from tests import scoping
from tests.conftest import Account

CALLER = "alice-id"


def _step(sql: str) -> str:
    """`sql` as an element of the steps array `TaskSending._steps` sends (a quoted literal)."""
    return "'" + sql.replace("'", "''") + "'"


_MINE = "tasks.user_id = 'alice-id'"


@pytest.mark.parametrize(
    "statement",
    [
        f"SELECT tasks.id FROM tasks WHERE {_MINE} AND tasks.id = 1",
        f"SET LOCAL TimeZone = 'UTC'; SELECT task_api_enter('alice-id'); UPDATE tasks SET "
        f"title = 'x' WHERE {_MINE} AND tasks.id = 1",
        "INSERT INTO tasks (user_id, title) VALUES ('alice-id'::VARCHAR, 'x') RETURNING tasks.id",
        # The one-message create: a data-modifying CTE.
        "WITH r AS (INSERT INTO tasks (user_id, title, position) VALUES ('alice-id'::VARCHAR, "
        "'x', 1), ('alice-id', 'y', 2) RETURNING tasks.id, tasks.title) "
        "SELECT task_api_return(jsonb_agg(to_jsonb(r))) FROM r",
        # INSERT ... SELECT from the caller's rows (the owner constant or a scoped user_id).
        "INSERT INTO tasks (user_id, title, list_id) SELECT 'alice-id', 'x', task_lists.id "
        "FROM task_lists WHERE task_lists.user_id = 'alice-id' AND task_lists.id = 3 "
        "RETURNING tasks.id",
        "INSERT INTO tasks (user_id, title) SELECT src.user_id, src.title FROM tasks AS src "
        "WHERE src.user_id = 'alice-id' AND src.id = 1",
        # UPDATE ... FROM and DELETE ... USING, both sides scoped; a JOIN scoped in its ON.
        f"UPDATE tasks SET list_id = task_lists.id FROM task_lists WHERE {_MINE} AND "
        "task_lists.user_id = 'alice-id' AND task_lists.id = 2",
        f"DELETE FROM tasks USING task_lists WHERE {_MINE} AND task_lists.user_id = 'alice-id'",
        "SELECT t.id FROM tasks AS t JOIN task_lists AS l ON l.id = t.list_id AND "
        "l.user_id = 'alice-id' WHERE t.user_id = 'alice-id'",
        # Subqueries and UNION arms, each scoped at its own level.
        f"SELECT tasks.id FROM tasks WHERE {_MINE} AND tasks.id IN (SELECT child.parent_id "
        "FROM tasks AS child WHERE child.user_id = 'alice-id') UNION ALL SELECT task_lists.id "
        "FROM task_lists WHERE task_lists.user_id = 'alice-id'",
        # A bulk operation: every step of the array is checked, and scoped.
        "SELECT task_api_steps(ARRAY["
        + _step(
            f"WITH r AS (UPDATE tasks SET done = true WHERE {_MINE} AND tasks.id = 1 "
            "RETURNING tasks.id) SELECT (SELECT to_jsonb(r) FROM r)"
        )
        + ", "
        + _step(f"DELETE FROM tasks WHERE {_MINE} AND tasks.id = 2 RETURNING tasks.id")
        + "])",
        "SELECT users.id, users.token_version FROM users WHERE users.id = 'alice-id'",
        # The two tables whose rows are the caller's by their `member_id` (a membership, a
        # member's own reminders; backend/db/scope.py `_MEMBER_TABLES`), qualified or not.
        "SELECT m.list_id FROM list_members AS m WHERE m.member_id = 'alice-id'",
        "DELETE FROM task_member_reminders WHERE task_id = 1 AND member_id = 'alice-id'",
    ],
)
def test_scoped_statements_pass(statement: str) -> None:
    assert scoping.problem(statement, CALLER) is None


@pytest.mark.parametrize(
    "statement",
    [
        # No predicate at all.
        "SELECT tasks.id FROM tasks WHERE tasks.id = 1",
        # A predicate naming another user.
        "DELETE FROM tasks WHERE tasks.user_id = 'mallory' AND tasks.id = 1",
        # The owner predicate widened by OR, or negated.
        f"SELECT tasks.id FROM tasks WHERE {_MINE} OR true",
        f"UPDATE tasks SET title = 'x' WHERE ({_MINE} OR tasks.id = 1) AND tasks.id > 0",
        f"SELECT tasks.id FROM tasks WHERE NOT ({_MINE})",
        # The outer statement scoped, its subquery not.
        "DELETE FROM idempotency_keys WHERE idempotency_keys.user_id = 'alice-id' AND "
        "(user_id, key) IN (SELECT user_id, key FROM idempotency_keys WHERE expires_at < now())",
        # An insert for someone else: plain, in a data-modifying CTE, one row of several.
        "INSERT INTO tasks (user_id, title) VALUES ('mallory', 'x')",
        "WITH r AS (INSERT INTO tasks (user_id, title) VALUES ('mallory'::VARCHAR, 'x') "
        "RETURNING tasks.id) SELECT task_api_return(jsonb_agg(to_jsonb(r))) FROM r",
        "INSERT INTO tasks (user_id, title) VALUES ('alice-id', 'x'), ('mallory', 'y')",
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
        # A bulk operation with one unscoped step among scoped ones.
        "SELECT task_api_steps(ARRAY["
        + _step(f"DELETE FROM tasks WHERE {_MINE} AND tasks.id = 1")
        + ", "
        + _step("DELETE FROM tasks WHERE tasks.id = 2")
        + "])",
        # A second statement in the message, unscoped.
        "SELECT task_api_enter('alice-id'); SELECT count(*) FROM tasks",
        # `member_id = <caller>` scopes those two tables only: on any other it is no scope.
        "SELECT t.id FROM tasks AS t WHERE t.member_id = 'alice-id'",
        "DELETE FROM task_reminders WHERE member_id = 'alice-id'",
        "SELECT t.id FROM list_members AS m JOIN tasks AS t ON t.list_id = m.list_id "
        "AND t.member_id = 'alice-id' WHERE m.member_id = 'alice-id'",
    ],
)
def test_unscoped_statements_are_reported(statement: str) -> None:
    assert scoping.problem(statement, CALLER) is not None


def test_the_check_sees_the_apps_statements(client: TestClient, alice: Account) -> None:
    before = scoping.checked
    created = client.post("/api/tasks", json={"title": "seen"}, headers=alice.headers)
    client.get(f"/api/tasks/{created.json()['data']['id']}", headers=alice.headers)
    client.get("/api/tasks", headers=alice.headers)
    assert scoping.checked - before >= 3  # the insert, the get, the page


def test_an_unscoped_statement_on_a_callers_connection_is_caught(db_engine: Engine) -> None:
    with db_engine.connect() as conn:
        conn.execution_options(**{CALLER_KEY: CALLER})
        conn.execute(text("SELECT count(*) FROM tasks"))
    caught = scoping.take()
    assert len(caught) == 1 and "SELECT count(*) FROM tasks" in caught[0]


def test_the_scoped_tables_come_from_the_metadata() -> None:
    # Every table with a `user_id` column, with no list to keep up to date.
    assert set(scoping.SCOPED_TABLES) == scoped_tables()
    assert {"tasks", "idempotency_keys", "task_events", "task_reminders"} <= scoped_tables()
    assert "users" not in scoped_tables()


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
        select(col(Task.id)).where(or_(_OWNER_IS_CALLER, col(Task.id) == 1)),
        select(col(Task.id)).where(not_(_OWNER_IS_CALLER)),
        select(_CTE_INSERT_OTHER.c.id),
        select(_CTE_UPDATE_UNOWNED.c.id),
        insert(Task).from_select(["user_id", "title"], select(literal("bob"), literal("x"))),
        insert(Task).from_select(["user_id", "title"], select(col(Task.user_id), col(Task.title))),
    ],
    ids=[
        "select",
        "literal-owner",
        "unowned-join",
        "update",
        "delete",
        "insert",
        "text",
        "or",
        "not",
        "cte-insert-other",
        "cte-update-unowned",
        "insert-select-other",
        "insert-select-unowned",
    ],
)
def test_the_executor_refuses_an_unscoped_statement(db_engine: Engine, statement: Any) -> None:
    # Refused before it reaches the database: a service cannot run one by mistake.
    with db_engine.connect() as conn, pytest.raises(Unscoped):
        Scoped(Sender(conn, ""), CALLER)._read(statement)


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
    ],
    ids=["or-beside-owner", "cte-insert", "cte-update", "insert-select", "insert-select-own"],
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
    from backend.services.task_sending import Step, TaskSending

    scoped = owned(select(col(Task.id)), col(Task.user_id)).where(col(Task.id) == 1)
    unscoped_ = select(literal("x")).where(col(Task.id) == 1)
    with db_engine.connect() as conn:
        service = TaskSending(Sender(conn, ""), CALLER)
        for step in (Step(unscoped_, {}, 1), Step(scoped, {}, 1, reason=unscoped_)):
            with pytest.raises(Unscoped):
                service._steps([step])


def test_a_known_scoped_shape_does_not_vouch_for_an_unscoped_one(db_engine: Engine) -> None:
    """The executor remembers the shapes it found scoped (their cache keys); a statement that
    differs only in the owner predicate is another shape and is checked again."""
    scoped = owned(select(col(Task.id)), col(Task.user_id)).where(col(Task.id) == 1)
    literal = select(col(Task.id)).where(col(Task.user_id) == CALLER, col(Task.id) == 1)
    with db_engine.connect() as conn:
        service = Scoped(Sender(conn, ""), CALLER)
        for _ in range(2):
            assert service._read(scoped).all() == []
            with pytest.raises(Unscoped):
                service._read(literal)


# Every function under backend/ that sends a statement itself (not through `Scoped._read` and
# its siblings), as (module, function), and why it may: it is the executor, or it runs outside a
# caller's request, or over no per-user table. Nothing is exempt by class: a new method that
# sends a statement fails the test below until it is listed here with its reason.
OUTSIDE_THE_EXECUTOR = {
    ("backend.db.scope", "Scoped._read"): "the executor: checks, then binds :owner",
    ("backend.db.scope", "Scoped._write"): "the executor: checks (its `then` too), then binds",
    ("backend.services.task_sending", "TaskSending._write_or_stored"): "the executor: checks "
    "both, then sends",
    ("backend.services.task_sending", "TaskSending._steps"): "the executor: checks every step "
    "first",
    ("backend.db.scope", "Scoped._ahead"): "the executor: checks, then sends ahead",
    ("backend.db.scope", "Scoped._at_commit"): "the executor: checks, then queues",
    ("backend.db.sender", "Sender.ahead"): "the sender: renders a statement the executor checked",
    ("backend.db.sender", "Sender.at_commit"): "the sender: renders a checked statement",
    ("backend.db.sender", "Sender.commit"): "the sender: COMMIT with what was queued (checked)",
    ("backend.db.sender", "Sender.send_entry"): "the sender: the caller's entry, no table",
    ("backend.db.sender", "Sender._send"): "the sender: sends what the executor checked",
    ("backend.db.sender", "inline"): "the sender: renders a checked statement's parameters",
    ("backend.db.engine", "_learn_server_clock"): "the engine: the server's clock, no table",
    ("backend.db.deadline", "BreakerPool.connect"): "the pool: a new connection's probe",
    ("backend.db.preflight", "probe"): "startup: the database answers, before any request",
    ("backend.events.outbox", "backlog"): "the outbox worker: every user's pending events",
    ("backend.events.outbox", "claim"): "the outbox worker: every user's pending events",
    ("backend.events.outbox", "dead_letters"): "the outbox admin command: every user's",
    ("backend.events.outbox", "delivered"): "the outbox worker: marks what it delivered",
    ("backend.events.outbox", "failed"): "the outbox worker: marks what it failed",
    ("backend.events.outbox", "requeue"): "the outbox admin command: every user's",
    ("backend.services.changes", "prune"): "the prune command and the worker: every user's",
    ("backend.services.idempotency", "prune_expired"): "the prune command: every user's",
    ("backend.services.reminders", "fire_due"): "the worker: every user's due reminders",
    ("backend.services.health", "pending_migrations"): "readiness: the migrations table",
    ("backend.services.rate_limits", "RateLimiter._hit"): "counters keyed by token subject "
    "or IP, before an account is read",
    ("backend.services.registry", "UnitOfWork.__exit__"): "COMMIT (with what was queued for it, "
    "checked when queued), or the caller's entry alone",
    ("backend.services.registry", "UnitOfWork._refused"): "the write's recount after a "
    "refusal: the caller's counter, no per-user table",
    ("backend.services.users", "UserService.delete"): "the accounts table (no user_id)",
    ("backend.services.users", "UserService.find_by_email"): "the accounts table (no user_id)",
    ("backend.services.users", "UserService.get"): "the accounts table (no user_id)",
    ("backend.services.users", "UserService.register"): "the accounts table (no user_id)",
    ("backend.services.users", "UserService.revoke_tokens"): "the accounts table (no user_id)",
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
