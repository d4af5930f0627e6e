"""Readiness: is the database reachable, and are its migrations the ones this code expects?"""

from __future__ import annotations

from sqlalchemy import Engine, text


def pending_migrations(engine: Engine, expected: frozenset[str]) -> list[str]:
    """The migrations the database has not applied, in order; `SQLAlchemyError` if unreachable."""
    with engine.connect() as conn:
        # to_regclass: a database never migrated has no bookkeeping table yet.
        table = conn.scalar(text("SELECT to_regclass('_yoyo_migration')::text"))
        applied = (
            set(conn.scalars(text("SELECT migration_id FROM _yoyo_migration"))) if table else set()
        )
    return sorted(expected - applied)
