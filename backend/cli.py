"""Command line: `python -m backend <command>`.

serve     run the API (embedded PostgreSQL when DATABASE_URL is unset); add --dev locally
migrate   apply (up), roll back (down) or list (status) schema migrations
token     mint a bearer token for a user id, for curl
seed      fill a user's account with demo tasks (once: a second run adds nothing)
check     check the configuration, the database connection and the migrations
prune     delete expired Idempotency-Key records and task changes past retention
worker    deliver task events and due reminders to Dapr pub/sub and signed webhooks
events    event delivery: status (backlog; exit 1 when behind), dead, requeue
db        reset: delete the local embedded database (development)
openapi   print the OpenAPI document (specs/openapi.json is this output)
mcp       serve the MCP tools over stdio for one user (desktop agents)
mcp-tools print the MCP tool list (specs/mcp-tools.json is this output)

Every command reads its settings from the environment and `.env` (see README.md).
Add --help after a command for its options, e.g. `python -m backend seed --help`.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from pydantic import ValidationError
from pydantic_settings import SettingsError

from backend.config import Environment, Settings

if TYPE_CHECKING:
    from uvicorn.supervisors import Multiprocess

# What `--reload` watches: the code. Not .data/ (every database write changed a file there and
# restarted the server) nor tests or docs.
RELOAD_DIRS = (Path(__file__).resolve().parent,)
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


def _settings(dev: bool = False) -> Settings:
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


def _database_url(settings: Settings, *, for_migrations: bool = False) -> str:
    from backend.db.engine import resolve_database_url

    if for_migrations and settings.database_migration_url is not None:
        return settings.database_migration_url.get_secret_value()
    return resolve_database_url(settings)


# What uvicorn imports and calls in every worker (`--factory`): importing builds nothing.
APP_FACTORY = "backend.main:create_app"
# After SIGTERM, how long requests in flight may take before the workers stop anyway.
GRACEFUL_SHUTDOWN_SECONDS = 20


def _metrics_dir(settings: Settings, workers: int) -> None:
    """With several workers, metrics live in files every worker writes and any can read:
    a fresh private directory per run (no counts from an earlier run), removed on exit."""
    if not settings.serve_metrics or workers < 2:
        return
    import atexit
    import shutil
    import tempfile

    from backend.observability.metrics import MULTIPROC_ENV

    path = tempfile.mkdtemp(prefix="task-api-metrics-")  # mode 0700
    os.environ[MULTIPROC_ENV] = path  # before any worker imports prometheus_client
    atexit.register(shutil.rmtree, path, ignore_errors=True)


def cmd_serve(args: argparse.Namespace) -> int:
    import logging.config

    import uvicorn

    from backend.observability.logging import logging_config
    from backend.server import HttpLimits, protocol_factory

    settings = _settings(args.dev)
    log_config = logging_config(settings)
    logging.config.dictConfig(log_config)
    _metrics_dir(settings, args.workers)
    url = _database_url(settings)
    if settings.database_url is None:
        # Workers inherit the server this process started (and stops on exit).
        os.environ["TASK_API_EMBEDDED_URL"] = url
    _ready_database(settings, url)
    settings.signing_secret()  # create the development secret once, before workers start
    # uvicorn re-raises SIGTERM after its graceful shutdown; exiting through SystemExit instead
    # runs atexit, which stops the embedded PostgreSQL this process started.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    options: dict[str, Any] = {
        "host": args.host,
        "port": args.port,
        "workers": args.workers,
        "reload": args.reload,
        "reload_dirs": [str(path) for path in RELOAD_DIRS] if args.reload else None,
        "proxy_headers": True,
        "forwarded_allow_ips": args.forwarded_allow_ips,
        # After SIGTERM, in-flight requests get this long to finish; new connections are
        # refused from the start of the shutdown.
        "timeout_graceful_shutdown": GRACEFUL_SHUTDOWN_SECONDS,
        "log_level": settings.log_level.lower(),
        # Applied again in every worker; uvicorn's access log is replaced by ours.
        "log_config": log_config,
        "access_log": False,
        # No `server: uvicorn` banner: it only tells a scanner what to try.
        "server_header": False,
        # httptools with a bound on headers, a receive deadline and a connection limit.
        "http": protocol_factory(HttpLimits.from_settings(settings)),
    }
    if args.workers > 1 and not args.reload:
        config = uvicorn.Config(APP_FACTORY, factory=True, **options)
        _closing_supervisor()(config, sockets=[config.bind_socket()]).run()
    else:
        uvicorn.run(APP_FACTORY, factory=True, **options)
    return 0


def _closing_supervisor() -> type[Multiprocess]:
    from uvicorn.supervisors import Multiprocess

    class ClosingSupervisor(Multiprocess):
        """uvicorn's worker supervisor, but it closes its own copy of the listening socket
        before stopping the workers. uvicorn keeps it open until every worker has drained, so
        during a graceful shutdown the kernel kept accepting connections nobody would serve
        (clients hung until the parent exited) instead of refusing them."""

        def terminate_all(self) -> None:
            for sock in self.sockets:
                sock.close()
            super().terminate_all()

    return ClosingSupervisor


def _first_line(exc: Exception) -> str:
    from pydantic import ValidationError

    if isinstance(exc, ValidationError):
        error = exc.errors()[0]
        where = ".".join(str(p) for p in error["loc"])
        return f"{where}: {error['msg']}" if where else str(error["msg"])
    return str(exc).splitlines()[0]


def _fail(message: str) -> NoReturn:
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(1)


def _ready_database(settings: Settings, url: str) -> None:
    """Refuse to start on a database that cannot serve: one line saying what to fix, exit 1.

    Reachable within the connect timeout; migrations applied (applying them first when
    auto-migrate is on, otherwise refusing while any is pending).
    """
    import psycopg2

    from backend.db import preflight
    from backend.db.migrations import migrate_up, migration_status

    timeout = float(settings.db_connect_timeout_seconds)
    migration_url = _database_url(settings, for_migrations=True)
    names = ["DATABASE_URL"]
    if migration_url != url:
        names.append("DATABASE_MIGRATION_URL")
    for name, candidate in zip(names, (url, migration_url), strict=False):
        finding = preflight.probe(name, candidate, timeout)
        if finding.level is preflight.Level.error:
            _fail(finding.message)
    if settings.should_auto_migrate:
        try:
            applied = migrate_up(migration_url)
        except psycopg2.Error as exc:
            _fail(f"applying migrations failed: {' '.join(str(exc).split())}")
        if applied:
            # A log line (JSON under serve with LOG_FORMAT=json), not a bare print.
            logging.getLogger(__name__).info("applied migrations: %s", ", ".join(applied))
        return
    pending = migration_status(migration_url).pending
    if pending:
        _fail(preflight.pending_message(pending) + " or set AUTO_MIGRATE=true")


def cmd_check(args: argparse.Namespace) -> int:
    from backend.db import preflight

    settings = _settings(args.dev)
    print(f"ok    configuration: {settings.environment.value} mode, settings valid")
    findings: list[preflight.Finding] = []
    migration_url: str | None = None
    if settings.database_url is None:
        print("ok    DATABASE_URL unset: using the embedded PostgreSQL (development and tests)")
        url = _database_url(settings)
    else:
        url = settings.database_url.get_secret_value()
        direct = settings.database_migration_url
        migration_url = direct.get_secret_value() if direct is not None else None
        findings += preflight.lint_urls(url, migration_url)
    findings.append(preflight.probe("DATABASE_URL", url, args.timeout))
    if migration_url is not None:
        findings.append(preflight.probe("DATABASE_MIGRATION_URL", migration_url, args.timeout))
    if not any(f.level is preflight.Level.error for f in findings):
        findings.append(
            preflight.migrations_finding(
                migration_url or url, auto_migrate=settings.should_auto_migrate
            )
        )
    for finding in findings:
        print(
            finding.line(), file=sys.stdout if finding.level is preflight.Level.ok else sys.stderr
        )
    errors = sum(f.level is preflight.Level.error for f in findings)
    print("check failed" if errors else "check passed", file=sys.stderr if errors else sys.stdout)
    return 1 if errors else 0


def cmd_seed(args: argparse.Namespace) -> int:
    from backend.services.seed import seed_tasks

    settings = _settings(args.dev)
    url = _database_url(settings)
    _ready_database(settings, url)
    try:
        result = seed_tasks(url, settings, user=args.user, count=args.count, password=args.password)
    except ValueError as exc:  # pydantic's ValidationError included: a bad email or password
        _fail(f"seed: {_first_line(exc)}")
    print(result.summary())
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    import psycopg2

    from backend.db.migrations import migrate_down, migrate_up, migration_status

    url = _database_url(_settings(args.dev), for_migrations=True)
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
        _fail(
            f"migrate: cannot reach the database ({_first_line(exc)}); check with "
            "`python -m backend check`"
        )
    return 0


def cmd_prune(args: argparse.Namespace) -> int:
    from backend.db.engine import create_db_engine
    from backend.services.changes import prune
    from backend.services.idempotency import prune_expired

    settings = _settings(args.dev)
    url = _database_url(settings)
    _ready_database(settings, url)
    engine = create_db_engine(url, settings)
    try:
        deleted = prune_expired(engine)
        # Without a sink nothing delivers events: retention alone decides.
        changes = prune(
            engine, settings.change_retention_hours, undelivered=not settings.has_event_sinks
        )
    finally:
        engine.dispose()
    print(f"pruned {deleted} expired idempotency key{'s' if deleted != 1 else ''}")
    print(f"pruned {changes} task change{'s' if changes != 1 else ''} past retention")
    return 0


def cmd_db(args: argparse.Namespace) -> int:
    """`db reset`: delete the embedded development database (data folder) so that the next
    `serve --dev` creates and migrates a fresh one."""
    import shutil

    settings = _settings(args.dev)
    if settings.database_url is not None:
        _fail(
            "db reset only deletes the embedded development database; DATABASE_URL is set, so "
            "drop that database with the server's own tools"
        )
    data = settings.embedded_pg_dir
    if not data.exists():
        print(f"nothing to reset: no embedded database in {data}")
        return 0
    running = _running_postmaster(data)
    if running is not None:
        _fail(
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


def cmd_token(args: argparse.Namespace) -> int:
    from backend.auth.tokens import issue_token

    settings = _settings(args.dev)
    # External-style tokens (the account is provisioned on first use), so the API holds them
    # to JWT_MAX_TOKEN_LIFETIME_SECONDS: never print one it would refuse.
    cap = settings.jwt_max_token_lifetime_seconds
    if args.minutes is not None and args.minutes * 60 > cap:
        print(
            f"error: --minutes {args.minutes} is longer than JWT_MAX_TOKEN_LIFETIME_SECONDS "
            f"({cap} s = {cap // 60} minutes), so the API would refuse the token; raise that "
            "setting for longer-lived tokens",
            file=sys.stderr,
        )
        return 2
    seconds = args.minutes * 60 if args.minutes else settings.access_token_expire_minutes * 60
    print(issue_token(args.user_id, settings, expires_in=min(seconds, cap), local=False))
    return 0


def cmd_openapi(args: argparse.Namespace) -> int:
    settings = _settings(dev=True)  # before the import: backend.main builds an app from env
    from backend.main import create_app

    document = create_app(settings).openapi()
    print(json.dumps(document, indent=2, sort_keys=True))
    return 0


def cmd_mcp(args: argparse.Namespace) -> int:
    import anyio

    from backend.auth.tokens import InvalidToken, JwksUnavailable
    from backend.auth.verifier import TokenVerifier
    from backend.db.engine import create_db_engine
    from backend.errors import AppError
    from backend.mcp.stdio import (
        StdioIdentity,
        check_account,
        serve,
        stdio_server_for,
        stdout_to_stderr,
    )

    settings = _settings(args.dev)
    token = args.token or os.environ.get(MCP_TOKEN_ENV) or None
    if (token is None) == (args.user is None):
        _fail(f"mcp: name the user: --user USER_ID, or a bearer token in {MCP_TOKEN_ENV}")
    identity = StdioIdentity(token=token, user_id=args.user)
    # Until the protocol owns it, nothing may reach stdout (the embedded server starts here).
    with stdout_to_stderr():
        url = _database_url(settings)
        _ready_database(settings, url)
        engine = create_db_engine(url, settings)
        try:
            user_id = check_account(engine, settings, identity.claims(TokenVerifier(settings)))
        except (InvalidToken, JwksUnavailable):
            _fail("mcp: the token is invalid or expired, or its issuer's keys cannot be fetched")
        except AppError as exc:
            _fail(f"mcp: {exc.message}")
        except ValueError as exc:
            _fail(f"mcp: --user: {exc}")
    logging.getLogger(__name__).info("serving the MCP tools over stdio for user %s", user_id)
    try:
        anyio.run(serve, stdio_server_for(engine, settings, identity))
    finally:
        engine.dispose()
    return 0


def cmd_mcp_tools(args: argparse.Namespace) -> int:
    from backend.mcp.tools import tools_document

    print(json.dumps(tools_document(), indent=2, sort_keys=True, ensure_ascii=False))
    return 0


# The stdio server's bearer token: an environment variable keeps it out of `ps` listings.
MCP_TOKEN_ENV = "TASK_API_TOKEN"  # noqa: S105 (a variable's name, not a secret)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m backend",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    dev_help = "development mode: embedded database, auto-migrate, generated secret"

    serve = sub.add_parser(
        "serve",
        help="run the API server",
        description="Run the API with uvicorn. Without DATABASE_URL (development and tests) "
        "it starts an embedded PostgreSQL. Before starting it checks that the database answers "
        "and its migrations are applied (applying them when auto-migrate is on), and exits "
        "with one line saying what to fix if not. Swagger UI is at /docs.",
    )
    serve.add_argument(
        "--host",
        default=os.environ.get("HOST", "127.0.0.1"),
        help="interface to bind (default 127.0.0.1; env HOST)",
    )
    serve.add_argument(
        "--port",
        type=int,
        default=int(os.environ.get("PORT", "8000")),
        help="port (default 8000; env PORT)",
    )
    serve.add_argument(
        "--workers",
        type=int,
        default=int(os.environ.get("WEB_CONCURRENCY", "1")),
        help="worker processes (default 1; env WEB_CONCURRENCY)",
    )
    serve.add_argument("--reload", action="store_true", help="reload on code changes")
    serve.add_argument(
        "--forwarded-allow-ips",
        default=os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1"),
        help="comma-separated proxy IPs (or '*') whose X-Forwarded-For/-Proto headers are "
        "trusted (default 127.0.0.1; env FORWARDED_ALLOW_IPS)",
    )
    serve.add_argument("--dev", action="store_true", help=dev_help)
    serve.set_defaults(func=cmd_serve)

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
    migrate.add_argument("--dev", action="store_true", help=dev_help)
    migrate.set_defaults(func=cmd_migrate)

    token = sub.add_parser(
        "token",
        help="mint a bearer token for a user id",
        description="Print an HS256 bearer token for USER_ID, signed with JWT_SECRET, for curl "
        "and scripts: export TOKEN=$(python -m backend token alice --dev). The account is "
        "created on the token's first use.",
    )
    token.add_argument("user_id", help="the token's `sub`")
    token.add_argument(
        "--minutes",
        type=int,
        default=None,
        help="lifetime (default ACCESS_TOKEN_EXPIRE_MINUTES, at most "
        "JWT_MAX_TOKEN_LIFETIME_SECONDS)",
    )
    token.add_argument("--dev", action="store_true", help=dev_help)
    token.set_defaults(func=cmd_token)

    seed = sub.add_parser(
        "seed",
        help="fill a user's account with demo tasks",
        description="Create demo tasks for one user, through the same service the API uses "
        "(so every validation rule holds), with a progress bar. USER is an account's email "
        "or id; an unknown email is registered with --password, an unknown id is created "
        "like a token's first use (sign in with `python -m backend token ID`).",
    )
    seed.add_argument(
        "user",
        nargs="?",
        default="demo@example.com",
        help="email or user id to seed (default demo@example.com)",
    )
    seed.add_argument("--count", type=int, default=25, help="tasks to create (1-1000, default 25)")
    seed.add_argument(
        "--password",
        default="demo-password",
        help="password for a newly registered email account (default demo-password)",
    )
    seed.add_argument("--dev", action="store_true", help=dev_help)
    seed.set_defaults(func=cmd_seed)

    check = sub.add_parser(
        "check",
        help="check configuration, database reachability and migrations",
        description="Validate the settings, lint DATABASE_URL / DATABASE_MIGRATION_URL for the "
        "usual Neon mistakes (missing sslmode, pooled host for migrations, direct host for "
        "the app), connect to each with a bounded timeout, and verify that every migration is "
        "applied. Prints one line per finding; exits 1 if any is an error.",
    )
    check.add_argument(
        "--timeout",
        type=float,
        default=5.0,
        help="seconds to wait for each database connection (default 5)",
    )
    check.add_argument("--dev", action="store_true", help=dev_help)
    check.set_defaults(func=cmd_check)

    prune = sub.add_parser(
        "prune",
        help="delete expired Idempotency-Key records",
        description="Delete every expired Idempotency-Key record (kept "
        "IDEMPOTENCY_KEY_TTL_SECONDS, 24 h by default) in batches of short transactions. "
        "Keyed writes already prune a bounded batch each; run this from cron or a deploy "
        "hook to keep the table small when keyed writes are rare.",
    )
    prune.add_argument("--dev", action="store_true", help=dev_help)
    prune.set_defaults(func=cmd_prune)

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
    db.add_argument("--dev", action="store_true", help=dev_help)
    db.set_defaults(func=cmd_db)

    openapi = sub.add_parser(
        "openapi",
        help="print the OpenAPI document as JSON",
        description="Print the OpenAPI document without starting the server or touching a "
        "database: python -m backend openapi > specs/openapi.json",
    )
    openapi.set_defaults(func=cmd_openapi)

    mcp = sub.add_parser(
        "mcp",
        help="serve the MCP tools over stdio for one user",
        description="Serve the MCP tools (the same as /mcp over HTTP) on stdin/stdout, for a "
        "desktop agent that starts its MCP servers as subprocesses. The user is a bearer "
        f"token's, from {MCP_TOKEN_ENV} (or --token; checked again on every call), or --user "
        "USER_ID (its account is created on first use, like a `token` command token). "
        "Without DATABASE_URL it uses the embedded PostgreSQL (--dev: the one `serve --dev` "
        "uses). Logs go to stderr.",
    )
    who = mcp.add_mutually_exclusive_group()
    who.add_argument("--user", metavar="USER_ID", help="act as this user id")
    who.add_argument(
        "--token",
        help=f"act as this token's user (prefer {MCP_TOKEN_ENV}: arguments show in `ps`)",
    )
    mcp.add_argument("--dev", action="store_true", help=dev_help)
    mcp.set_defaults(func=cmd_mcp)

    mcp_tools = sub.add_parser(
        "mcp-tools",
        help="print the MCP tool list as JSON",
        description="Print every MCP tool with its input and output schema and annotations, "
        "as tools/list returns them, without a database: "
        "python -m backend mcp-tools > specs/mcp-tools.json",
    )
    mcp_tools.set_defaults(func=cmd_mcp_tools)

    from backend.events.cli import add_commands

    add_commands(sub, dev_help)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # check and seed print their own findings; library chatter would bury them.
    quiet = args.command in {
        "check",
        "seed",
        "token",
        "openapi",
        "prune",
        "db",
        "mcp-tools",
        "events",
    }
    logging.basicConfig(
        level=logging.WARNING if quiet else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    logging.getLogger(__name__).setLevel(logging.INFO)  # its own few lines always show
    # initdb/pg_ctl output and migration steps buried the start-up; LOG_LEVEL=DEBUG shows them.
    from backend.observability.logging import CHATTY_LOGGERS

    debug = os.environ.get("LOG_LEVEL", "").upper() == "DEBUG"
    for name in CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG if debug else logging.WARNING)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    raise SystemExit(main())
