"""The rendered workloads run: each container's own command, with the environment its
ConfigMap gives it and stand-ins for its Secrets, against a fresh real PostgreSQL. The pods
wait for the migrations, the migrations Job runs twice at once and once more, the API
serves and drains on SIGTERM, and the worker publishes to the sidecar's address with the
sidecar's token on the overlay's pub/sub and topics. (What a cluster adds, the read-only
root file system and the Dapr sidecar itself, cannot run here; test_manifests.py checks
the manifests ask for them.)"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg2
import pytest
from sqlalchemy.engine import make_url

from backend.db.engine import libpq_url
from tests.conftest import ROOT, _free_port, skip_or_fail_in_ci
from tests.deploy.test_manifests import _rendered, find, settings_map
from tests.events.conftest import Receiver, until
from tests.events.conftest import receiver as receiver  # the fixture

DATABASE = "task_api_deploy_test"


@pytest.fixture
def fresh_database(database_url: str) -> Iterator[str]:
    admin = psycopg2.connect(libpq_url(database_url))
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
        cur.execute(f"CREATE DATABASE {DATABASE}")
    url = make_url(libpq_url(database_url)).set(database=DATABASE)
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
        admin.close()


def container(workload: tuple[str, str], init: bool = False) -> dict[str, Any]:
    """The first (init) container of the local overlay's workload, as rendered."""
    kind, name = workload
    if shutil.which("kubectl") is None:
        skip_or_fail_in_ci("WORKLOAD TEST NOT RUN: kubectl is not installed")
    spec = find(list(_rendered("local")), kind, name)["spec"]["template"]["spec"]
    found: dict[str, Any] = spec["initContainers" if init else "containers"][0]
    return found


def environment(
    spec: dict[str, Any], secret_values: dict[tuple[str, str], str], **extra: str
) -> dict[str, str]:
    """What the kubelet would give the container: the ConfigMap (envFrom), then `env`, each
    secretKeyRef from `secret_values` (an `optional` one the Secret lacks: unset, as the
    kubelet leaves it); nothing from this test process but PATH."""
    scratch = tempfile.mkdtemp(prefix="task-api-pod-")
    env = {
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        "HOME": scratch,
        "TMPDIR": scratch,
    }
    env |= settings_map(list(_rendered("local")))
    for item in spec.get("env", []):
        ref = item.get("valueFrom", {}).get("secretKeyRef")
        if ref and ref.get("optional") and (ref["name"], ref["key"]) not in secret_values:
            continue
        env[item["name"]] = secret_values[(ref["name"], ref["key"])] if ref else item["value"]
    return env | extra


def command(spec: dict[str, Any]) -> list[str]:
    return [sys.executable if part == "python" else part for part in spec["command"]]


@pytest.fixture
def secret_values(fresh_database: str) -> dict[tuple[str, str], str]:
    return {
        ("task-api", "DATABASE_URL"): fresh_database,
        ("task-api", "DATABASE_MIGRATION_URL"): fresh_database,
        ("task-api", "JWT_SECRET"): secrets.token_urlsafe(48),
        ("dapr-api-token", "token"): secrets.token_urlsafe(32),
    }


