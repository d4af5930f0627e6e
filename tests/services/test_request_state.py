"""A request's state lives in its `Sender` (backend/db/sender.py), not on its connection:
whichever way the request ends, the connection goes back to the pool with only its own keys
(`engine.CONNECTION_KEYS`), outside any transaction, and psycopg2's transactions on."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import Engine, event

from backend.auth.tokens import TokenClaims
from backend.config import Settings
from backend.db.engine import CONNECTION_KEYS, create_db_engine
from backend.errors import Unauthorized
from backend.models import TaskCreate
from backend.services.tasks.service import TaskService
from backend.services.unit_of_work import UnitOfWork


@pytest.fixture
def engine(database_url: str, settings: Settings) -> Iterator[Engine]:
    engine = create_db_engine(database_url, settings)
    yield engine
    engine.dispose()


def _read(work: UnitOfWork) -> None:
    work.service(TaskService).titles()


def _write_that_commits_itself(work: UnitOfWork) -> None:
    work.service(TaskService).create(TaskCreate(title="one message"))


def _write_in_two_messages(work: UnitOfWork) -> None:
    work.hold_commit()
    work.service(TaskService).create(TaskCreate(title="two messages"))


def _fails_after_a_statement(work: UnitOfWork) -> None:
    work.service(TaskService).titles()
    raise RuntimeError("the route fails")


def _fails_after_its_write(work: UnitOfWork) -> None:
    work.service(TaskService).create(TaskCreate(title="committed, then a failure"))
    raise RuntimeError("the route fails")


def _fails_before_a_statement(work: UnitOfWork) -> None:
    raise RuntimeError("the route fails first")


WAYS: dict[str, Callable[[UnitOfWork], None]] = {
    "read": _read,
    "write that commits itself": _write_that_commits_itself,
    "write in two messages": _write_in_two_messages,
    "failure after a statement": _fails_after_a_statement,
    "failure after a write that committed": _fails_after_its_write,
    "failure before any statement": _fails_before_a_statement,
}


@pytest.mark.parametrize("write", [False, True], ids=["read", "write"])
@pytest.mark.parametrize("way", WAYS, ids=list(WAYS))
def test_the_request_state_goes_whole_with_the_request(
    engine: Engine, settings: Settings, way: str, write: bool
) -> None:
    returned: list[tuple[set[str], Any]] = []

    def _checked_in(dbapi_connection: Any, record: Any) -> None:
        autocommit = None if dbapi_connection is None else dbapi_connection.autocommit
        returned.append((set(record.info), autocommit))

    event.listen(engine, "checkin", _checked_in)
    claims = TokenClaims(subject=f"state-{write}", local=False)
    try:
        with UnitOfWork(engine, settings, claims=claims, counts_write=write) as work:
            WAYS[way](work)
    except RuntimeError:
        pass
    assert returned == [(returned[0][0], False)]
    assert returned[0][0] <= CONNECTION_KEYS


@pytest.mark.parametrize("write", [False, True], ids=["read", "write"])
def test_a_refused_request_leaves_no_state(engine: Engine, settings: Settings, write: bool) -> None:
    returned: list[set[str]] = []
    event.listen(engine, "checkin", lambda dbapi, record: returned.append(set(record.info)))
    gone = TokenClaims(subject="no-such-account", local=True)
    with (
        pytest.raises(Unauthorized),
        UnitOfWork(engine, settings, claims=gone, counts_write=write) as work,
    ):
        work.service(TaskService).titles()
    assert len(returned) == 1 and returned[0] <= CONNECTION_KEYS


def test_a_failure_on_entry_leaves_no_state(engine: Engine, settings: Settings) -> None:
    """The entry fails before it is queued (claims without a token version): the connection
    still goes back with no request state and psycopg2's transactions on."""
    returned: list[tuple[set[str], Any]] = []
    event.listen(
        engine,
        "checkin",
        lambda dbapi, record: returned.append((set(record.info), dbapi.autocommit)),
    )
    broken: Any = SimpleNamespace(subject="broken", local=False)
    with pytest.raises(AttributeError):
        UnitOfWork(engine, settings, claims=broken, counts_write=True).__enter__()
    assert len(returned) == 1 and returned[0][0] <= CONNECTION_KEYS and returned[0][1] is False
