"""The unit of work when the server drops its connection mid-request (a restart, a pooler
recycling it): the request fails with the driver's disconnect error, which the error mapping
turns into a 503, never with SQLAlchemy's complaint about the dead connection (a 500)."""

from __future__ import annotations

import os
import re
from contextlib import nullcontext

import psycopg2
import pytest
from sqlalchemy import Engine, bindparam, insert
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError, OperationalError

from backend.auth.tokens import TokenClaims
from backend.config import Settings
from backend.db.engine import libpq_url
from backend.db.scope import OWNER
from backend.errors import describe
from backend.models import Task, TaskCreate
from backend.services.rate_limits import RateLimiter
from backend.services.tasks.service import TaskService
from backend.services.unit_of_work import UnitOfWork


def _terminate(database_url: str, pid: int) -> None:
    # Straight to the server, past a pooler if the tests run behind one (test_pgbouncer.py).
    direct = os.environ.get("TEST_DATABASE_DIRECT_URL") or database_url
    url = make_url(libpq_url(direct)).set(database=make_url(libpq_url(database_url)).database)
    admin = psycopg2.connect(url.render_as_string(hide_password=False))
    admin.autocommit = True
    try:
        with admin.cursor() as cur:
            # Waits (up to 5 s) until the backend has exited.
            cur.execute("SELECT pg_terminate_backend(%s, 5000)", (pid,))
            assert cur.fetchone() == (True,)
    finally:
        admin.close()


@pytest.mark.parametrize("write", [False, True])
def test_a_connection_dropped_mid_request_is_a_503(
    db_engine: Engine, settings: Settings, database_url: str, write: bool
) -> None:
    claims = TokenClaims(subject="dropped", local=False)
    work = UnitOfWork(db_engine, settings, claims=claims, counts_write=write)
    # Behind a transaction pooler (tests/reliability/test_pgbouncer.py) each autocommit read
    # is a transaction of its own, lent a server connection of its own: the client never
    # sees the dropped one, and the next read just works.
    read_behind_pooler = not write and bool(os.environ.get("TEST_DATABASE_DIRECT_URL"))
    expected = pytest.raises(OperationalError) if not read_behind_pooler else nullcontext()
    with expected as raised, work:
        if write:
            work.hold_commit()  # two writes: the first may not commit the request
            work.service(TaskService).create(TaskCreate(title="first"))
        else:
            work.service(TaskService).titles()
        # The server's own id for the backend (a pooler reports its own to libpq).
        pid = work._connection().exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
        _terminate(database_url, pid)
        assert work.service(TaskService).titles() == set()
    if read_behind_pooler:
        return
    assert describe(raised.value).status == 503
    # The pool hands out a working connection afterwards.
    with UnitOfWork(db_engine, settings, claims=claims, counts_write=True) as after:
        tasks: TaskService = after.service(TaskService)
        assert tasks.create(TaskCreate(title="after")).title == "after"


def test_a_statement_deferred_to_the_commit_fails_the_whole_write(
    db_engine: Engine, settings: Settings
) -> None:
    """A statement queued for the COMMIT's message (`Scoped._at_commit`) that fails there
    takes the write with it: nothing is committed and the error reaches the client."""
    claims = TokenClaims(subject="deferring", local=False)
    broken = insert(Task).values(user_id=bindparam(OWNER), title=None)  # NOT NULL
    with (
        pytest.raises(IntegrityError),
        UnitOfWork(db_engine, settings, claims=claims, counts_write=True) as work,
    ):
        work.service(
            TaskService
        )._hold_commit()  # something follows the write: it cannot commit itself
        work.service(TaskService).create(TaskCreate(title="kept only if the commit succeeds"))
        work.service(TaskService)._at_commit(broken)
    with UnitOfWork(db_engine, settings, claims=claims) as work:
        assert work.service(TaskService).titles() == set()


def test_statements_deferred_to_the_commit_run_in_order_before_it(
    db_engine: Engine, settings: Settings
) -> None:
    claims = TokenClaims(subject="deferring", local=False)
    with UnitOfWork(db_engine, settings, claims=claims, counts_write=True) as work:
        work.service(TaskService)._hold_commit()
        work.service(TaskService).create(TaskCreate(title="now"))
        for title in ("first", "100% second"):
            work.service(TaskService)._at_commit(
                insert(Task).values(user_id=bindparam(OWNER), title=bindparam("title")),
                title=title,
            )
    with UnitOfWork(db_engine, settings, claims=claims) as work:
        assert work.service(TaskService).titles() == {"now", "first", "100% second"}


def test_a_write_nothing_follows_commits_in_its_own_message(
    db_engine: Engine, settings: Settings
) -> None:
    """`_write(last=True)`: the write commits in its own message; its rows come back typed as the
    driver types them, and what the route does after it cannot undo it."""
    claims = TokenClaims(subject="finishing", local=False)
    with (
        pytest.raises(RuntimeError),
        UnitOfWork(db_engine, settings, claims=claims, counts_write=True) as work,
    ):
        task = work.service(TaskService).create(
            TaskCreate(title="committed", due_date="2030-01-01")
        )
        assert task.due_date is not None and task.due_date.year == 2030
        assert task.priority.value == "none" and task.tags == []
        raise RuntimeError("the route fails after its write")
    with UnitOfWork(db_engine, settings, claims=claims) as work:
        assert work.service(TaskService).titles() == {"committed"}


def test_a_write_after_the_one_that_committed_the_request_is_refused(
    db_engine: Engine, settings: Settings
) -> None:
    """A route that writes twice without `hold_commit` fails loudly (the first write
    committed the request: a second one would commit on its own), and only that first write
    is kept."""
    claims = TokenClaims(subject="twice", local=False)
    with (
        pytest.raises(RuntimeError, match="after the statement that committed"),
        UnitOfWork(db_engine, settings, claims=claims, counts_write=True) as work,
    ):
        work.service(TaskService).create(TaskCreate(title="one"))
        work.service(TaskService).create(TaskCreate(title="two"))
    with UnitOfWork(db_engine, settings, claims=claims) as work:
        assert work.service(TaskService).titles() == {"one"}


def test_a_route_count_taken_back_by_a_failed_message_is_counted_again(
    db_engine: Engine, settings: Settings
) -> None:
    """A route's own limit (an invitation's) rides with the entry; a message that fails
    takes both counts with it, and the unit of work counts both again, as it does a write's
    alone, in the order the entry took them, each once."""
    claims = TokenClaims(subject="recounted", local=False)
    limited = settings.model_copy(
        update={"rate_limit_invitations_per_hour": 7, "rate_limit_task_writes_per_user": 50}
    )
    broken = insert(Task).values(user_id=bindparam(OWNER), title=None)  # NOT NULL
    headers: dict[str, str] = {}
    with (
        pytest.raises(IntegrityError),
        UnitOfWork(
            db_engine, limited, claims=claims, counts_write=True, response_headers=headers
        ) as work,
    ):
        work.service(RateLimiter).invitations(claims.subject)
        work.service(TaskService)._write(broken, last=True)
    window = limited.rate_limit_task_window_seconds
    assert headers["RateLimit-Policy"] == f'"invitations";q=7;w=3600, "task-writes";q=50;w={window}'
    assert re.fullmatch(r'"invitations";r=6;t=\d+, "task-writes";r=49;t=\d+', headers["RateLimit"])
