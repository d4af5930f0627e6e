"""The benchmark (`python -m scripts.bench`) end to end at a tiny size: both servers start,
answer identically, wrk drives every scenario without a single non-2xx, and the JSON,
Markdown and PNG reports are written. Debian's wrk is installed by the test setup."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from scripts.bench import wrk
from scripts.bench.workload import write_data
from tests.conftest import require_debian_package

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wrk_installed() -> None:
    require_debian_package(
        "wrk", lambda: shutil.which("wrk") is not None, "wrk is needed for the benchmark"
    )


@pytest.mark.timeout(240)
def test_benchmark_runs_end_to_end(wrk_installed: None, database_url: str, tmp_path: Path) -> None:
    out = tmp_path / "bench"
    options = "--size 2x100 --seconds 2 --concurrency 4 --no-two-workers --warmup 0 --out"
    command = [sys.executable, "-m", "scripts.bench", *options.split(), str(out)]
    env = {**os.environ, "DATABASE_URL": database_url}
    result = subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=220, check=False
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "expected to take about" in result.stdout  # the time is announced up front

    results = json.loads((out / "results.json").read_text())
    assert results["failures"] == []
    assert len(results["validation"]) == 8
    assert any("list 100: identical bodies" in v for v in results["validation"])
    runs = results["runs"]
    assert {(r["scenario"], r["server"]) for r in runs} == {
        (s, server) for s in wrk.SCENARIOS for server in ("api", "baseline")
    }
    for run in runs:
        assert run["requests"] > 0, run
        assert run["non2xx"] == 0 and run["socket_errors"] == 0, run
        assert 0 < run["p50_ms"] <= run["p99_ms"], run
        assert run["peak_rss_mb"] > 10, run  # the workers were found and sampled
    machine = results["machine"]
    assert machine["cores"] and machine["postgresql"] and machine["python"]

    markdown = (out / "results.md").read_text()
    assert "| 2x100 | 1 | list | 4 |" in markdown
    assert "## Targets" in markdown
    png = (out / "results.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 10_000


def test_non_2xx_responses_are_counted(
    wrk_installed: None, live_server: str, tmp_path: Path
) -> None:
    """The Lua scripts count every non-2xx, so a run the API refuses cannot pass as fast."""
    data = write_data(tmp_path / "data.lua", ["not-a-token"], [[1, 1]])
    result = wrk.run("list", live_server, connections=2, seconds=1, data=data)
    assert result.requests > 0
    assert result.non2xx == result.requests
    assert result.first_bad.startswith("401 ")
