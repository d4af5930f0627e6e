"""The Dockerfile and compose.yaml as text: the locked install, the non-root user, the
HEALTHCHECK command against a live server (and a dead one), the build context, and the
compose topology. tests/container builds the image for real and starts it."""

from __future__ import annotations

import json
import os
import re
import subprocess
from urllib.parse import urlsplit

import pytest
import yaml

from tests.cli.helpers import closed_port
from tests.conftest import ROOT

DOCKERFILE = (ROOT / "Dockerfile").read_text()


def instructions(name: str) -> list[str]:
    """The arguments of every `NAME ...` instruction, continuation lines joined."""
    joined = re.sub(r"\\\n\s*", " ", DOCKERFILE)
    return [line.split(None, 1)[1] for line in joined.splitlines() if line.startswith(name + " ")]


def test_both_stages_use_the_base_image_argument() -> None:
    assert re.search(r"^ARG BASE_IMAGE=python:3\.11-slim-bookworm$", DOCKERFILE, re.MULTILINE)
    assert instructions("FROM") == ["${BASE_IMAGE} AS build", "${BASE_IMAGE} AS runtime"]


def test_installs_the_locked_runtime_dependencies_with_hashes() -> None:
    [venv] = [run for run in instructions("RUN") if "pip install" in run]
    assert "--require-hashes" in venv and "-r /tmp/requirements.lock" in venv
    assert "COPY requirements.lock /tmp/requirements.lock" in DOCKERFILE
    # The runtime stage gets the finished venv; nothing is resolved there.
    runtime = DOCKERFILE.split("AS runtime", 1)[1]
    assert "pip install" not in runtime
    assert "COPY --from=build /opt/venv /opt/venv" in runtime


def test_runs_as_a_non_root_user() -> None:
    users = instructions("USER")
    assert users and users[-1] not in {"root", "0"}
    assert any(re.search(rf"^useradd .*\b{users[-1]}$", run) for run in instructions("RUN"))
    assert json.loads(instructions("CMD")[0]) == ["python", "-m", "backend", "serve"]
    # Development mode's data folder is the only thing the app's user owns.
    assert f"chown {users[-1]}:{users[-1]} .data" in DOCKERFILE


def healthcheck_command() -> list[str]:
    [healthcheck] = instructions("HEALTHCHECK")
    command: list[str] = json.loads(healthcheck.split("CMD", 1)[1])
    return command


def test_healthcheck_passes_against_a_live_server(live_server: str) -> None:
    port = str(urlsplit(live_server).port)
    result = subprocess.run(
        healthcheck_command(), env={**os.environ, "PORT": port}, capture_output=True, timeout=10
    )
    assert result.returncode == 0, result.stderr


def test_healthcheck_fails_when_nothing_answers() -> None:
    result = subprocess.run(
        healthcheck_command(),
        env={**os.environ, "PORT": str(closed_port())},
        capture_output=True,
        timeout=10,
    )
    assert result.returncode != 0


def test_build_context_leaves_out_secrets_and_local_state() -> None:
    ignored = (ROOT / ".dockerignore").read_text().split()
    for entry in (".env", ".data/", ".git", "node_modules/", "test-artifacts/", "tests/"):
        assert entry in ignored
    for copied in ("requirements.lock", "LICENSE", "backend", "migrations"):
        assert copied not in ignored


def test_compose_runs_the_app_through_pgbouncer_and_migrations_directly() -> None:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    services = compose["services"]
    assert set(services) >= {"postgres", "pgbouncer", "migrate", "api"}
    api, migrate = services["api"], services["migrate"]
    assert urlsplit(api["environment"]["DATABASE_URL"]).netloc.endswith("@pgbouncer:6432")
    for service in (api, migrate):
        assert urlsplit(service["environment"]["DATABASE_MIGRATION_URL"]).netloc.endswith(
            "@postgres:5432"
        )
    assert migrate["command"] == ["python", "-m", "backend", "migrate", "up"]
    assert api["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert api["depends_on"]["pgbouncer"]["condition"] == "service_healthy"
    assert services["pgbouncer"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("postgres", "pgbouncer", "api"):
        assert services[name]["healthcheck"]["test"][0] == "CMD", name
    assert "/health/ready" in " ".join(api["healthcheck"]["test"])
    ini = compose["configs"]["pgbouncer.ini"]["content"]
    assert re.search(r"^pool_mode = transaction$", ini, re.MULTILINE)
    # Published on loopback only; JWT_SECRET has no default.
    assert api["ports"] == ["127.0.0.1:${PORT:-8000}:8000"]
    assert api["environment"]["JWT_SECRET"].startswith("${JWT_SECRET:?")


def test_serve_reads_proxy_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from backend.cli import build_parser

    monkeypatch.setenv("FORWARDED_ALLOW_IPS", "10.0.0.0/8")
    monkeypatch.setenv("WEB_CONCURRENCY", "3")
    args = build_parser().parse_args(["serve"])
    assert (args.forwarded_allow_ips, args.workers) == ("10.0.0.0/8", 3)
