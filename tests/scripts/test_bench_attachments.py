"""Issue 63's benchmark scenarios (scripts/bench/attachments.py) end to end at a tiny size:
`upload-rss` and `attachment-throughput` start the API on the filesystem and on a real radosgw,
validate what they send and get back, measure and report; the other servers skip them. No
figure is judged here (the memory target is the benchmark's to report, not a test's)."""

from __future__ import annotations

import argparse
import json
import subprocess
from pathlib import Path

import pytest

from scripts.bench import attachments
from scripts.bench.run import build_plan
from scripts.bench.run import main as bench_main
from tests.conftest import apt_install, skip_or_fail_in_ci
from tests.scripts.test_bench import run_bench, wrk_installed  # noqa: F401
from tests.storage import radosgw

ROOT = Path(__file__).resolve().parents[2]
# Small, so the rounds are quick: the benchmark must take the server's maximum, not assume it.
MAX_FILE = 3_000_000


@pytest.fixture(scope="module")
def radosgw_installed() -> None:
    if not radosgw.installed():
        problem = apt_install(*radosgw.PACKAGES, recommends=False)
        if problem or not radosgw.installed():
            skip_or_fail_in_ci(f"radosgw: Debian {' '.join(radosgw.PACKAGES)}: {problem}")


def _bench(options: str, out: Path, database_url: str) -> subprocess.CompletedProcess[str]:
    env = {"ATTACHMENTS_MAX_FILE_BYTES": str(MAX_FILE)}
    return run_bench(f"{options} --out", out, database_url, env)


@pytest.mark.timeout(0)  # run_bench bounds it by what it runs
def test_attachment_scenarios_validate_measure_and_report(
    wrk_installed: None,  # noqa: F811
    radosgw_installed: None,
    database_url: str,
    tmp_path: Path,
) -> None:
    out = tmp_path / "bench"
    options = (
        "--size 2x100 --scenarios upload-rss attachment-throughput upload-trickle --seconds 1 "
        "--concurrency 2 --no-two-workers --warmup 0 --only api"
    )
    _bench(options, out, database_url)
    results = json.loads((out / "results.json").read_text())
    assert results["failures"] == []
    assert results["runs"] == []  # no wrk scenario was chosen
    found = results["attachments"]
    assert found["servers"] == ["api"] and set(found["backends"]) == {"filesystem", "s3"}
    # Before timing, on each backend: the maximum from the server, a 1 MiB file stored with
    # its size and SHA-256 and downloaded byte for byte (on S3 through the presigned URL).
    assert len(found["validation"]) == 4
    assert f"filesystem: per-file maximum {MAX_FILE:,} bytes" in found["validation"][0]
    assert any("s3: " in v and "presigned URL" in v for v in found["validation"])
    for backend, result in found["backends"].items():
        rss = result["rss"]
        assert rss["max_file_bytes"] == MAX_FILE, backend
        assert len(rss["rounds"]) == attachments.ROUNDS
        for round_ in rss["rounds"]:
            # Every upload of every round stored (a 201 with the right size and SHA-256).
            assert round_["stored"] == attachments.CONCURRENT_UPLOADS, (backend, round_)
            # The worker was found and its kernel-kept peak read.
            assert round_["peak_from"] == "VmHWM" and round_["peak_mib"] > 10, round_
            rise = round_["peak_mib"] - rss["before_rss_mib"]
            assert round_["rise_mib"] == pytest.approx(rise, abs=0.11), round_
        rows = result["throughput"]
        assert [(r["direction"], r["connections"]) for r in rows] == [
            ("upload", 2),
            ("download", 2),
        ]
        for row in rows:
            assert row["requests"] > 0 and row["bad"] == 0, row
            assert row["mib_per_s"] == pytest.approx(row["rps"], abs=0.2), row  # 1 MiB each
            assert 0 < row["p50_ms"] <= row["p99_ms"] and row["cpu_ms_per_request"] > 0, row
    # On S3 a download is the API's redirect followed to the object store.
    s3_download = found["backends"]["s3"]["throughput"][1]
    assert s3_download["followed_redirect"] and s3_download["api_p50_ms"] > 0
    for backend, result in found["backends"].items():
        # GETs alone, then beside the trickling uploads; none of which was answered early.
        slow = result["trickle"]
        assert slow["alone"]["uploads"] == 0, backend
        assert slow["beside uploads"]["uploads"] == attachments.TRICKLE_UPLOADS, backend
        for run in (slow["alone"], slow["beside uploads"]):
            assert run["requests"] > 0 and 0 < run["p50_ms"] <= run["p99_ms"], (backend, run)
            assert run["uploads_answered_early"] == 0, (backend, run)
        assert slow["p99_ratio"] > 0, backend
    markdown = (out / "results.md").read_text()
    assert "## Attachments (issues 63, 71)" in markdown
    assert "`upload-trickle` (issue 71)" in markdown
    assert "| s3 | download | 2 |" in markdown
    assert "raise the worker's RSS by < 64 MiB, filesystem (issue 63)" in markdown
    assert "## Results" not in markdown  # no empty wrk table


@pytest.mark.timeout(0)  # run_bench bounds it by what it runs
def test_attachment_scenarios_are_the_apis_alone(
    wrk_installed: None,  # noqa: F811
    database_url: str,
    tmp_path: Path,
) -> None:
    """The baseline and the naive app have no attachments: without the API, nothing runs."""
    result = _bench(
        "--size 2x100 --scenarios upload-rss --only baseline --warmup 0 --no-two-workers",
        tmp_path / "bench",
        database_url,
    )
    assert "[attachments] skipped: the API is not among the servers" in result.stdout
    results = json.loads((tmp_path / "bench" / "results.json").read_text())
    assert results["attachments"] is None and results["runs"] == []
    assert results["failures"] == []


def test_attachment_scenarios_are_chosen_by_name() -> None:
    """Named in `--scenarios`, beside wrk's; in no preset's default (they start a Ceph
    cluster and store hundreds of MiB), and their time is in the plan's estimate."""
    with pytest.raises(SystemExit):
        bench_main(["--scenarios", "upload-everything"])
    options = {
        "full": False,
        "quick": False,
        "size": None,
        "concurrency": None,
        "seconds": None,
        "soak": None,
        "warmup": None,
        "no_two_workers": True,
        "only": "api",
        "before": None,
        "db_rtt_ms": None,
        "rounds": 1,
    }
    both = build_plan(argparse.Namespace(**options, scenarios=["upload-rss", "list"]))
    assert both.wrk_scenarios == ["list"]
    alone = build_plan(argparse.Namespace(**options, scenarios=["list"]))
    assert both.estimate() > alone.estimate()
    default = build_plan(argparse.Namespace(**options, scenarios=None))
    assert not attachments.selected(default.scenarios)
