"""Running the real CLI in a subprocess, and loopback endpoints that misbehave on purpose."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from tests.conftest import ROOT, TEST_SECRET

# Settings a test may set; cleared so the developer's own environment never leaks in.
_SETTINGS = (
    "DATABASE_URL",
    "DATABASE_MIGRATION_URL",
    "BETTER_AUTH_SECRET",
    "CORS_ORIGINS",
    "AUTO_MIGRATE",
    "EMBEDDED_PG_DIR",
    "TASK_API_EMBEDDED_URL",
    "LOG_FORMAT",
    "METRICS_ENABLED",
    "METRICS_TOKEN",
    "PROMETHEUS_MULTIPROC_DIR",
)


def run_cli(*args: str, timeout: float = 60, **env: str) -> subprocess.CompletedProcess[str]:
    """`python -m backend ARGS` with ENVIRONMENT=test, the test secret, and `env` on top."""
    base = {k: v for k, v in os.environ.items() if k not in _SETTINGS}
    base.update({"ENVIRONMENT": "test", "JWT_SECRET": TEST_SECRET, "LOG_LEVEL": "WARNING"})
    base.update(env)
    return subprocess.run(
        [sys.executable, "-m", "backend", *args],
        cwd=ROOT,
        env=base,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def silent_listener() -> Iterator[int]:
    """A loopback port that accepts TCP connections and never says a word: what a database
    behind a black-holing firewall looks like to libpq once the handshake is under way."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        port: int = sock.getsockname()[1]
        yield port
