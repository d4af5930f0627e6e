"""The benchmark (`python -m scripts.bench`) end to end at a tiny size: the API, the stack floor
and the raw baseline start, answer identically, wrk drives every scenario on each without a
single non-2xx, and the JSON, Markdown and PNG reports (API/floor and API/baseline side by
side, the floor targets judged) are written. Debian's wrk is installed by the test setup."""

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


def run_bench(options: str, out: Path, database_url: str) -> subprocess.CompletedProcess[str]:
    """`python -m scripts.bench <options> <out>` against the test database; it must succeed."""
    command = [sys.executable, "-m", "scripts.bench", *options.split(), str(out)]
    env = {**os.environ, "DATABASE_URL": database_url}
    result = subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=220, check=False
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


@pytest.mark.timeout(240)
def test_benchmark_runs_end_to_end(wrk_installed: None, database_url: str, tmp_path: Path) -> None:
    out = tmp_path / "bench"
    options = "--size 2x100 --seconds 2 --concurrency 4 --no-two-workers --warmup 0 --out"
    result = run_bench(options, out, database_url)
    assert "expected to take about" in result.stdout  # the time is announced up front

    results = json.loads((out / "results.json").read_text())
    assert results["failures"] == []
    assert results["config"]["servers"] == ["api", "floor", "baseline"]
    validation = results["validation"]
    assert len(validation) == 12
    # The floor is validated like the baseline: identical bodies, and the baseline's bytes,
    # for every listing (meta.changes_cursor included): a first page, one with a next_cursor,
    # a filtered one and an empty one (the API's second statement).
    for listing in ("list 100", "list 10 with next_cursor", "list filter+search", "list empty"):
        assert any(
            listing in v and "identical bodies" in v and "floor bytes = baseline bytes" in v
            for v in validation
        ), (listing, validation)
    assert any("api, floor and baseline each flip completion" in v for v in validation)
    # The API runs as in production: metrics and the JSON access log on.
    assert any("/metrics served" in v for v in validation)
    assert any("JSON access log on" in v for v in validation)
    runs = results["runs"]
    assert {(r["scenario"], r["server"]) for r in runs} == {
        (s, server) for s in wrk.SCENARIOS for server in ("api", "floor", "baseline")
    }
    for run in runs:
        assert run["requests"] > 0, run
        assert run["non2xx"] == 0 and run["socket_errors"] == 0, run
        assert 0 < run["p50_ms"] <= run["p99_ms"], run
        assert run["peak_rss_mb"] > 10, run  # the workers were found and sampled
        assert run["cpu_ms_per_request"] > 0, run
    machine = results["machine"]
    assert machine["cores"] and machine["postgresql"] and machine["python"]
    comparisons = results["comparisons"]
    assert len(comparisons) == len(wrk.SCENARIOS)
    for row in comparisons:
        assert row["api_over_floor_rps"] > 0 and row["api_over_baseline_rps"] > 0, row
        assert row["api_over_floor_cpu"] > 0 and row["api_over_baseline_cpu"] > 0, row
    floor_targets = [t for t in results["targets"] if t.get("against") == "floor"]
    # Throughput and CPU for each of the seven routes, judged (met or not) at the nearest level.
    assert len(floor_targets) == 14
    assert all(isinstance(t["met"], bool) and t["connections"] == 4 for t in floor_targets)

    markdown = (out / "results.md").read_text()
    assert "| 2x100 | 1 | list | 4 |" in markdown
    assert "## Targets against the stack floor (1 worker, 32 connections)" in markdown
    assert "| get: API/floor throughput >= 0.8 |" in markdown
    assert "| toggle: API CPU per request <= 1.3x floor's |" in markdown
    assert "req/s API / floor / baseline | API/floor | API/baseline |" in markdown
    png = (out / "results.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 10_000


def test_only_runs_the_servers_named(
    wrk_installed: None, database_url: str, tmp_path: Path
) -> None:
    """`--only api,floor`, the tuning loop's option: no baseline is started or measured."""
    out = tmp_path / "bench"
    options = (
        "--size 2x100 --seconds 1 --concurrency 2 --no-two-workers --warmup 0 "
        "--scenarios get toggle --only api,floor --out"
    )
    run_bench(options, out, database_url)
    results = json.loads((out / "results.json").read_text())
    assert {r["server"] for r in results["runs"]} == {"api", "floor"}
    assert all("api_over_baseline_rps" not in row for row in results["comparisons"])
    assert {t["target"].split(":")[0] for t in results["targets"]} == {"get", "toggle"}


def test_non_2xx_responses_are_counted(
    wrk_installed: None, live_server: str, tmp_path: Path
) -> None:
    """The Lua scripts count every non-2xx, so a run the API refuses cannot pass as fast."""
    data = write_data(tmp_path / "data.lua", ["not-a-token"], [[1, 1]])
    result = wrk.run("list", live_server, connections=2, seconds=1, data=data)
    assert result.requests > 0
    assert result.non2xx == result.requests
    assert result.first_bad.startswith("401 ")


def test_db_rtt_runs_each_server_through_the_delay_proxy(
    wrk_installed: None, database_url: str, tmp_path: Path
) -> None:
    """`--db-rtt-ms 0 4`: one pass per round trip, every server behind the delay proxy, and
    the report's table of latency and throughput per round trip."""
    out = tmp_path / "bench"
    options = (
        "--size 2x100 --seconds 1 --concurrency 1 --no-two-workers --warmup 0 "
        "--scenarios get --only api,baseline --db-rtt-ms 0 4 --out"
    )
    run_bench(options, out, database_url)
    results = json.loads((out / "results.json").read_text())
    assert results["config"]["db_rtt_ms"] == [0, 4]
    assert sorted((r["db_rtt_ms"], r["server"]) for r in results["runs"]) == [
        (0, "api"),
        (0, "baseline"),
        (4, "api"),
        (4, "baseline"),
    ]
    markdown = (out / "results.md").read_text()
    assert "## Database round trip" in markdown
    assert "| get | 4 |" in markdown
