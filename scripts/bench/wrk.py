"""Run wrk with one of the Lua scripts and read the summary line it prints."""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from scripts.bench.workload import LUA_DIR

SCENARIOS = (
    "list",
    "search",
    "get",
    "create",
    "update",
    "toggle",
    "toggle-one-user",  # issue 31 item 4: every connection toggles one user's tasks
    "delete",
    "move",
    "delete-list",
    "shared-list",  # issue 39: a member and the owner list the same shared list of 100 tasks
    "calendar-feed",  # issue 52: a 1,000-task calendar feed fetched whole, then revalidated
    "dav-put",  # issue 62: a CalDAV client's PUT of a whole object, beside `update`'s PATCH
    "dav-put-if-match",  # issue 70: the same PUT naming the object's tag in If-Match
    "dav-sync",  # issue 62: a CalDAV sync of a 1,000-task list, 1 change since, then none
    "dav-query",  # issue 70: a calendar-query with text and property filters over 1,000 tasks
    "parse",  # issue 80: a typed 100-character line previewed as a task, beside `create`
    "quick",  # issue 80: the same line created as a task
    "mix",
)
WRITES = {"create", "update", "toggle", "toggle-one-user", "delete", "move", "delete-list"}
WRITES |= {"dav-put", "dav-put-if-match", "quick"}
# Issue 24's list scenarios (scripts/bench/lists.py): the API alone, on the list owners' data.
API_ONLY = {"move", "delete-list"}
# Issue 62's (scripts/bench/dav.py): the API alone (the baseline and naive apps have no DAV),
# on its own data file (app passwords' Basic headers and object paths).
DAV = {"dav-put", "dav-put-if-match"}
# Issue 39's (scripts/bench/shared.py): the API alone, on the shared lists' data; each level is
# two runs, the member's (the scenario's name) and the owner's (`-owner`).
SHARED = {"shared-list": ("shared-list", "shared-list-owner")}
# Issue 52's (scripts/bench/calendar.py): the API alone, on the feeds' data; each level is two
# runs, the full feed (the scenario's name) and its revalidation, a 304 (`-304`).
CALENDAR = {"calendar-feed": ("calendar-feed", "calendar-feed-304")}
# Issue 62's (scripts/bench/davsync.py): the API alone (no other server speaks DAV); each level
# is two runs, a sync with one change since its token (the scenario's name) and with none
# (`-unchanged`); issue 70's filtered `calendar-query` reads the same accounts' lists.
DAV_SYNC = {"dav-sync": ("dav-sync", "dav-sync-unchanged"), "dav-query": ("dav-query",)}
# Issue 80's (scripts/bench/quickadd.py): the API alone (the baseline and naive apps have no
# quick add), on the main data file (any seeded user types the line).
QUICK_ADD = {"parse", "quick"}
# The scenarios whose level is two runs.
PAIRED = {**SHARED, **CALENDAR, **DAV_SYNC}
# Issue 31: the routes the naive session-per-request app (scripts/bench/naive.py) serves, the
# five the comparison with it is about; the other scenarios skip it.
NAIVE = ("get", "list", "update", "toggle", "create")


def serves(server: str, scenario: str) -> bool:
    """Whether `server` ("api", "before", "baseline", "naive") takes part in `scenario`."""
    if scenario in API_ONLY or scenario in PAIRED or scenario in DAV or scenario in QUICK_ADD:
        return server == "api"
    return server != "naive" or scenario in NAIVE


@dataclass(frozen=True)
class WrkResult:
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    non2xx: int
    socket_errors: int
    exhausted: int
    first_bad: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def wrk_path() -> str:
    path = shutil.which("wrk")
    if path is None:
        raise SystemExit("wrk is not installed: apt-get install -y wrk (Debian/Ubuntu)")
    return path


def run(
    scenario: str,
    url: str,
    *,
    connections: int,
    seconds: float,
    data: Path,
    pool: Path | None = None,
    threads: int = 2,
) -> WrkResult:
    threads = max(1, min(threads, connections))
    command = [
        wrk_path(),
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "10s",
        "-s",
        str(LUA_DIR / f"{scenario}.lua"),
        url,
        "--",
        str(data),
        str(threads),
    ]
    if pool is not None:
        command.append(str(pool))
    completed = subprocess.run(
        command, capture_output=True, text=True, timeout=seconds + 60, check=False
    )
    line = next(
        (ln for ln in completed.stdout.splitlines() if ln.startswith("BENCH_RESULT ")), None
    )
    if completed.returncode != 0 or line is None:
        raise RuntimeError(
            f"wrk failed ({completed.returncode}):\n{completed.stdout}\n{completed.stderr}"
        )
    raw = json.loads(line.removeprefix("BENCH_RESULT "))
    errors = raw["errors"]
    seconds_run = raw["duration_us"] / 1e6
    latency = raw["latency_us"]
    return WrkResult(
        requests=raw["requests"],
        seconds=round(seconds_run, 2),
        rps=round(raw["requests"] / seconds_run, 1) if seconds_run else 0.0,
        p50_ms=latency["p50"] / 1000,
        p90_ms=latency["p90"] / 1000,
        p99_ms=latency["p99"] / 1000,
        max_ms=latency["max"] / 1000,
        non2xx=raw["non2xx"],
        socket_errors=errors["connect"] + errors["read"] + errors["write"] + errors["timeout"],
        exhausted=raw["exhausted"],
        first_bad=raw["first_bad"],
    )
