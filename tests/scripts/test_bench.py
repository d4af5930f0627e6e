"""The benchmark (`python -m scripts.bench`) end to end at a tiny size: the API, the raw
baseline and the naive app (and, with `--before REF`, the API's code at REF) start, answer
identically (the naive app on its own terms), wrk drives every scenario on each without a
single non-2xx, and the JSON, Markdown and PNG reports (the servers side by side, the targets
judged) are written. Debian's wrk is installed by the test setup. The PNG needs matplotlib,
the `bench` extra's, which the test install leaves out: without it the run must say so and
leave no chart, and everything else is checked the same."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from scripts.bench import quickadd, report, wrk
from scripts.bench.run import build_plan, parse_args
from scripts.bench.run import main as bench_main
from scripts.bench.workload import write_data
from tests.conftest import require_debian_package

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wrk_installed() -> None:
    require_debian_package(
        "wrk", lambda: shutil.which("wrk") is not None, "wrk is needed for the benchmark"
    )


def run_bench(
    options: str, out: Path, database_url: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`python -m scripts.bench <options> <out>` against the test database; it must succeed.

    Bounded by what it runs, not by a fixed time: five times the plan's own estimate (a quiet
    machine's) and a minute to start, a margin a two-core machine at load 16 meets (the fixed
    280 s was not). Past it, or when the test ends any other way, the benchmark is asked to stop
    (SIGTERM stops its servers with it) and whatever it started is killed: no server outlives
    the test."""
    arguments = [*options.split(), str(out)]
    bound = 5 * build_plan(parse_args(arguments)).estimate() + 60
    command = [sys.executable, "-m", "scripts.bench", *arguments]
    full_env = {**os.environ, "DATABASE_URL": database_url, **(env or {})}
    process = subprocess.Popen(
        command, cwd=ROOT, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    started = psutil.Process(process.pid)
    try:
        stdout, stderr = process.communicate(timeout=bound)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the benchmark ran past {bound:.0f} s, five times its own estimate")
    finally:
        _stop_with_everything_it_started(process, started)
    assert process.returncode == 0, stdout[-3000:] + stderr[-3000:]
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


def _stop_with_everything_it_started(process: subprocess.Popen[str], root: psutil.Process) -> None:
    """The benchmark's servers run in sessions of their own, so a killed benchmark leaves them:
    find them while it lives, ask it to stop, then kill what is left."""
    try:
        started = root.children(recursive=True)
    except psutil.NoSuchProcess:
        return
    if process.poll() is None:
        process.terminate()
        try:
            process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate(timeout=10)
    for child in started:
        with contextlib.suppress(psutil.NoSuchProcess):
            child.kill()


@pytest.mark.timeout(0)  # run_bench bounds it by what it runs
def test_benchmark_runs_end_to_end(wrk_installed: None, database_url: str, tmp_path: Path) -> None:
    out = tmp_path / "bench"
    out.mkdir()
    (out / "results.png").write_bytes(b"an earlier run's chart")  # never passed off as this one's
    # One connection: the delete-list pool is sized for what a connection can delete (a pool
    # for four is twice the lists to make and delete, half of this test's time).
    options = "--size 2x100 --seconds 1 --concurrency 1 --no-two-workers --warmup 0 --out"
    result = run_bench(options, out, database_url)
    assert "expected to take about" in result.stdout  # the time is announced up front

    results = json.loads((out / "results.json").read_text())
    assert results["failures"] == []
    assert results["config"]["servers"] == ["api", "baseline", "naive"]
    validation = results["validation"]
    # shared-list's: the member's page is the owner's, twice; calendar-feed's: its feeds;
    # dav-put's: each account's PUT; dav-sync's: its lists' syncs, dav-query's: its filtered
    # query; the list scenario's callers are members of no list; parse's and quick's line.
    assert len(validation) == 24
    # The naive app (issue 31) is checked on its own terms, beside the API's answers.
    assert sum(v.split(": ", 1)[1].startswith("naive: ") for v in validation) == 3
    # Every listing is validated (meta.changes_cursor included): a first page, one with a
    # next_cursor, a filtered one and an empty one (the API's second message).
    for listing in ("list 100", "list 10 with next_cursor", "list filter+search", "list empty"):
        assert any(listing in v and "identical bodies" in v for v in validation), (
            listing,
            validation,
        )
    assert any("api and baseline each flip completion" in v for v in validation)
    # The subtask counts are compared on a task that has subtasks.
    assert any("get one with subtasks (not timed): identical bodies" in v for v in validation)
    # The API runs as in production: metrics and the JSON access log on.
    assert any("/metrics served" in v for v in validation)
    assert any("JSON access log on" in v for v in validation)
    runs = results["runs"]
    # The list scenarios (issue 24) run on the API alone, the naive app serves five routes;
    # shared-list (issue 39) is two runs on the API alone, the member's and the owner's;
    # calendar-feed (issue 52) two too, the full feed and its 304; dav-put (issue 62) on the
    # API alone (the others speak no DAV), dav-sync two, with one change since its token and
    # with none; parse and quick (issue 80) on the API alone (the others have no quick add).
    assert {(r["scenario"], r["server"]) for r in runs} == {
        (run, server)
        for s in wrk.SCENARIOS
        for run in wrk.PAIRED.get(s, (s,))
        for server in ("api", "baseline", "naive")
        if server == "api" or not {s} & {*wrk.API_ONLY, *wrk.PAIRED, *wrk.DAV, *wrk.QUICK_ADD}
        if server != "naive" or s in ("get", "list", "update", "toggle", "create")
    }
    for run in runs:
        assert run["requests"] > 0, run
        assert run["non2xx"] == 0 and run["socket_errors"] == 0, run
        assert 0 < run["p50_ms"] <= run["p99_ms"], run
        assert run["peak_rss_mb"] > 10, run  # the workers were found and sampled
        assert run["cpu_ms_per_request"] > 0, run
        # PostgreSQL's CPU over the run (the embedded test server is a process of this machine).
        if not os.environ.get("TEST_DATABASE_URL"):
            assert run["postgres_cpu_ms_per_request"] > 0, run
        # What a list scenario's requests wrote, from the change feed.
        if run["scenario"] == "move":
            assert run["written"]["task_rows_per_request"] >= 1, run
        if run["scenario"] == "delete-list":
            assert run["written"]["task_rows_per_request"] == 1000, run
        # Each run lasts --seconds, delete-list its floor (a 1 s run may end before a request).
        assert round(run["seconds"]) == (2 if run["scenario"] == "delete-list" else 1), run
    machine = results["machine"]
    assert machine["cores"] and machine["postgresql"] and machine["python"]
    assert len(machine["load_average_at_start"]) == len(machine["load_average_at_end"]) == 3
    comparisons = results["comparisons"]
    # One per run: shared-list: the member's, the owner's; calendar-feed: the full feed, the
    # 304; dav-sync: one change, none; dav-query: one.
    assert len(comparisons) == sum(len(wrk.PAIRED.get(s, (s,))) for s in wrk.SCENARIOS)
    for row in comparisons:
        if row["scenario"] not in {
            *wrk.API_ONLY,
            *wrk.DAV,
            *wrk.QUICK_ADD,
            *(r for runs in wrk.PAIRED.values() for r in runs),
        }:
            assert row["api_over_baseline_rps"] > 0 and row["api_over_baseline_cpu"] > 0, row

    markdown = (out / "results.md").read_text()
    assert "| 2x100 | 1 | list | 1 |" in markdown
    assert "| get: API/baseline peak throughput >= 0.6 |" in markdown
    assert "req/s API / before / baseline | API/before | API/baseline |" in markdown
    assert "## Lists: moving and deleting in a list of 1,000 tasks" in markdown
    assert "## The API beside the naive app (issue 31)" in markdown
    assert "| delete-list | no proxy | 1 | 1 |" in markdown
    assert "## A shared list: its member against its owner (issue 39" in markdown
    assert any("shared-list: member and owner list the same 100 tasks" in v for v in validation)
    assert any("calendar-feed: 4 feeds of 1000 events each, each a 304" in v for v in validation)
    assert any("dav-put: 2 accounts' PUTs answered 204 and served back" in v for v in validation)
    assert any("dav-sync: 4 lists of 1000 tasks, 1 change since the token" in v for v in validation)
    assert any("dav-query: the filtered query returns its 11 tasks" in v for v in validation)
    assert any("parse, quick: the 100-character line reads as" in v for v in validation)
    if importlib.util.find_spec("matplotlib") is None:
        assert report.NO_CHART in result.stdout
        assert not (out / "results.png").exists()
    else:
        png = (out / "results.png").read_bytes()
        assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 10_000
        assert report.NO_CHART not in result.stdout


@pytest.mark.timeout(0)  # run_bench bounds it by what it runs
def test_before_runs_the_api_at_a_ref(
    wrk_installed: None, database_url: str, tmp_path: Path
) -> None:
    """`--before REF`: the API's code at REF, exported and served by its own `serve`,
    validated against the API and reported beside it with API/before ratios (PostgreSQL's
    CPU per request too); `--rounds 2`: each level twice, the servers' order turning, each
    run with the load average as it began, and a table round by round with the median
    ratios."""
    out = tmp_path / "bench"
    options = (
        "--size 2x100 --seconds 1 --concurrency 2 --no-two-workers --warmup 0 "
        "--scenarios get toggle list --only api --before HEAD --rounds 2 --out"
    )
    run_bench(options, out, database_url)
    results = json.loads((out / "results.json").read_text())
    assert results["failures"] == []
    assert results["config"]["servers"] == ["api", "before"]
    commit = results["config"]["before"]["commit"]
    assert results["config"]["before"]["ref"] == "HEAD" and len(commit) >= 7
    assert any("api and before each flip completion" in v for v in results["validation"])
    assert any("API before: /metrics served" in v for v in results["validation"])
    # The list scenario's callers are checked to be members of no list (issue 60's listing).
    assert any(
        "list: its 2 callers (user-1..user-2) are members of no list and own no shared list" in v
        for v in results["validation"]
    )
    runs = results["runs"]
    assert sorted((r["scenario"], r["server"], r["round"]) for r in runs) == sorted(
        (s, server, round_)
        for s in ("get", "toggle", "list")
        for server in ("api", "before")
        for round_ in (1, 2)
    )
    for scenario in ("get", "toggle", "list"):
        firsts = [
            next(r["server"] for r in runs if r["scenario"] == scenario and r["round"] == n)
            for n in (1, 2)
        ]
        assert firsts[0] != firsts[1], (scenario, firsts)  # the order turned
    assert all(r["load_average"] >= 0 for r in runs)
    assert len(results["comparisons"]) == 6  # a row per scenario and round
    for row in results["comparisons"]:
        assert row["api_over_before_rps"] > 0 and row["api_over_before_cpu"] > 0, row
        if not os.environ.get("TEST_DATABASE_URL"):
            assert row["api_over_before_postgres_cpu"] > 0, row
    markdown = (out / "results.md").read_text()
    assert f"the code of HEAD ({commit})" in markdown
    assert f"## CPU per request, API against the API at {commit}" in markdown
    assert f"## Round by round: the API against the API at {commit}" in markdown
    assert (
        "| list | no proxy | 2 | 2 |" in markdown and "| list | no proxy | 2 | median |" in markdown
    )
    assert "| 2x100 | 1 | list, round 2 | 2 |" in markdown


def test_a_run_lasts_its_seconds_or_its_scenarios_floor() -> None:
    """delete-list's run is never shorter than its floor, and the plan's estimate counts it."""
    short = build_plan(parse_args(["--seconds", "1", "--only", "api", "--scenarios", "get"]))
    both = build_plan(
        parse_args(["--seconds", "1", "--only", "api", "--scenarios", "get", "delete-list"])
    )
    assert short.run_seconds("get") == both.run_seconds("get") == 1
    assert both.run_seconds("delete-list") == 2
    long = build_plan(parse_args(["--seconds", "5", "--scenarios", "delete-list"]))
    assert long.run_seconds("delete-list") == 5
    # delete-list's estimate: its 2 s run and its pool, beyond get's 1 s.
    assert both.estimate() - short.estimate() > 2


def test_rounds_must_be_a_positive_count() -> None:
    """`--rounds 0` is refused before anything starts."""
    with pytest.raises(SystemExit) as refused:
        bench_main(["--rounds", "0"])
    assert refused.value.code == 2


@pytest.mark.timeout(0)  # run_bench bounds it by what it runs
def test_only_runs_the_servers_named(
    wrk_installed: None, database_url: str, tmp_path: Path
) -> None:
    """`--only api`, the tuning loop's option: no baseline is started or measured."""
    out = tmp_path / "bench"
    options = (
        "--size 2x100 --seconds 1 --concurrency 2 --no-two-workers --warmup 0 "
        "--scenarios get toggle --only api --out"
    )
    run_bench(options, out, database_url)
    results = json.loads((out / "results.json").read_text())
    assert {r["server"] for r in results["runs"]} == {"api"}
    assert all("api_over_baseline_rps" not in row for row in results["comparisons"])


def test_non_2xx_responses_are_counted(
    wrk_installed: None, live_server: str, tmp_path: Path
) -> None:
    """The Lua scripts count every non-2xx, so a run the API refuses cannot pass as fast."""
    data = write_data(tmp_path / "data.lua", ["not-a-token"], [[1, 1]])
    result = wrk.run("list", live_server, connections=2, seconds=1, data=data)
    assert result.requests > 0
    assert result.non2xx == result.requests
    assert result.first_bad.startswith("401 ")


@pytest.mark.timeout(0)  # run_bench bounds it by what it runs
def test_db_rtt_runs_each_server_through_the_delay_proxy(
    wrk_installed: None, database_url: str, tmp_path: Path
) -> None:
    """`--db-rtt-ms off 4`: one pass per value (`off`: without the proxy), every server behind
    the delay proxy in the others, and the report's table of latency and throughput per round
    trip, with the proxy's own CPU recorded."""
    out = tmp_path / "bench"
    options = (
        "--size 2x100 --seconds 1 --concurrency 1 --no-two-workers --warmup 0 "
        "--scenarios get --only api,baseline --db-rtt-ms off 4 --out"
    )
    run_bench(options, out, database_url)
    results = json.loads((out / "results.json").read_text())
    assert results["config"]["db_rtt_ms"] == [None, 4]
    assert sorted((r["db_rtt_ms"] or 0, r["server"]) for r in results["runs"]) == [
        (0, "api"),
        (0, "baseline"),
        (4, "api"),
        (4, "baseline"),
    ]
    for run in results["runs"]:
        proxy_cpu = run["proxy_cpu_ms_per_request"]
        assert (proxy_cpu is None) == (run["db_rtt_ms"] is None), run
    markdown = (out / "results.md").read_text()
    assert "## Database round trip" in markdown
    assert "| get | 4 ms |" in markdown
    assert "| get | no proxy |" in markdown


def test_the_quick_add_scripts_send_the_validated_line() -> None:
    """parse.lua and quick.lua send the body the validation reads (scripts/bench/quickadd.py):
    100 characters with a zone, so neither request looks anything up."""
    assert len(quickadd.TEXT) == 100 and quickadd.BODY["time_zone"]
    for scenario in quickadd.SCENARIOS:
        script = (ROOT / "scripts/bench/lua" / f"{scenario}.lua").read_text()
        assert f"local body = '{quickadd.body_json()}'" in script, scenario
        assert f'"/api/tasks/{scenario}"' in script, scenario
    assert set(quickadd.SCENARIOS) == wrk.QUICK_ADD <= set(wrk.SCENARIOS)
    assert not any(wrk.serves(server, s) for server in ("baseline", "naive") for s in wrk.QUICK_ADD)
