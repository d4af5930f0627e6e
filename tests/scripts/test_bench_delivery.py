"""Issue 82's delivery benchmark (scripts/bench/delivery.py) end to end at a tiny size: its
healthy latency run (the API, worker processes, webhook, push and SMTP peers on loopback) and
its throughput runs (this checkout beside a "before" checkout: here this one again). No
figure is judged (the benchmark reports them): every event and reminder arrived, once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
from sqlalchemy import create_engine, text

from backend.db.engine import normalize_url
from tests.scripts.test_bench import _stop_with_everything_it_started

ROOT = Path(__file__).resolve().parents[2]
BOUND_SECONDS = 240


def _bench(database_url: str, name: str, *args: str) -> dict:  # type: ignore[type-arg]
    out = Path(f"/tmp/{name}.json")
    command = [sys.executable, "-m", "scripts.bench.delivery", *args]
    command += ["--database", name, "--out", str(out)]
    env = {**os.environ, "DATABASE_URL": database_url}
    process = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    started = psutil.Process(process.pid)
    try:
        stdout, stderr = process.communicate(timeout=BOUND_SECONDS)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the delivery benchmark ran past {BOUND_SECONDS} s")
    finally:
        _stop_with_everything_it_started(process, started)
        admin = create_engine(normalize_url(database_url), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    assert process.returncode == 0, stdout[-3000:] + stderr[-3000:]
    report: dict = json.loads(out.read_text())  # type: ignore[type-arg]
    out.unlink()
    return report


@pytest.mark.timeout(0)  # bounded below, by what it runs
def test_the_healthy_latency_run_delivers_every_change_and_reminder(database_url: str) -> None:
    report = _bench(
        database_url,
        f"task_api_bench_delivery_{os.getpid()}",
        *("latency", "--runs", "healthy", "--changes", "40", "--seconds", "2"),
        *("--reminders", "6", "--people", "3", "--drain", "90"),
    )
    [run] = report["latency"]
    assert (run["changes"], run["webhook_missing"], run["webhook"]["count"]) == (40, 0, 80)
    assert (run["reminders_due"], run["reminder_missing"], run["reminder"]["count"]) == (6, 0, 12)
    assert run["webhook_p99_ratio"] == 1.0


@pytest.mark.timeout(0)
def test_the_throughput_runs_time_each_engine(database_url: str) -> None:
    report = _bench(
        database_url,
        f"task_api_bench_delivery_t_{os.getpid()}",
        *("throughput", "--events", "50", "--rounds", "1", "--before", str(ROOT)),
    )
    runs = report["throughput"]
    assert [r["engine"] for r in runs] == ["this checkout", f"before ({ROOT})"]
    for run in runs:
        assert (run["events"], run["received"], run["repeated"]) == (50, 50, 0)
        assert run["events_per_s"] > 0
    assert report["ratio_to_before"] > 0
