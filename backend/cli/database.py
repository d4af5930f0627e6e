"""`python -m backend migrate|prune|db`: the schema, housekeeping, and the local database."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

from backend.cli.common import DEV_HELP, database_url, fail, first_line, load_settings, opened

if TYPE_CHECKING:
    from backend.cli.common import Subcommands


def cmd_migrate(args: argparse.Namespace) -> int:
    import psycopg2

    from backend.db.migrations import migrate_down, migrate_up, migration_status

    url = database_url(load_settings(args.dev), for_migrations=True)
    try:
        if args.action == "up":
            applied = migrate_up(url)
            print("applied: " + (", ".join(applied) if applied else "nothing, schema is current"))
        elif args.action == "down":
            rolled_back = migrate_down(url, steps=args.steps)
            print("rolled back: " + (", ".join(rolled_back) if rolled_back else "nothing"))
        else:
            status = migration_status(url)
            print(json.dumps({"applied": status.applied, "pending": status.pending}, indent=2))
    except psycopg2.OperationalError as exc:
        fail(
            f"migrate: cannot reach the database ({first_line(exc)}); check with "
            "`python -m backend check`"
        )
    return 0


def cmd_prune(args: argparse.Namespace) -> int:
    from backend.services.history.changes import prune
    from backend.services.idempotency import prune_expired

    settings = load_settings(args.dev)
    with opened(settings) as engine:
        deleted = prune_expired(engine)
        # Without a sink nothing delivers events: retention alone decides.
        changes = prune(
            engine, settings.change_retention_hours, undelivered=not settings.has_event_sinks
        )
    print(f"pruned {deleted} expired idempotency key{'s' if deleted != 1 else ''}")
    print(f"pruned {changes} task change{'s' if changes != 1 else ''} past retention")
    return 0


def cmd_db(args: argparse.Namespace) -> int:
    """`db reset`: delete the embedded development database (data folder) so that the next
    `serve --dev` creates and migrates a fresh one."""
    import shutil

    settings = load_settings(args.dev)
    if settings.database_url is not None:
        fail(
            "db reset only deletes the embedded development database; DATABASE_URL is set, so "
            "drop that database with the server's own tools"
        )
    data = settings.embedded_pg_dir
    if not data.exists():
        print(f"nothing to reset: no embedded database in {data}")
        return 0
    running = _running_postmaster(data)
    if running is not None:
        fail(
            f"the embedded PostgreSQL in {data} is running (pid {running}): stop "
            "`python -m backend serve` first (Ctrl+C), then run this again"
        )
    shutil.rmtree(data)
    print(f"deleted the embedded database in {data}; the next `serve --dev` starts afresh")
    return 0


def _running_postmaster(data: Path) -> int | None:
    """The pid in `data`/postmaster.pid if that process is alive (PostgreSQL's own lock file)."""
    import psutil

    try:
        pid = int((data / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return pid if psutil.pid_exists(pid) else None


def add_migrate(sub: Subcommands) -> None:
    migrate = sub.add_parser(
        "migrate",
        help="apply or roll back schema migrations",
        description="Apply, roll back or list the SQL migrations in migrations/. Uses "
        "DATABASE_MIGRATION_URL when set (Neon's direct host), else DATABASE_URL.",
    )
    migrate.add_argument(
        "action",
        choices=["up", "down", "status"],
        nargs="?",
        default="up",
        help="up: apply pending (default); down: roll back the newest --steps; "
        "status: print applied and pending as JSON",
    )
    migrate.add_argument("--steps", type=int, default=1, help="how many to roll back (down)")
    migrate.add_argument("--dev", action="store_true", help=DEV_HELP)
    migrate.set_defaults(func=cmd_migrate)


def add_prune(sub: Subcommands) -> None:
    prune = sub.add_parser(
        "prune",
        help="delete expired Idempotency-Key records and task changes past retention",
        description="Delete every expired Idempotency-Key record (kept "
        "IDEMPOTENCY_KEY_TTL_SECONDS, 24 h by default) in batches of short transactions. "
        "Keyed writes already prune a bounded batch each; run this from cron or a deploy "
        "hook to keep the table small when keyed writes are rare.",
    )
    prune.add_argument("--dev", action="store_true", help=DEV_HELP)
    prune.set_defaults(func=cmd_prune)


def add_db(sub: Subcommands) -> None:
    db = sub.add_parser(
        "db",
        help="reset the local embedded database",
        description="reset: delete the embedded PostgreSQL's data folder (EMBEDDED_PG_DIR, "
        "default .data/postgres) so that the next `serve --dev` creates and migrates a fresh "
        "database. Refuses while the server runs (stop `serve` with Ctrl+C: it stops the "
        "embedded server it started) and when DATABASE_URL is set. The development signing "
        "secret (.data/dev-jwt-secret) is kept.",
    )
    db.add_argument("action", choices=["reset"], help="reset: delete the local database")
    db.add_argument("--dev", action="store_true", help=DEV_HELP)
    db.set_defaults(func=cmd_db)
