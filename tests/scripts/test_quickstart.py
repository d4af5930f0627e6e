"""The quick start of docs/get-started/run.md, as a newcomer runs it: `serve --dev` on a fresh
embedded PostgreSQL (no DATABASE_URL, no secret), then the page's second-terminal block
(`check --dev`, `token --dev`, scripts/api.sh) as written, in bash. Data and the generated
secret survive a restart."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.conftest import ROOT, _free_port, python_on_path, stop_process
from tests.docs.pages import blocks

RUN_PAGE = ROOT / "docs" / "get-started" / "run.md"

SETTINGS = {"ENVIRONMENT", "JWT_SECRET", "BETTER_AUTH_SECRET", "DATABASE_URL", "CORS_ORIGINS"}


def newcomer_env(data: Path, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in SETTINGS}
    env.update(
        EMBEDDED_PG_DIR=str(data / "postgres"), PORT=str(port), BASE_URL=f"http://127.0.0.1:{port}"
    )
    return env


@contextmanager
def serve_dev(env: dict[str, str]) -> Iterator[None]:
    log = Path(env["EMBEDDED_PG_DIR"]).parent / "serve.log"
    with log.open("ab") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "backend", "serve", "--dev"],
            cwd=ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if httpx.get(f"{env['BASE_URL']}/health/ready", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"serve --dev did not become ready:\n{log.read_text()}")
            time.sleep(0.3)
        yield
    finally:
        stop_process(process)


def run(env: dict[str, str], *command: str) -> str:
    result = subprocess.run(
        list(command), cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, (command, result.stdout, result.stderr)
    return result.stdout


def quick_start() -> tuple[str, str]:
    """The page's command that starts the server, and its second terminal's block."""
    bash = [b for b in blocks(RUN_PAGE.read_text()) if b.info == "bash"]
    clone = next(b.body for b in bash if b.body.startswith("git clone"))
    second = next(b.body for b in bash if "python -m backend check --dev" in b.body)
    return clone.splitlines()[-1].split("#")[0].strip(), second


def test_quick_start_on_a_fresh_embedded_database(tmp_path: Path) -> None:
    serve, second_terminal = quick_start()
    assert serve == "python -m backend serve --dev"
    env = newcomer_env(tmp_path, _free_port())
    bin_dir = python_on_path(tmp_path / "bin")  # `python` as the page spells it: this one
    env["PATH"] = f"{bin_dir}:{env['PATH']}"
    with serve_dev(env):
        out = run(env, "bash", "-euo", "pipefail", "-c", second_terminal)
        assert "check passed" in out
        created = json.loads(out[out.index('{"data":') :].splitlines()[0])
        assert created["data"]["title"] == "My first task"
        assert created["data"]["user_id"] == "alice"
        assert out.count("My first task") == 2, out  # created, then listed
        docs = httpx.get(f"{env['BASE_URL']}/docs", timeout=5)
        assert docs.status_code == 200 and "swagger-ui" in docs.text
    # A quiet start: one line for the database, one for the migrations, uvicorn's own few;
    # initdb/pg_ctl output and per-step migration lines only with LOG_LEVEL=DEBUG.
    started = (tmp_path / "serve.log").read_text()
    assert "embedded PostgreSQL running with data in" in started
    assert "applied migrations: 0001_users" in started
    for chatter in ("initdb", "pg_ctl", "Applying", "XDG_RUNTIME_DIR", "Warning"):
        assert chatter not in started, started
    before_requests = started.split("Uvicorn running on", 1)[0]
    assert len(before_requests.splitlines()) <= 8, started
    # The embedded server stops with `serve`, and the data and the secret survive a restart.
    python = sys.executable
    with serve_dev(env):
        env["TOKEN"] = run(env, python, "-m", "backend", "token", "alice", "--dev").strip()
        assert "My first task" in run(env, "bash", "scripts/api.sh", "list")
