"""The README's two commands as a newcomer runs them (issue 90): in a fresh `git clone` of this
checkout's HEAD (committed files only), in a new virtual environment (`.venv` in the clone, as
the README suggests, its `bin` first on PATH as `activate` puts it), each command taken from
README.md's code block under its heading and run by bash as written.

- "Run it": the whole command, verbatim: the runtime install, then `python -m backend serve
  --dev` in the foreground, with its embedded PostgreSQL in the clone's `.data/postgres`. PORT
  (serve's `--port` reads it) is a free port, so it never takes another server's 8000. The
  server answers `GET /health` and the README's first task (register, then `POST /api/tasks`:
  201), and stops as on Ctrl+C: SIGINT to its process group, its PostgreSQL with it.
- "Test it": the command's last part, `python -m pytest`, is the whole suite (about half an
  hour), which cannot run inside the suite; so the command is run verbatim with `--collect-only
  -q` appended: the test install, then pytest collecting every test of the clone in the new
  environment (every test module imports with what the lock installed).

`pip check` is clean after each install: nothing in the lock contradicts what a package
declares. The environment is the developer's without the API's settings (`ENVIRONMENT`,
`JWT_SECRET`, `DATABASE_URL` ...), which the suite sets and a newcomer has not. Each install
reads pip's cache, so a second run is faster; on a new machine the packages are downloaded.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from backend.config import Settings
from tests.conftest import ROOT, _free_port, skip_or_fail_in_ci

# The venv install runs twice (about a minute each from pip's cache), the clone's server
# creates and migrates a database, pytest collects the clone's suite.
pytestmark = pytest.mark.timeout(1800)

# Set by the suite or a developer's shell, never by a newcomer following the README.
NOT_A_NEWCOMERS = {
    *(name.upper() for name in Settings.model_fields),
    "TEST_DATABASE_URL",
    "TEST_DATABASE_DIRECT_URL",
    "TASK_API_EMBEDDED_URL",
    "PROMETHEUS_MULTIPROC_DIR",
    "HOST",
    "PORT",
    "WEB_CONCURRENCY",
    "VIRTUAL_ENV",
    "PYTHONPATH",
    "PYTHONHOME",
}


def readme_command(heading: str) -> str:
    """The one code block under README.md's `## heading`: one line, a command."""
    section = (ROOT / "README.md").read_text().split(f"\n## {heading}\n", 1)[1]
    section = section.split("\n## ", 1)[0]
    blocks: list[str] = re.findall(r"^```\n(.*?)\n```$", section, re.MULTILINE | re.DOTALL)
    [command] = blocks
    assert "\n" not in command, command
    return command


class Newcomer:
    """A fresh clone and a new venv in it; `env` is a shell with the venv activated."""

    def __init__(self, folder: Path) -> None:
        self.clone = folder / "task-api"
        cloned = subprocess.run(
            ["git", "clone", "--quiet", str(ROOT), str(self.clone)],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert cloned.returncode == 0, cloned.stderr
        venv = self.clone / ".venv"
        made = subprocess.run(
            [sys.executable, "-m", "venv", str(venv)], capture_output=True, text=True, timeout=300
        )
        if made.returncode != 0:
            skip_or_fail_in_ci(f"`python -m venv` cannot make a venv here: {made.stderr[-300:]}")
        env = {k: v for k, v in os.environ.items() if k.upper() not in NOT_A_NEWCOMERS}
        env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
        env["VIRTUAL_ENV"] = str(venv)
        self.env = env
        self.pip = venv / "bin" / "pip"

    def pip_check(self) -> None:
        check = subprocess.run(
            [self.pip, "check"], env=self.env, capture_output=True, text=True, timeout=300
        )
        assert check.returncode == 0, check.stdout + check.stderr


@pytest.fixture(scope="module")
def newcomer() -> Iterator[Newcomer]:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        skip_or_fail_in_ci("the README's commands run on a `git clone`: git or .git is missing")
    folder = Path(tempfile.mkdtemp(prefix="task-api-newcomer-"))
    folder.chmod(0o755)  # the embedded server's system user (as root) reaches .data/postgres
    try:
        yield Newcomer(folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def servers_of(data_dir: Path) -> list[psutil.Process]:
    """The PostgreSQL processes serving `data_dir` (the postmaster names it with -D)."""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        if str(data_dir) in " ".join(process.info["cmdline"] or ()):
            found.append(process)
    return found


def wait_for_health(base_url: str, server: subprocess.Popen[bytes], log: Path) -> None:
    """Until GET /health answers 200; the install before the server is part of the wait."""
    deadline = time.monotonic() + 1200
    while True:
        try:
            if httpx.get(f"{base_url}/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if server.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"the README's run command did not serve:\n{log.read_text()[-4000:]}")
        time.sleep(1)


def stop_as_ctrl_c(server: subprocess.Popen[bytes]) -> None:
    """SIGINT to the command's process group, as Ctrl+C in its terminal; SIGKILL if it stays."""
    os.killpg(server.pid, signal.SIGINT)
    try:
        server.wait(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()
        pytest.fail("the README's run command did not stop on Ctrl+C (SIGINT)")


def test_the_run_command_serves_a_first_task(newcomer: Newcomer) -> None:
    command = readme_command("Run it")
    assert command.endswith("python -m backend serve --dev"), command
    port = _free_port()
    base_url = f"http://127.0.0.1:{port}"
    log = newcomer.clone.parent / "run.log"
    data_dir = newcomer.clone / ".data" / "postgres"
    with log.open("wb") as output:
        server = subprocess.Popen(
            ["bash", "-c", command],
            cwd=newcomer.clone,
            env={**newcomer.env, "PORT": str(port)},
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, as a terminal's foreground job
        )
    try:
        wait_for_health(base_url, server, log)
        with httpx.Client(base_url=base_url, timeout=60) as api:
            registered = api.post(
                "/api/auth/register",
                json={"email": "lin@example.com", "password": "correct horse battery staple"},
            )
            assert registered.status_code == 201, registered.text
            token = registered.json()["data"]["access_token"]
            headers = {"Authorization": f"Bearer {token}"}
            created = api.post(
                "/api/tasks", headers=headers, json={"title": "Buy milk", "priority": "high"}
            )
            assert created.status_code == 201, created.text
            listed = api.get("/api/tasks", headers=headers, params={"status": "pending"})
            assert [task["title"] for task in listed.json()["data"]] == ["Buy milk"]
        assert servers_of(data_dir), "the embedded PostgreSQL is not in the clone's .data/postgres"
    finally:
        if server.poll() is None:
            stop_as_ctrl_c(server)
        # Its PostgreSQL stops with its last process: wait for that, then make sure.
        deadline = time.monotonic() + 120
        while servers_of(data_dir) and time.monotonic() < deadline:
            time.sleep(0.5)
        left = servers_of(data_dir)
        for process in left:
            process.kill()
    assert not left, f"the embedded PostgreSQL outlived the server: {left}"
    newcomer.pip_check()


def test_the_test_command_installs_what_the_suite_imports(newcomer: Newcomer) -> None:
    command = readme_command("Test it")
    assert command.endswith(" && python -m pytest"), command
    collected = subprocess.run(
        ["bash", "-c", f"{command} --collect-only -q"],
        cwd=newcomer.clone,
        env=newcomer.env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=1500,
    )
    assert collected.returncode == 0, (collected.stdout + collected.stderr)[-4000:]
    summary = collected.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"\d+ tests collected in .*", summary), summary
    assert int(summary.split()[0]) > 1000, summary  # the whole suite, not a part of it
    newcomer.pip_check()
