"""compose.yaml cannot be started here (no engine runs containers), but its PgBouncer
configuration can: Debian's pgbouncer (the package the compose service installs) runs the
`pgbouncer.ini` and user list from compose.yaml, with only the addresses changed, in front of a
real PostgreSQL, and a client signs in with SCRAM as the app would."""

from __future__ import annotations

import os
import pwd
import re
import shutil
import subprocess
import time
from collections.abc import Iterator

import psycopg2
import pytest
import yaml

from backend.db.embedded import ensure_system_user
from tests.conftest import ROOT, _free_port
from tests.reliability.servers import (
    DedicatedPostgres,
    _scratch_dir,
    _unprivileged,
    require_pgbouncer,
)

PASSWORD = "compose-test-password"


def compose_file(name: str) -> str:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    content: str = compose["configs"][name]["content"]
    # Compose's own interpolation, for the one variable these files use.
    return content.replace("${POSTGRES_PASSWORD:-task-api-local-only}", PASSWORD)


@pytest.fixture
def postgres() -> Iterator[DedicatedPostgres]:
    server = DedicatedPostgres()
    server.start()
    try:
        admin = psycopg2.connect(server.url())
        admin.autocommit = True
        with admin.cursor() as cur:
            cur.execute(f"CREATE ROLE task_api LOGIN PASSWORD '{PASSWORD}'")
            cur.execute("CREATE DATABASE task_api OWNER task_api")
        admin.close()
        yield server
    finally:
        server.close()


def test_compose_pgbouncer_config_pools_transactions_with_scram(
    postgres: DedicatedPostgres,
) -> None:
    binary = require_pgbouncer()
    root = _scratch_dir("task-api-compose-pgbouncer-")
    port = _free_port()
    ini = compose_file("pgbouncer.ini")
    assert "host=postgres port=5432" in ini and "listen_port = 6432" in ini
    ini = ini.replace("host=postgres port=5432", f"host=127.0.0.1 port={postgres.port}")
    ini = ini.replace("listen_addr = 0.0.0.0", "listen_addr = 127.0.0.1")
    ini = ini.replace("listen_port = 6432", f"listen_port = {port}")
    ini = ini.replace("/etc/pgbouncer/userlist.txt", str(root / "userlist.txt"))
    (root / "pgbouncer.ini").write_text(ini)
    (root / "userlist.txt").write_text(compose_file("pgbouncer-users"))
    user = ensure_system_user()
    if user is not None:
        entry = pwd.getpwnam(user)
        for path in root.iterdir():
            os.chown(path, entry.pw_uid, entry.pw_gid)
    log = root / "pgbouncer.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [str(binary), str(root / "pgbouncer.ini")],
            stdout=output,
            stderr=subprocess.STDOUT,
            cwd=root,
            **_unprivileged(),
        )
    url = f"postgresql://task_api:{PASSWORD}@127.0.0.1:{port}/task_api"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                connection = psycopg2.connect(url, connect_timeout=2)
                break
            except psycopg2.OperationalError:
                assert process.poll() is None and time.monotonic() < deadline, log.read_text()
                time.sleep(0.2)
        with connection, connection.cursor() as cur:
            cur.execute("SELECT current_user, current_database()")
            assert cur.fetchone() == ("task_api", "task_api")
        connection.close()
        # A wrong password is refused by the pooler itself.
        with pytest.raises(psycopg2.OperationalError):
            psycopg2.connect(url.replace(PASSWORD, "wrong"), connect_timeout=5)
        # Transaction pooling, as Neon's pooler.
        assert re.search(r"^pool_mode = transaction$", ini, re.MULTILINE)
    finally:
        process.terminate()
        process.wait(timeout=10)
        shutil.rmtree(root, ignore_errors=True)
