"""Command line: `python -m backend <command>` (or the `task-api` script).

serve     run the API (embedded PostgreSQL when DATABASE_URL is unset)
migrate   apply (up), roll back (down) or list (status) schema migrations
token     mint a bearer token for a user id, for curl
openapi   print the OpenAPI document (specs/openapi.json is this output)
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
from collections.abc import Sequence

from pydantic import ValidationError

from backend.config import Environment, Settings


def _settings(dev: bool = False) -> Settings:
    if dev:
        os.environ.setdefault("ENVIRONMENT", Environment.development.value)
    try:
        return Settings()
    except ValidationError as exc:
        # One line per problem, no traceback: these are configuration mistakes.
        for error in exc.errors():
            where = ".".join(str(p) for p in error["loc"]).upper()
            message = str(error["msg"]).removeprefix("Value error, ")
            print(f"configuration error: {where + ': ' if where else ''}{message}", file=sys.stderr)
        raise SystemExit(2) from None


def _database_url(settings: Settings, *, for_migrations: bool = False) -> str:
    from backend.db import resolve_database_url

    if for_migrations and settings.database_migration_url is not None:
        return settings.database_migration_url.get_secret_value()
    return resolve_database_url(settings)


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from backend.migrations import migrate_up

    settings = _settings(args.dev)
    url = _database_url(settings)
    if settings.database_url is None:
        # Workers inherit the server this process started (and stops on exit).
        os.environ["TASK_API_EMBEDDED_URL"] = url
    if settings.should_auto_migrate:
        applied = migrate_up(_database_url(settings, for_migrations=True))
        if applied:
            print(f"applied migrations: {', '.join(applied)}", file=sys.stderr)
    settings.signing_secret()  # create the development secret once, before workers start
    # uvicorn re-raises SIGTERM after its graceful shutdown; exiting through SystemExit instead
    # runs atexit, which stops the embedded PostgreSQL this process started.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    uvicorn.run(
        "backend.main:app",
        host=args.host,
        port=args.port,
        workers=args.workers,
        reload=args.reload,
        proxy_headers=True,
        forwarded_allow_ips=args.forwarded_allow_ips,
        timeout_graceful_shutdown=20,
        log_level=settings.log_level.lower(),
    )
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    from backend.migrations import migrate_down, migrate_up, migration_status

    url = _database_url(_settings(args.dev), for_migrations=True)
    if args.action == "up":
        applied = migrate_up(url)
        print("applied: " + (", ".join(applied) if applied else "nothing, schema is current"))
    elif args.action == "down":
        rolled_back = migrate_down(url, steps=args.steps)
        print("rolled back: " + (", ".join(rolled_back) if rolled_back else "nothing"))
    else:
        status = migration_status(url)
        print(json.dumps({"applied": status.applied, "pending": status.pending}, indent=2))
    return 0


def cmd_token(args: argparse.Namespace) -> int:
    from backend.security import issue_token

    settings = _settings(args.dev)
    minutes = args.minutes or settings.access_token_expire_minutes
    print(issue_token(args.user_id, settings, expires_in=minutes * 60, local=False))
    return 0


def cmd_openapi(args: argparse.Namespace) -> int:
    settings = _settings(dev=True)  # before the import: backend.main builds an app from env
    from backend.main import create_app

    document = create_app(settings).openapi()
    print(json.dumps(document, indent=2, sort_keys=True))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="task-api", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    dev_help = "development mode: embedded database, auto-migrate, generated secret"

    serve = sub.add_parser("serve", help="run the API server")
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
        default="127.0.0.1",
        help="proxies whose X-Forwarded-* headers are trusted",
    )
    serve.add_argument("--dev", action="store_true", help=dev_help)
    serve.set_defaults(func=cmd_serve)

    migrate = sub.add_parser("migrate", help="apply or roll back schema migrations")
    migrate.add_argument("action", choices=["up", "down", "status"], nargs="?", default="up")
    migrate.add_argument("--steps", type=int, default=1, help="how many to roll back (down)")
    migrate.add_argument("--dev", action="store_true", help=dev_help)
    migrate.set_defaults(func=cmd_migrate)

    token = sub.add_parser("token", help="mint a bearer token for a user id")
    token.add_argument("user_id", help="the token's `sub`")
    token.add_argument(
        "--minutes", type=int, default=None, help="lifetime (default ACCESS_TOKEN_EXPIRE_MINUTES)"
    )
    token.add_argument("--dev", action="store_true", help=dev_help)
    token.set_defaults(func=cmd_token)

    openapi = sub.add_parser("openapi", help="print the OpenAPI document as JSON")
    openapi.set_defaults(func=cmd_openapi)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    args = build_parser().parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    raise SystemExit(main())
