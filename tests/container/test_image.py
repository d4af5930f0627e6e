"""The Dockerfile, built for real with podman and started (tests/container/podman.py says how):
production behind PgBouncer in transaction mode with migrations through the direct
connection, as compose.yaml and Neon run it; and development mode with its embedded
PostgreSQL, as the unprivileged user the image runs as."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import _free_port
from tests.container.podman import (
    build_image,
    container,
    ensure_base_image,
    inspect,
    require_podman,
    wait_until_ready,
)

# Building the base from nothing (debootstrap) and the image takes minutes on a cold machine.
pytestmark = pytest.mark.timeout(1800)


@pytest.fixture(scope="module")
def image() -> str:
    require_podman()
    return build_image(ensure_base_image())


@pytest.fixture
def databases() -> Iterator[tuple[str, str]]:
    """(pooled URL through PgBouncer in transaction mode, direct URL) of a fresh database."""
    from tests.reliability.servers import DedicatedPostgres, PgBouncer

    postgres = DedicatedPostgres()
    postgres.start()
    pooler = None
    try:
        direct = postgres.create_database("task_api_image")
        pooler = PgBouncer(postgres)
        yield pooler.url("task_api_image"), direct
    finally:
        if pooler is not None:
            pooler.close()
        postgres.close()


def test_image_is_small_and_runs_as_an_unprivileged_user(image: str) -> None:
    inspected = inspect(image)
    assert inspected["Config"]["User"] == "app"
    assert inspected["Config"]["Cmd"] == ["python", "-m", "backend", "serve"]
    assert inspected["Healthcheck"]["Test"][0] == "CMD"
    with container(image) as box:
        uid, _ = box.user_ids()
        assert uid != 0
        # Runtime stage: the venv and the code, no pip, no tests, no build tools.
        assert (box.root / "opt/venv/bin/python").exists()
        assert not list((box.root / "opt/venv/bin").glob("pip*"))
        assert not (box.root / "app/tests").exists()
        assert not (box.root / "usr/bin/gcc").exists()
        # Nothing of its own code is writable by the app's user; only its data folder is.
        assert (box.root / "app/backend/cli/__init__.py").stat().st_uid == 0
        assert (box.root / "app/.data").stat().st_uid == uid
    # Base (Debian minbase + Python, ~130 MB) plus the locked runtime venv.
    assert inspected["Size"] < 600 * 1024 * 1024


def test_image_serves_ready_through_pgbouncer_after_migrating_directly(
    image: str, databases: tuple[str, str]
) -> None:
    pooled, direct = databases
    port = _free_port()
    env = {
        "ENVIRONMENT": "production",
        "JWT_SECRET": secrets.token_urlsafe(48),
        "DATABASE_URL": pooled,
        "DATABASE_MIGRATION_URL": direct,
        # Loopback only: the container shares the host's network here.
        "HOST": "127.0.0.1",
        "PORT": str(port),
    }
    base_url = f"http://127.0.0.1:{port}"
    with container(image) as box:
        # The documented release step: migrations once, through the direct connection.
        migrated = box.run(["python", "-m", "backend", "migrate", "up"], env)
        assert migrated.returncode == 0, migrated.stdout + migrated.stderr
        assert "0001_users" in migrated.stdout

        started = box.start(env)  # the image's own CMD: serve, WEB_CONCURRENCY=2 workers
        ready = wait_until_ready(base_url, started)
        assert ready["data"] == {"status": "ready", "database": "ok", "migrations": "current"}

        # A real write and read through the pooler.
        registered = httpx.post(
            f"{base_url}/api/auth/register",
            json={"email": "image@example.com", "password": "correct horse battery"},
            timeout=10,
        )
        assert registered.status_code == 201, registered.text
        headers = {"Authorization": f"Bearer {registered.json()['data']['access_token']}"}
        created = httpx.post(
            f"{base_url}/api/tasks", json={"title": "From the image"}, headers=headers, timeout=10
        )
        assert created.status_code == 201, created.text
        listed = httpx.get(f"{base_url}/api/tasks", headers=headers, timeout=10)
        assert [t["title"] for t in listed.json()["data"]] == ["From the image"]

        # The serving process is the image's unprivileged user, not root.
        status = (box.root / "proc" / str(started.process.pid) / "status").read_text()
        uid_line = next(line for line in status.splitlines() if line.startswith("Uid:"))
        assert uid_line.split()[1] == str(box.user_ids()[0])

        # The image's HEALTHCHECK command passes against it.
        test = box.healthcheck["Test"]
        assert test[0] == "CMD", box.healthcheck
        checked = box.run(test[1:], env)
        assert checked.returncode == 0, checked.stderr

        assert box.stop(started) == 0, started.output()[-3000:]


def test_image_development_mode_starts_its_embedded_database(image: str) -> None:
    port = _free_port()
    env = {"ENVIRONMENT": "development", "HOST": "127.0.0.1", "PORT": str(port)}
    with container(image) as box:
        started = box.start(env)
        ready = wait_until_ready(f"http://127.0.0.1:{port}", started, deadline_s=120)
        assert ready["data"]["migrations"] == "current"
        uid, _ = box.user_ids()
        assert (box.root / "app/.data/postgres/PG_VERSION").stat().st_uid == uid
        assert box.stop(started) == 0, started.output()[-3000:]
        # serve stopped the embedded server it started.
        assert not (box.root / "app/.data/postgres/postmaster.pid").exists()