def start(spec: dict[str, Any], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as output:
        return subprocess.Popen(
            command(spec), cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT
        )


def test_migrations_gate_the_pods_then_the_api_serves_and_drains(
    fresh_database: str, secret_values: dict[tuple[str, str], str], tmp_path: Path
) -> None:
    api = ("Deployment", "task-api")
    wait_spec = container(api, init=True)
    waiting = start(wait_spec, environment(wait_spec, secret_values), tmp_path / "w")
    job = container(("Job", "task-api-migrate"))
    job_env = environment(job, secret_values)
    try:
        # The init container has asked once, was told what is missing, and keeps waiting.
        until(
            lambda: "unapplied migration" in (tmp_path / "w").read_text(),
            timeout=60,
            message="the init container's first `check`",
        )
        assert waiting.poll() is None, (tmp_path / "w").read_text()
        # The Job twice at once (a retried pod beside a slow one), then once more.
        runs = [subprocess.Popen(command(job), cwd=ROOT, env=job_env) for _ in range(2)]
        assert [run.wait(timeout=120) for run in runs] == [0, 0]
        again = subprocess.run(
            command(job), cwd=ROOT, env=job_env, capture_output=True, text=True, timeout=120
        )
        assert again.returncode == 0, again.stderr
        assert waiting.wait(timeout=60) == 0  # `check` passed: the pod's containers start
    finally:
        if waiting.poll() is None:
            waiting.kill()
    assert (tmp_path / "w").read_text().rstrip().endswith("check passed")

    spec = container(api)
    port = _free_port()
    env = environment(spec, secret_values, HOST="127.0.0.1", PORT=str(port))
    server = start(spec, env, tmp_path / "api")
    try:
        base = f"http://127.0.0.1:{port}"

        def answers(path: str) -> bool:
            try:
                return httpx.get(base + path, timeout=2).status_code == 200
            except httpx.TransportError:
                return server.poll() is not None and pytest.fail((tmp_path / "api").read_text())

        until(lambda: answers("/health"), timeout=60, message="the liveness probe's path")
        # Ready once what the start loads beside it (the MCP endpoint) answers, as the
        # readiness probe waits for it. Each worker answers for itself (one's 200 can be
        # followed by another's 503 while its endpoint loads), so the answer is awaited whole.
        ready = {"data": {"status": "ready", "database": "ok", "migrations": "current"}}
        until(
            lambda: (
                answers("/health/ready")
                and httpx.get(f"{base}/health/ready", timeout=5).json() == ready
            ),
            timeout=60,
            message="the readiness probe's path",
        )
        server.send_signal(signal.SIGTERM)
        # The drain fits in what the pod allows after its preStop wait.
        pod = find(list(_rendered("local")), *api)["spec"]["template"]["spec"]
        allowed = (
            pod["terminationGracePeriodSeconds"] - spec["lifecycle"]["preStop"]["sleep"]["seconds"]
        )
        assert server.wait(timeout=allowed) == 0
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


def test_the_worker_publishes_through_the_sidecar_address_with_its_token(
    fresh_database: str,
    secret_values: dict[tuple[str, str], str],
    receiver: Receiver,
    tmp_path: Path,
) -> None:
    job = container(("Job", "task-api-migrate"))
    migrate = subprocess.run(
        command(job),
        cwd=ROOT,
        env=environment(job, secret_values),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert migrate.returncode == 0, migrate.stderr
    spec = container(("Deployment", "task-api-worker"))
    env = environment(spec, secret_values)
    # The sidecar's address is 127.0.0.1:3500 in the pod; here the receiver stands in for
    # Dapr on another loopback port, and the metrics port is a free one.
    assert env["DAPR_HTTP_ENDPOINT"] == "http://127.0.0.1:3500"
    env |= {"DAPR_HTTP_ENDPOINT": receiver.url, "WORKER_METRICS_HOST": "127.0.0.1"}
    env["WORKER_METRICS_PORT"] = str(_free_port())
    with psycopg2.connect(libpq_url(fresh_database)) as conn, conn.cursor() as cur:
        cur.execute("INSERT INTO users (id, email) VALUES ('u1', 'u1@example.com')")
        cur.execute("INSERT INTO tasks (user_id, title) VALUES ('u1', 'Ship it')")
    worker = start(spec, env, tmp_path / "worker")
    try:
        published = receiver.wait_for(2, "/v1.0/publish/")
        assert sorted(r.path for r in published) == [
            "/v1.0/publish/kafka-pubsub/task-events",
            "/v1.0/publish/kafka-pubsub/task-updates",
        ], (tmp_path / "worker").read_text()
        token = secret_values[("dapr-api-token", "token")]
        assert {r.headers["dapr-api-token"] for r in published} == {token}
        assert {r.json()["task_data"]["title"] for r in published} == {"Ship it"}
        metrics = f"http://127.0.0.1:{env['WORKER_METRICS_PORT']}"

        def answers(path: str) -> bool:
            try:
                return httpx.get(metrics + path, timeout=2).status_code == 200
            except httpx.TransportError:
                return False

        for probe in ("livenessProbe", "readinessProbe"):
            path = spec[probe]["httpGet"]["path"]
            until(lambda path=path: answers(path), message=f"the worker's {probe} at {path}")
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=60) == 0
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
