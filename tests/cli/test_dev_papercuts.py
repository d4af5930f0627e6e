"""Local development papercuts, each held by running the real command: a hint towards --dev,
`db reset`, and `serve --reload` not restarting on database writes."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.cli.helpers import _SETTINGS, closed_port, run_cli
from tests.conftest import ROOT, _free_port, stop_process


def test_serve_without_dev_and_without_environment_hints_at_dev(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in {*_SETTINGS, "ENVIRONMENT"}}
    env.pop("JWT_SECRET", None)
    result = subprocess.run(
        [sys.executable, "-m", "backend", "serve", "--port", str(closed_port())],
        cwd=tmp_path,  # no .env here
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith("configuration error: ")
    assert lines[-1].startswith("hint: ENVIRONMENT is not set, so this ran in production mode")
    assert "python -m backend serve --dev" in lines[-1]
    assert "Traceback" not in result.stderr


def test_no_hint_when_production_was_chosen() -> None:
    result = run_cli("serve", ENVIRONMENT="production", JWT_SECRET="")
    assert result.returncode == 2
    assert "hint:" not in result.stderr


def test_db_reset_deletes_the_embedded_database_and_the_next_start_recreates_it(
    tmp_path: Path,
) -> None:
    data = tmp_path / "postgres"
    created = run_cli("migrate", "up", "--dev", EMBEDDED_PG_DIR=str(data), timeout=120)
    assert created.returncode == 0, created.stderr
    assert (data / "PG_VERSION").exists()
    # migrate stopped the server it started, so nothing holds the folder.
    assert not (data / "postmaster.pid").exists()

    reset = run_cli("db", "reset", "--dev", EMBEDDED_PG_DIR=str(data))
    assert reset.returncode == 0, reset.stderr
    assert reset.stdout.startswith(f"deleted the embedded database in {data}")
    assert not data.exists()
    again = run_cli("db", "reset", "--dev", EMBEDDED_PG_DIR=str(data))
    assert again.stdout.startswith("nothing to reset")


def test_db_reset_refuses_while_the_server_runs(tmp_path: Path) -> None:
    data = tmp_path / "postgres"
    data.mkdir()
    # PostgreSQL's own lock file, naming a live process (this one).
    (data / "postmaster.pid").write_text(f"{os.getpid()}\n{data}\n")
    result = run_cli("db", "reset", "--dev", EMBEDDED_PG_DIR=str(data))
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert f"is running (pid {os.getpid()})" in line and "stop `python -m backend serve`" in line
    assert data.exists()


def test_db_reset_leaves_a_database_url_alone(database_url: str) -> None:
    result = run_cli("db", "reset", DATABASE_URL=database_url)
    assert result.returncode == 1
    assert "DATABASE_URL is set" in result.stderr


def test_reload_ignores_database_writes(tmp_path: Path) -> None:
    """`serve --reload` watches the code only: before, the embedded database's files under
    .data/ (in the working directory) restarted the server on every write."""
    port = _free_port()
    log = tmp_path / "serve.log"
    env = {k: v for k, v in os.environ.items() if k not in _SETTINGS}
    env.update(ENVIRONMENT="development", EMBEDDED_PG_DIR=str(tmp_path / ".data" / "postgres"))
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "backend", "serve", "--reload", "--port", str(port)],
            cwd=tmp_path,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if httpx.get(f"{base}/health/ready", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.3)
        # The server has the suite's JWT_SECRET from the environment, as run_cli does.
        token = run_cli("token", "reloader").stdout.strip()
        headers = {"Authorization": f"Bearer {token}"}
        for n in range(20):
            created = httpx.post(
                f"{base}/api/tasks", json={"title": f"write {n}"}, headers=headers, timeout=10
            )
            assert created.status_code == 201, created.text
        time.sleep(2)  # longer than the reloader's debounce
        output_text = log.read_text()
        # watchfiles logs every change under the watched folder ("N changes detected"), the
        # .pyc files other processes of a fresh clone write into backend/ included, and uvicorn
        # then ignores what is no code: what counts is that it watches the code alone and that
        # one server process served every write, never restarted.
        watched = re.search(r"Will watch for changes in these directories: (\[.*\])", output_text)
        assert watched is not None, output_text
        assert ast.literal_eval(watched.group(1)) == [str(ROOT / "backend")], output_text
        assert "Reloading" not in output_text
        assert output_text.count("Started server process") == 1, output_text
    finally:
        stop_process(process)
