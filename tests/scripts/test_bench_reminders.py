"""Issue 72's reminders benchmark (scripts/bench/reminders.py) end to end at a tiny size: the
API and one worker process as in a run, the real SMTP server and push receiver on loopback,
and the report it writes. No figure is judged here (the 5 s target is the benchmark's to
report, not a test's): every reminder reached both channels, once."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import psutil
import pytest
from sqlalchemy import create_engine, text

from backend.db.engine import normalize_url
from scripts.bench.reminder_peers import PushReceiver
from tests.scripts.test_bench import _stop_with_everything_it_started

ROOT = Path(__file__).resolve().parents[2]
REMINDERS, PEOPLE = 50, 10
# A run this size takes seconds; the bound is for a loaded two-core machine's worst.
BOUND_SECONDS = 240


@pytest.mark.timeout(0)  # bounded below, by what it runs
def test_the_reminders_benchmark_delivers_every_reminder_and_reports(
    database_url: str, tmp_path: Path
) -> None:
    name = f"task_api_bench_reminders_{os.getpid()}"
    out = tmp_path / "reminders.json"
    command = [
        sys.executable,
        "-m",
        "scripts.bench.reminders",
        *("--reminders", str(REMINDERS), "--people", str(PEOPLE)),
        *("--window", "2", "--lead", "2", "--drain", "120"),
        *("--database", name, "--out", str(out)),
    ]
    env = {**os.environ, "DATABASE_URL": database_url}
    process = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    started = psutil.Process(process.pid)
    try:
        stdout, stderr = process.communicate(timeout=BOUND_SECONDS)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the reminders benchmark ran past {BOUND_SECONDS} s")
    finally:
        _stop_with_everything_it_started(process, started)
        admin = create_engine(normalize_url(database_url), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    assert process.returncode == 0, stdout[-3000:] + stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["reminders_fired"] == REMINDERS
    assert report["deliveries"] == report["deliveries_expected"] == 2 * REMINDERS
    for channel in ("push", "email"):
        assert report["channels"][channel] == {
            "received": REMINDERS,
            "reminders_reached": REMINDERS,
            "missing": 0,
            "repeated": 0,
        }
    assert report["pushes_refused"] == 0 and report["deliveries_left"] == {}
    assert report["delay"]["count"] == 2 * REMINDERS
    for key in ("p50_s", "p99_s", "max_s"):
        assert isinstance(report["delay"][key], float)
    assert report["worker_cpu_seconds"] > 0 and report["deliveries_per_s"] > 0


def test_the_push_receiver_takes_no_push_from_a_body_cut_short() -> None:
    """A sender that goes away mid-body (a worker killed while sending: tests/reminders/
    test_worker_processes.py) delivered nothing: the receiver neither takes nor refuses it;
    a whole push it cannot verify is refused."""
    with PushReceiver("not-the-key", {}) as receiver:
        with socket.create_connection(("127.0.0.1", receiver.port), timeout=30) as sock:
            sock.sendall(
                b"POST /push/cut HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\n"
                + b"x" * 10
            )
            sock.shutdown(socket.SHUT_WR)
            assert sock.recv(1024) == b""  # closed by the receiver: the request is done with
        assert (receiver.calls, receiver.refused, receiver.received) == (0, [], [])
        whole = httpx.post(receiver.endpoint("/push/whole"), content=b"x" * 10, timeout=30)
        assert whole.status_code == 400
        assert receiver.calls == 1 and len(receiver.refused) == 1
