"""The Dockerfile cannot be built here (no Docker engine), so what can be checked is checked:
it installs exactly as .ci/run does, runs as a non-root user, and its HEALTHCHECK command
really passes against a running server (and fails against a dead one)."""

from __future__ import annotations

import json
import os
import re
import subprocess
from urllib.parse import urlsplit

import pytest

from tests.cli.helpers import closed_port
from tests.conftest import ROOT

DOCKERFILE = (ROOT / "Dockerfile").read_text()


def instructions(name: str) -> list[str]:
    """The arguments of every `NAME ...` instruction, continuation lines joined."""
    joined = re.sub(r"\\\n\s*", " ", DOCKERFILE)
    return [line.split(None, 1)[1] for line in joined.splitlines() if line.startswith(name + " ")]


def test_installs_with_the_same_pip_command_as_ci_minus_the_test_extras() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    assert "pip install --require-hashes -r requirements-dev.lock" in ci
    assert instructions("RUN")[0] == "pip install -e ."
    assert instructions("FROM") == ["python:3.11-slim"]


def test_runs_as_a_non_root_user() -> None:
    users = instructions("USER")
    assert users and users[-1] not in {"root", "0"}
    assert re.search(rf"useradd .*\b{users[-1]}$", DOCKERFILE, re.MULTILINE)
    assert json.loads(instructions("CMD")[0]) == ["python", "-m", "backend", "serve"]


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
    for entry in (".env", ".data/", ".git", "node_modules/", "test-artifacts/"):
        assert entry in ignored


def test_serve_reads_proxy_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from backend.cli import build_parser

    monkeypatch.setenv("FORWARDED_ALLOW_IPS", "10.0.0.0/8")
    monkeypatch.setenv("WEB_CONCURRENCY", "3")
    args = build_parser().parse_args(["serve"])
    assert (args.forwarded_allow_ips, args.workers) == ("10.0.0.0/8", 3)
