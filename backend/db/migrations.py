"""Schema migrations: the SQL files in `migrations/`, applied by yoyo under its lock (several
replicas starting at once apply each exactly once)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from yoyo import get_backend, read_migrations

from backend.db.engine import libpq_url

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"


@dataclass(frozen=True)
class MigrationStatus:
    applied: list[str]
    pending: list[str]


@contextmanager
def _backend(url: str) -> Iterator[Any]:
    backend = get_backend(libpq_url(url))
    try:
        yield backend
    finally:
        backend.connection.close()


def migration_ids() -> frozenset[str]:
    """The ids of the migration files shipped with this code."""
    return frozenset(m.id for m in read_migrations(str(MIGRATIONS_DIR)))


def migrate_up(url: str) -> list[str]:
    """Apply every pending migration; return the ids applied."""
    with _backend(url) as backend, backend.lock():
        pending = backend.to_apply(read_migrations(str(MIGRATIONS_DIR)))
        backend.apply_migrations(pending)
        return [m.id for m in pending]


def migrate_down(url: str, steps: int = 1) -> list[str]:
    """Roll back the newest `steps` applied migrations; return the ids rolled back."""
    with _backend(url) as backend, backend.lock():
        chosen = backend.to_rollback(read_migrations(str(MIGRATIONS_DIR)))[:steps]
        backend.rollback_migrations(chosen)
        return [m.id for m in chosen]


def migration_status(url: str) -> MigrationStatus:
    migrations = read_migrations(str(MIGRATIONS_DIR))
    with _backend(url) as backend:
        pending = {m.id for m in backend.to_apply(migrations)}
    ids = [m.id for m in migrations]
    return MigrationStatus(
        applied=[i for i in ids if i not in pending], pending=[i for i in ids if i in pending]
    )
