"""The scoping check itself (tests/scoping.py): it sees the app's statements, accepts the
scoped ones and reports the unscoped ones, so a passing suite means something."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, delete, func, insert, select, text, update
from sqlmodel import col

from backend.models import Task
from backend.services.scope import Scoped, Unscoped, owned, scoped_tables
from backend.services.unit_of_work import CALLER_KEY
from tests import scoping
from tests.conftest import Account

CALLER = "alice-id"


@pytest.mark.parametrize(
    "statement",
    [
        "SELECT tasks.id FROM tasks WHERE tasks.user_id = %(user_id_1)s AND tasks.id = %(id_1)s",
        "SET LOCAL TimeZone = 'UTC'; UPDATE tasks SET title=%(title)s "
        "WHERE tasks.user_id = %(user_id_1)s AND tasks.id = %(id_1)s",
        "INSERT INTO tasks (user_id, title) VALUES (%(user_id)s::VARCHAR, %(title)s) "
        "RETURNING tasks.id",
        "DELETE FROM idempotency_keys WHERE idempotency_keys.user_id = %(user_id_1)s AND "
        "(idempotency_keys.user_id, idempotency_keys.key) IN (SELECT idempotency_keys.user_id, "
        "idempotency_keys.key FROM idempotency_keys WHERE idempotency_keys.user_id = "
        "%(user_id_2)s)",
        "SELECT users.id, users.token_version FROM users WHERE users.id = %(id)s",
    ],
)
def test_scoped_statements_pass(statement: str) -> None:
    params = {"user_id": CALLER, "user_id_1": CALLER, "user_id_2": CALLER, "id_1": 1}
    assert scoping.problem(statement, params, CALLER) is None


@pytest.mark.parametrize(
    "statement",
    [
        # No predicate at all.
        "SELECT tasks.id FROM tasks WHERE tasks.id = %(id_1)s",
        # A predicate naming another user.
        "DELETE FROM tasks WHERE tasks.user_id = %(other)s AND tasks.id = %(id_1)s",
        # The outer statement scoped, its subquery not.
        "DELETE FROM idempotency_keys WHERE idempotency_keys.user_id = %(user_id_1)s AND "
        "(user_id, key) IN (SELECT user_id, key FROM idempotency_keys WHERE expires_at < now())",
        # An insert for someone else.
        "INSERT INTO tasks (user_id, title) VALUES (%(other)s, %(title)s)",
        "INSERT INTO idempotency_keys (key, fingerprint) VALUES (%(key)s, %(fp)s)",
    ],
)
def test_unscoped_statements_are_reported(statement: str) -> None:
    params = {"user_id_1": CALLER, "other": "mallory", "id_1": 1, "title": "x"}
    assert scoping.problem(statement, params, CALLER) is not None


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
    ],
    ids=["select", "literal-owner", "unowned-join", "update", "delete", "insert", "text"],
)
def test_the_executor_refuses_an_unscoped_statement(db_engine: Engine, statement: Any) -> None:
    # Refused before it reaches the database: a service cannot run one by mistake.
    with db_engine.connect() as conn, pytest.raises(Unscoped):
        Scoped(conn, CALLER)._run(statement)


def test_the_executor_runs_a_scoped_statement(db_engine: Engine) -> None:
    with db_engine.connect() as conn:
        count = owned(select(func.count()).select_from(Task), col(Task.user_id))
        assert Scoped(conn, CALLER)._run(count).scalar() == 0


def test_a_known_scoped_shape_does_not_vouch_for_an_unscoped_one(db_engine: Engine) -> None:
    """The executor remembers the shapes it found scoped (their cache keys); a statement that
    differs only in the owner predicate is another shape and is checked again."""
    scoped = owned(select(col(Task.id)), col(Task.user_id)).where(col(Task.id) == 1)
    literal = select(col(Task.id)).where(col(Task.user_id) == CALLER, col(Task.id) == 1)
    with db_engine.connect() as conn:
        service = Scoped(conn, CALLER)
        for _ in range(2):
            assert service._run(scoped).all() == []
            with pytest.raises(Unscoped):
                service._run(literal)


# Code in backend/services/ that runs statements on a connection without `Scoped._run`, and why
# it may: none of it runs on a caller's behalf over a per-user table. Anything else that calls
# `execute`/`scalar`/`scalars` itself fails the test below.
OUTSIDE_THE_EXECUTOR = {
    "users.UserService": "the accounts table itself (no user_id): who the caller is",
    "rate_limits.RateLimiter": "counters keyed by token subject or IP, before an account is read",
    "changes.prune": "the prune command and the worker: every user's delivered changes",
    "idempotency.prune_expired": "the prune command: every user's expired records",
    "reminders.fire_due": "the worker: every user's due reminders",
    "health.pending_migrations": "readiness: the migrations table",
    "unit_of_work.UnitOfWork": "the caller's entry (with the route's first statement), COMMIT "
    "(with what was deferred to it), ROLLBACK and the write's recount",
}
_EXECUTING = {"execute", "scalar", "scalars", "exec_driver_sql"}
# The engine's ways to send a statement in another statement's message (Scoped._run_ahead and
# Scoped._run_at_commit check the statement first).
_SENDING = {"send_ahead", "defer_to_commit", "send_with_next_statement"}


def _executing_code() -> set[str]:
    """`module.Class` or `module.function` for every call of a connection's execute method
    in backend/services/, outside scope.py (the executor)."""
    import ast
    from pathlib import Path

    found: set[str] = set()
    services = Path(__file__).resolve().parent.parent / "backend" / "services"
    for path in sorted(services.glob("*.py")):
        if path.name == "scope.py":
            continue
        for top in ast.parse(path.read_text()).body:
            if not isinstance(top, ast.ClassDef | ast.FunctionDef):
                continue
            calls = [
                node
                for node in ast.walk(top)
                if isinstance(node, ast.Call)
                and (
                    (
                        isinstance(node.func, ast.Attribute)
                        and node.func.attr in _EXECUTING
                        # `self._run(...).scalar()` reads a result; a connection is a name.
                        and not isinstance(node.func.value, ast.Call)
                    )
                    or getattr(node.func, "id", getattr(node.func, "attr", None)) in _SENDING
                )
            ]
            if calls:
                found.add(f"{path.stem}.{top.name}")
    return found


def test_services_run_statements_only_through_the_executor() -> None:
    found = _executing_code()
    assert found <= set(OUTSIDE_THE_EXECUTOR), (
        "statements run outside Scoped._run (build them with owned() and run them with "
        f"self._run): {sorted(found - set(OUTSIDE_THE_EXECUTOR))}"
    )
    assert found == set(OUTSIDE_THE_EXECUTOR), (
        f"no longer executing, drop: {sorted(set(OUTSIDE_THE_EXECUTOR) - found)}"
    )
