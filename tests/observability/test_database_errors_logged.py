"""A database error in a log line keeps its class, SQLSTATE and sender, never the statement's
SQL nor its values (issue 61, item 6), whoever logs it: `serve`'s handlers carry
`WithoutStatements`, so a line from uvicorn or a library is cut the same way as ours. Real
errors from the test database, through a handler with that filter."""

from __future__ import annotations

import io
import logging
import secrets
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import DataError, IntegrityError

from backend.config import Settings
from backend.observability.logging import WithoutStatements, logging_config

LOGGER = "tests.database_errors"


@pytest.fixture
def served_log(settings: Settings) -> Iterator[io.StringIO]:
    """A handler with the filters `serve` puts on its own (`logging_config`), writing to a
    buffer, on a logger of the test's."""
    config = logging_config(settings)
    declared = config["filters"]
    filters = config["handlers"]["default"]["filters"]
    assert "without_statements" in filters and declared["without_statements"] == {
        "()": WithoutStatements
    }
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
    handler.addFilter(WithoutStatements())
    logger = logging.getLogger(LOGGER)
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield buffer
    finally:
        logger.removeHandler(handler)


def _data_error(engine: Engine, secret: str) -> DataError:
    with pytest.raises(DataError) as raised, engine.connect() as conn:
        conn.execute(text("SELECT CAST(:value AS integer)"), {"value": secret})
    return raised.value


def _integrity_error(engine: Engine, secret: str) -> IntegrityError:
    with pytest.raises(IntegrityError) as raised, engine.begin() as conn:
        conn.execute(text("CREATE TEMPORARY TABLE k (v text PRIMARY KEY)"))
        conn.execute(text("INSERT INTO k VALUES (:v), (:v)"), {"v": secret})
    return raised.value


def test_database_errors_are_logged_without_sql_or_values(
    setup_engine: Engine, served_log: io.StringIO
) -> None:
    secret = f"secret-{secrets.token_hex(8)}"
    data, integrity = _data_error(setup_engine, secret), _integrity_error(setup_engine, secret)
    # What was sent is in the errors themselves: the log must drop it.
    assert secret in str(data) and "[SQL" in str(integrity) and secret in str(integrity.orig)
    logger = logging.getLogger(LOGGER)
    logger.error("failed", exc_info=data)
    logger.warning("failed: %s", integrity)
    try:
        try:
            raise integrity
        except IntegrityError as exc:
            raise RuntimeError("while saving") from exc
    except RuntimeError as wrapped:
        logger.exception("wrapped", exc_info=wrapped)
    logged = served_log.getvalue()
    assert secret not in logged and "[SQL" not in logged and "[parameters" not in logged, logged
    # What stays: the class, the SQLSTATE, the traceback, an error's own text around them.
    assert "DataError (psycopg2.errors.InvalidTextRepresentation, SQLSTATE 22P02)" in logged
    assert "IntegrityError (psycopg2.errors.UniqueViolation, SQLSTATE 23505)" in logged
    assert "RuntimeError: while saving (after IntegrityError" in logged
    assert logged.count("Traceback (most recent call last)") == 2


def test_a_database_error_inside_an_exception_group_is_logged_without_sql_or_values(
    setup_engine: Engine, served_log: io.StringIO
) -> None:
    """An `ExceptionGroup` (a task group's failure: anyio, asyncio.TaskGroup) renders each of
    its exceptions with its text: one that is (or follows) a database error is cut like one
    logged alone, the group and its other exceptions kept (review F5)."""
    secret = f"secret-{secrets.token_hex(8)}"
    data, integrity = _data_error(setup_engine, secret), _integrity_error(setup_engine, secret)
    try:
        try:
            raise integrity
        except IntegrityError as exc:
            raise RuntimeError("while saving") from exc
    except RuntimeError as wrapped:
        after = wrapped
    nested = ExceptionGroup("inner", [after, KeyError("kept")])
    group = ExceptionGroup("task group failed", [data, nested, ValueError("also kept")])
    logger = logging.getLogger(LOGGER)
    logger.error("failed", exc_info=group)
    logger.warning("failed: %s", group)
    logged = served_log.getvalue()
    assert secret not in logged and "[SQL" not in logged and "[parameters" not in logged, logged
    assert "DataError (psycopg2.errors.InvalidTextRepresentation, SQLSTATE 22P02)" in logged
    assert "RuntimeError: while saving (after IntegrityError" in logged
    for kept in ("task group failed", "inner", "KeyError: 'kept'", "ValueError: also kept"):
        assert kept in logged, (kept, logged)
