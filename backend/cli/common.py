"""What the commands share: settings from the environment, the database URL, the start-up check
of the database, and one-line failures."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, NoReturn, TypeAlias

from pydantic import ValidationError
from pydantic_settings import SettingsError

from backend.config import Environment, Settings

if TYPE_CHECKING:
    from sqlalchemy import Engine

    Subcommands: TypeAlias = argparse._SubParsersAction[argparse.ArgumentParser]

# Every command's lines are logged as `backend.cli`, whichever module of the package logs them.
logger = logging.getLogger("backend.cli")

DEV_HELP = "development mode: embedded database, auto-migrate, generated secret"
DEV_HINT = (
    "hint: ENVIRONMENT is not set, so this ran in production mode; to run locally with the "
    "embedded database and a generated secret, add --dev (python -m backend serve --dev)"
)


def _environment_chosen() -> bool:
    """Whether ENVIRONMENT is set in the environment or in .env (else production applies)."""
    if any(name.upper() == "ENVIRONMENT" for name in os.environ):
        return True
    from dotenv import dotenv_values

    return any(name.upper() == "ENVIRONMENT" for name in dotenv_values(".env"))


def load_settings(dev: bool = False) -> Settings:
    if dev:
        os.environ.setdefault("ENVIRONMENT", Environment.development.value)
    try:
        return Settings()
    except SettingsError as exc:  # a value that is not even JSON, say
        print(f"configuration error: {' '.join(str(exc).split())}", file=sys.stderr)
        raise SystemExit(2) from None
    except ValidationError as exc:
        # One line per problem, no traceback: these are configuration mistakes.
        for error in exc.errors():
            where = ".".join(str(p) for p in error["loc"]).upper()
            message = str(error["msg"]).removeprefix("Value error, ")
            print(f"configuration error: {where + ': ' if where else ''}{message}", file=sys.stderr)
        if not _environment_chosen():
            # The newcomer's mistake: production mode by default, without knowing it.
            print(DEV_HINT, file=sys.stderr)
        raise SystemExit(2) from None


def database_url(settings: Settings, *, for_migrations: bool = False) -> str:
    from backend.db.engine import resolve_database_url

    if for_migrations and settings.database_migration_url is not None:
        return settings.database_migration_url.get_secret_value()
    return resolve_database_url(settings)


def first_line(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        error = exc.errors()[0]
        where = ".".join(str(p) for p in error["loc"])
        return f"{where}: {error['msg']}" if where else str(error["msg"])
    return str(exc).splitlines()[0]


def fail(message: str) -> NoReturn:
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(1)


def ready_database(settings: Settings, url: str) -> None:
    """Refuse to start on a database that cannot serve (unreachable, or a migration pending
    without auto-migrate, which applies them): one line saying what to fix, exit 1."""
    import psycopg2

    from backend.db import preflight
    from backend.db.migrations import migrate_up, migration_status

    timeout = float(settings.db_connect_timeout_seconds)
    migration_url = database_url(settings, for_migrations=True)
    probes = [("DATABASE_URL", url), ("DATABASE_MIGRATION_URL", migration_url)]
    for name, candidate in probes[: 1 if migration_url == url else 2]:
        finding = preflight.probe(name, candidate, timeout)
        if finding.level is preflight.Level.error:
            fail(finding.message)
    if settings.should_auto_migrate:
        try:
            applied = migrate_up(migration_url)
        except psycopg2.Error as exc:
            fail(f"applying migrations failed: {' '.join(str(exc).split())}")
        if applied:
            # A log line (JSON under serve with LOG_FORMAT=json), not a bare print.
            logger.info("applied migrations: %s", ", ".join(applied))
        return
    pending = migration_status(migration_url).pending
    if pending:
        fail(preflight.pending_message(pending) + " or set AUTO_MIGRATE=true")


@contextmanager
def opened(settings: Settings) -> Iterator[Engine]:
    """The database, refused unless it can serve (`ready_database`), as an engine disposed of
    on the way out."""
    from backend.db.engine import create_db_engine

    url = database_url(settings)
    ready_database(settings, url)
    engine = create_db_engine(url, settings)
    try:
        yield engine
    finally:
        engine.dispose()
