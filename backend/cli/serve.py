"""`python -m backend serve`: the API under uvicorn."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from backend.cli.common import DEV_HELP, database_url, load_settings, ready_database
from backend.config import Settings

if TYPE_CHECKING:
    from uvicorn.supervisors import Multiprocess

    from backend.cli.common import Subcommands

# What `--reload` watches: backend/, not .data/ (every database write would restart it).
RELOAD_DIRS = (Path(__file__).resolve().parent.parent,)
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

    settings = load_settings(args.dev)
    log_config = logging_config(settings)
    logging.config.dictConfig(log_config)
    _metrics_dir(settings, args.workers)
    url = database_url(settings)
    if settings.database_url is None:
        # Workers inherit the server this process started (and stops on exit).
        os.environ["TASK_API_EMBEDDED_URL"] = url
    ready_database(settings, url)
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
        # After SIGTERM, requests in flight get this long; new connections are refused.
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
        """uvicorn's worker supervisor, closing its own copy of the listening socket before
        stopping the workers: kept open, the kernel accepts connections nobody will serve."""

        def terminate_all(self) -> None:
            for sock in self.sockets:
                sock.close()
            super().terminate_all()

    return ClosingSupervisor


def add_serve(sub: Subcommands) -> None:
    serve = sub.add_parser(
        "serve",
        help="run the API (embedded PostgreSQL when DATABASE_URL is unset); add --dev locally",
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
    serve.add_argument("--dev", action="store_true", help=DEV_HELP)
    serve.set_defaults(func=cmd_serve)
