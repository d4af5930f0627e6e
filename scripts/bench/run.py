"""Benchmark the API against the raw baseline, the naive app a FastAPI user would write instead
and, with `--before REF`, against its own code at an earlier commit: `python -m scripts.bench
--help`.

Seeds (or reuses) a database per size, starts the servers (the API, the API before, the
baseline, the naive app, or those `--only` names) side by side with the same worker count,
validates their answers, then for every scenario and concurrency level runs wrk against each
back to back (rotating which goes first), samples each worker's RSS and CPU time and
PostgreSQL's CPU time, and writes results.json, results.md and results.png (the chart needs
matplotlib, the `bench` extra's; without it the run says so). Any non-2xx or socket error in a
timed run fails the whole benchmark (exit 1) after the reports are written.
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
from sqlalchemy import create_engine, text

from backend.db.engine import normalize_url
from scripts.bench import (
    attachments,
    calendar,
    dav,
    davsync,
    dbproxy,
    lists,
    quickadd,
    report,
    seed,
    servers,
    shared,
    validate,
    workload,
    wrk,
)
from scripts.bench.wrk import (
    API_ONLY,
    CALENDAR,
    DAV,
    DAV_SYNC,
    PAIRED,
    QUICK_ADD,
    SCENARIOS,
    SHARED,
    WRITES,
    serves,
)

SIZES = {"10k": (100, 10_000), "1m": (10_000, 1_000_000)}
SEED_ESTIMATE_SECONDS = {"10k": 5, "1m": 120}
PER_RUN_OVERHEAD = 0.5  # seconds around each wrk run: pools, resets, parsing
LIST_SECONDS = 0.07  # to make (and, left over, to delete) one list of 1,000 tasks
# A scenario's shortest run, whatever --seconds says: a delete-list request (1,000 tasks deleted
# and trashed) takes 45-160 ms on two quiet cores and up to 1.5 s on a loaded one, and wrk
# counts only the requests that end within the run, so a 1 s run may count none.
MIN_SECONDS = {"delete-list": 2.0}


@dataclass(frozen=True)
class Plan:
    preset: str
    sizes: list[str]
    concurrency: list[int]
    seconds: float
    scenarios: list[str]
    two_workers: bool  # also every scenario at 32 connections with 2 workers each
    soak_seconds: float
    warmup_seconds: float
    kinds: tuple[str, ...] = servers.KINDS  # the servers to run, in this order
    # Database round trips to add (scripts/bench/dbproxy.py), one pass each; None: no proxy.
    db_rtt_ms: tuple[float | None, ...] = (None,)
    # `--before REF`: the git ref as given and its commit; the "before" server runs its code.
    before: tuple[str, str] | None = None
    # `--rounds N`: each scenario's level run N times back to back, the servers' order turning.
    rounds: int = 1

    @property
    def wrk_scenarios(self) -> list[str]:
        """The scenarios wrk drives (issue 63's attachment ones run on their own)."""
        return [s for s in self.scenarios if s in SCENARIOS]

    def run_seconds(self, scenario: str) -> float:
        """How long a run of `scenario` lasts: --seconds, or the scenario's floor."""
        return max(self.seconds, MIN_SECONDS.get(scenario, 0.0))

    def estimate(self) -> float:
        count = len(self.kinds)
        # The list scenarios run on the API alone, the naive app serves five routes.
        per_level = sum(
            serves(k, s) * len(PAIRED.get(s, (s,))) for k in self.kinds for s in self.wrk_scenarios
        )
        runs_per_size = per_level * len(self.concurrency)
        if self.two_workers:
            runs_per_size += per_level
        runs_per_size *= len(self.db_rtt_ms) * self.rounds
        pools = 0.0
        if "delete-list" in self.scenarios and "api" in self.kinds:
            lists_made = sum(
                lists.pool_size(self.run_seconds("delete-list"), level, rtt)
                for level in self.concurrency
                for rtt in self.db_rtt_ms
            )
            pools = len(self.sizes) * lists_made * 2 * LIST_SECONDS
        seeding = sum(SEED_ESTIMATE_SECONDS.get(s, 5) for s in self.sizes)
        passes = len(self.sizes) * (2 if self.two_workers else 1) * len(self.db_rtt_ms)
        passes *= bool(self.wrk_scenarios)
        if "api" in self.kinds:
            pools += attachments.estimate(self.scenarios, self.concurrency, self.seconds)
        starts = passes * (8 + 2 * count * self.warmup_seconds)
        timed = len(self.sizes) * runs_per_size * (self.seconds + PER_RUN_OVERHEAD)
        if "delete-list" in self.wrk_scenarios and "api" in self.kinds:
            floor = self.run_seconds("delete-list") - self.seconds
            timed += len(self.sizes) * runs_per_size / per_level * floor
        return seeding + starts + timed + pools + self.soak_seconds


def parse_size(value: str) -> tuple[int, int]:
    if value in SIZES:
        return SIZES[value]
    users, _, tasks = value.partition("x")  # "2x100": 2 users, 100 tasks each
    return int(users), int(users) * int(tasks)


def build_plan(args: argparse.Namespace) -> Plan:
    if args.full:
        plan = Plan("full", ["10k", "1m"], [1, 8, 32, 64], 10, list(SCENARIOS), True, 300, 3)
    elif args.quick:
        # The tuning loop: one worker at 32 connections, every scenario.
        plan = Plan("quick", ["10k"], [32], 5, list(SCENARIOS), False, 0, 2)
    else:
        plan = Plan("default", ["10k"], [1, 8, 32, 64], 5, list(SCENARIOS), True, 0, 2)
    overridden = any(
        getattr(args, name) is not None
        for name in ("size", "concurrency", "seconds", "scenarios", "soak", "warmup")
    )
    before = None
    if args.before:
        before = (args.before, servers.resolve_ref(args.before))
    return Plan(
        preset=f"{plan.preset}, adjusted by options" if overridden else plan.preset,
        sizes=args.size or plan.sizes,
        concurrency=args.concurrency or plan.concurrency,
        seconds=args.seconds or plan.seconds,
        scenarios=args.scenarios or plan.scenarios,
        two_workers=plan.two_workers and not args.no_two_workers,
        soak_seconds=plan.soak_seconds if args.soak is None else args.soak,
        warmup_seconds=plan.warmup_seconds if args.warmup is None else args.warmup,
        kinds=parse_only(args.only, before=before is not None),
        db_rtt_ms=tuple(args.db_rtt_ms) if args.db_rtt_ms else (None,),
        before=before,
        rounds=args.rounds,
    )


def parse_only(value: str | None, *, before: bool = False) -> tuple[str, ...]:
    """`--only api,naive`: those servers, in the canonical order (the API, the reference
    of the validation, first); "before" runs exactly when `--before` is given."""
    names = [kind for kind in servers.KINDS if kind != "before"]
    wanted = set(names)
    if value:
        wanted = {name.strip() for name in value.split(",") if name.strip()}
        unknown = wanted - set(names)
        if unknown or not wanted:
            raise SystemExit(
                f"--only: unknown server(s) {', '.join(sorted(unknown)) or '(none)'}; "
                f"choose from {', '.join(names)} (and --before REF for the API at REF)"
            )
    if before:
        wanted.add("before")
    return tuple(kind for kind in servers.KINDS if kind in wanted)


class Failure(Exception):
    pass


def _check(result: wrk.WrkResult, label: str, failures: list[str]) -> None:
    if result.non2xx or result.socket_errors or result.exhausted or not result.requests:
        failures.append(
            f"{label}: {result.requests} requests, {result.non2xx} non-2xx, "
            f"{result.socket_errors} socket errors, {result.exhausted} beyond the delete pool; "
            f"first: {result.first_bad}"
        )


class Bench:
    def __init__(self, plan: Plan, out_dir: Path, reuse: bool, quiet: bool) -> None:
        self.plan = plan
        self.out_dir = out_dir
        self.reuse = reuse
        self.quiet = quiet
        self.secret = secrets.token_urlsafe(48)
        self.work = Path(tempfile.mkdtemp(prefix="task-api-bench-"))
        self.runs: list[dict[str, Any]] = []
        self.failures: list[str] = []
        self.validation: list[str] = []
        self.soak: dict[str, Any] | None = None
        # Issue 63's scenarios' results (scripts/bench/attachments.py), when chosen.
        self.attachments: dict[str, Any] | None = None
        self.seed_seconds: dict[str, float | None] = {}
        # The API's code at `--before REF`, exported once for every pass.
        self.before_code: Path | None = None
        # The list scenarios' data file and a seeded task with subtasks (token, id), per size.
        self.list_data: Path | None = None
        self.parent: tuple[str, int] | None = None
        # The shared-list scenario's data file, its members' and owners' tokens and its lists.
        self.shared_data: Path | None = None
        self.shared: tuple[list[str], list[str], list[int]] | None = None
        # The calendar feeds' data file and their tokens (their tags: `calendar.validate`).
        self.calendar_data: Path | None = None
        self.calendar_tokens: list[str] = []
        # The DAV scenario's data file and its (Basic header, object path) pairs.
        self.dav_data: Path | None = None
        self.dav: list[tuple[str, str]] = []
        # The DAV sync's data file (its passwords and tokens: `davsync.validate`, per pass).
        self.dav_sync_data: Path | None = None
        # PostgreSQL's CPU time (every process of the server), sampled around each timed run.
        self.postgres: servers.PostgresCpu | None = None
        if plan.before is not None:
            self.before_code = servers.export_before(plan.before[1], self.work)

    def say(self, message: str) -> None:
        if not self.quiet:
            print(message, flush=True)

    def run(self) -> dict[str, Any]:
        started = time.monotonic()
        load_at_start = [round(x, 2) for x in os.getloadavg()]
        server = seed.server_url()
        postgres_version = ""
        for index, size in enumerate(self.plan.sizes):
            users, tasks = parse_size(size)
            db = seed.prepare(server, users, tasks, reuse=self.reuse, quiet=self.quiet)
            self.seed_seconds[size] = db.seed_seconds
            self.say(
                f"[{size}] {users:,} users, {tasks:,} tasks: "
                + (f"seeded in {db.seed_seconds:.0f} s" if db.seed_seconds else "reused")
            )
            postgres_version = postgres_version or _postgres_version(db.url)
            self.postgres = servers.PostgresCpu.for_url(db.url)
            settings = workload.settings_for(self.secret, db.url)
            tokens = workload.mint_tokens(settings, users)
            if "list" in self.plan.scenarios:
                self.validation.append(f"{size}: {workload.callers_in_no_list(db)}")
            owned = workload.owned_pairs(db)
            data = workload.write_data(self.work / f"data-{size}.lua", tokens, owned)
            # The list owners' tokens and seeded lists (the list scenarios' data), and a task
            # with subtasks for the validation.
            list_tokens = lists.mint_tokens(settings, db)
            tops = lists.seeded_tops(db)
            self.list_data = lists.write_data(self.work / f"lists-{size}.lua", list_tokens, tops)
            self.parent = (list_tokens[0], tops[0][0]) if tops else None
            shared_lists = shared.pairs(db)
            self.shared_data, members, owners = shared.write_data(
                self.work / f"shared-{size}.lua", settings, shared_lists
            )
            self.shared = (members, owners, shared_lists)
            if any(s in CALENDAR for s in self.plan.scenarios):
                self.calendar_tokens = calendar.tokens(db)
                self.calendar_data = calendar.write_data(
                    self.work / f"calendar-{size}.lua", self.calendar_tokens, []
                )
            if any(s in DAV for s in self.plan.scenarios):
                self.dav = dav.credentials(db)
                self.dav_data = dav.write_data(self.work / f"dav-{size}.lua", self.dav)
            if any(s in DAV_SYNC for s in self.plan.scenarios):
                self.dav_sync_data = self.work / f"dav-sync-{size}.lua"
            last = index == len(self.plan.sizes) - 1
            if index == 0:
                self._attachments(db, tokens, owned)
            for rtt in self.plan.db_rtt_ms if self.plan.wrk_scenarios else ():
                for workers in [1, 2] if self.plan.two_workers else [1]:
                    levels = self.plan.concurrency if workers == 1 else [32]
                    first_rtt = rtt == self.plan.db_rtt_ms[0]
                    soak = self.plan.soak_seconds if (last and workers == 1 and first_rtt) else 0
                    self._size_pass(size, db, data, tokens, owned, workers, levels, soak, rtt)
        machine = report.machine(postgres_version)
        machine["load_average_at_start"] = load_at_start
        machine["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
        results = {
            "machine": machine,
            "config": {
                "preset": self.plan.preset,
                "sizes": self.plan.sizes,
                "concurrency": self.plan.concurrency,
                "seconds": self.plan.seconds,
                "scenarios": self.plan.scenarios,
                "two_workers_at_32": self.plan.two_workers,
                "servers": list(self.plan.kinds),
                "before": (
                    {"ref": self.plan.before[0], "commit": self.plan.before[1]}
                    if self.plan.before
                    else None
                ),
                "db_rtt_ms": [] if self.plan.db_rtt_ms == (None,) else list(self.plan.db_rtt_ms),
                "rounds": self.plan.rounds,
                "api_env": servers.API_ENV,
                "rate_limit": servers.RATE_LIMIT_ENV["RATE_LIMIT_TASK_WRITES_PER_USER"],
                "seed_seconds": self.seed_seconds,
                "estimated_seconds": round(self.plan.estimate()),
            },
            "validation": self.validation,
            "runs": self.runs,
            "soak": self.soak,
            "attachments": self.attachments,
            "failures": self.failures,
            "total_seconds": round(time.monotonic() - started, 1),
        }
        return results

    def _size_pass(
        self,
        size: str,
        db: seed.BenchDb,
        data: Path,
        tokens: list[str],
        owned: list[list[int]],
        workers: int,
        levels: list[int],
        soak_seconds: float,
        rtt: float | None = None,
    ) -> None:
        engine = create_engine(normalize_url(db.url))
        logs = self.work
        with ExitStack() as stack:
            url = db.url
            if rtt is not None:
                # Every server's connections go through the delay proxy (0 ms too, so the
                # proxy's own cost is in every figure of such a run); seeding, validation's
                # resets and the delete pools go direct.
                proxy = stack.enter_context(dbproxy.DbProxy.for_url(db.url, delay_ms=rtt))
                url = proxy.url(db.url)
            common = {"workers": workers, "database_url": url, "secret": self.secret}
            started = [
                stack.enter_context(
                    servers.start(
                        kind,
                        log_dir=logs,
                        code=self.before_code
                        if kind == "before" and self.before_code
                        else servers.ROOT,
                        **common,
                    )
                )
                for kind in self.plan.kinds
            ]
            by_name = {server.name: server for server in started}
            # The naive app answers in its own shape (scripts/bench/naive.py): checked on its
            # own terms, against the API's answers when the API runs.
            compared = {s.name: s.url for s in started if s.name != "naive"}
            checked = (
                validate.validate(compared, tokens, owned, parent=self.parent) if compared else []
            )
            if "naive" in by_name:
                # Each app's writes (earlier passes' runs, the validation's just now) went to
                # its own table: the naive app's gets the API's rows again, as compared.
                seed.copy_to_naive(engine)
                reference = by_name["api"].url if "api" in by_name else None
                checked += validate.naive(by_name["naive"].url, tokens, owned, reference=reference)
            for name in ("api", "before"):
                if name in by_name:
                    checked += servers.confirm_production_settings(by_name[name])
            sharing_runs = any(s in SHARED for s in self.plan.scenarios)
            if "api" in by_name and self.shared is not None and sharing_runs:
                checked += shared.validate(by_name["api"].url, *self.shared)
            if "api" in by_name and self.calendar_data is not None:
                api_url = by_name["api"].url
                checked += calendar.validate(api_url, self.calendar_tokens, self.calendar_data)
            if "api" in by_name and self.dav_data is not None:
                checked += dav.validate(by_name["api"].url, self.dav)
            if "api" in by_name and self.dav_sync_data is not None:
                checked += davsync.validate(by_name["api"].url, db, self.dav_sync_data)
            if "api" in by_name and any(s in QUICK_ADD for s in self.plan.scenarios):
                checked += quickadd.validate(by_name["api"].url, tokens[0])
            self.validation += [f"{size}, {workers} worker(s): {c}" for c in checked]
            seed.reset(engine)
            self.say(f"[{size}, {workers}w] validated: {len(checked)} checks, identical answers")
            moves = "move" in self.plan.scenarios
            sharing = [run for s in self.plan.scenarios for run in PAIRED.get(s, ())]
            # Quick add is not in the mix: its route warms up on its own when chosen.
            typed = [s for s in self.plan.scenarios if s in QUICK_ADD]
            for target in started:
                for scenario in ("list", "mix", *(("move",) if moves else ()), *sharing, *typed):
                    if not serves(target.name, _scenario_of(scenario)):
                        continue
                    if self.plan.warmup_seconds:
                        warm = wrk.run(
                            scenario,
                            target.url,
                            connections=8,
                            seconds=self.plan.warmup_seconds,
                            data=self._data(scenario, data),
                        )
                        _check(warm, f"warm-up {target.name} {scenario}", self.failures)
                seed.reset(engine)
            get_rate: dict[tuple[str, int], float] = {}
            turn = 0  # rotates which server goes first, run after run
            with servers.RssSampler(started):
                for scenario in self.plan.wrk_scenarios:
                    for level in levels:
                        for round_ in range(1, self.plan.rounds + 1):
                            order = started[turn % len(started) :] + started[: turn % len(started)]
                            turn += 1
                            for target in order:
                                if not serves(target.name, scenario):
                                    continue
                                # A shared-list level is two runs, the member's and the owner's,
                                # their order alternating.
                                runs = PAIRED.get(scenario, (scenario,))
                                for run in runs if turn % 2 else runs[::-1]:
                                    self._timed(
                                        size,
                                        db,
                                        data,
                                        workers,
                                        run,
                                        level,
                                        target,
                                        get_rate,
                                        rtt,
                                        round_,
                                    )
                                if scenario in WRITES or scenario == "mix":
                                    seed.reset(engine)
            if soak_seconds and "api" in by_name:
                self.soak = self._soak(size, by_name["api"], data, workers, soak_seconds)
                seed.reset(engine)
        engine.dispose()

    def _attachments(self, db: seed.BenchDb, tokens: list[str], owned: list[list[int]]) -> None:
        """Issue 63's scenarios, on the first size: the API alone, each storage backend in
        turn (scripts/bench/attachments.py)."""
        if not attachments.selected(self.plan.scenarios):
            return
        if "api" not in self.plan.kinds:
            self.say("[attachments] skipped: the API is not among the servers (--only)")
            return
        self.say("[attachments] the API alone (the baseline and naive app have no attachments)")
        self.attachments = attachments.run(
            self.plan.scenarios,
            levels=self.plan.concurrency,
            seconds=self.plan.seconds,
            database_url=db.url,
            secret=self.secret,
            tokens=tokens,
            owned=owned,
            work=self.work,
            say=self.say,
        )
        self.failures += self.attachments["failures"]

    def _timed(
        self,
        size: str,
        db: seed.BenchDb,
        data: Path,
        workers: int,
        scenario: str,
        level: int,
        target: servers.Server,
        get_rate: dict[tuple[str, int], float],
        rtt: float | None = None,
        round_: int = 1,
    ) -> None:
        pool = None
        if scenario == "delete":
            rate = get_rate.get((target.name, level), 5000.0)
            count = int(rate * self.plan.seconds * 1.5) + 1000
            pool = workload.make_pool(db, count, self.work / "pool.lua")
        elif scenario == "delete-list":
            count = lists.pool_size(self.plan.run_seconds(scenario), level, rtt)
            pool = lists.make_pool(db, count, self.work / "lists-pool.lua")
        elif scenario == dav.IF_MATCH_SCENARIO:
            count = dav.pool_size(self.plan.seconds, level, rtt)
            pool = dav.make_pool(target.url, db, self.dav, count, self.work / "dav-pool.lua")
        events = lists.last_event(db) if scenario in API_ONLY else None
        load = round(os.getloadavg()[0], 2)
        began, cpu, own = time.monotonic(), target.cpu_seconds(), _own_cpu_seconds()
        database = self.postgres.cpu_seconds() if self.postgres else None
        result = wrk.run(
            scenario,
            target.url,
            connections=level,
            seconds=self.plan.run_seconds(scenario),
            data=self._data(scenario, data),
            pool=pool,
        )
        if scenario == "get":
            get_rate[(target.name, level)] = result.rps
        label = f"{size} {workers}w {scenario} c={level} {target.name}"
        if rtt is not None:
            label = f"{size} rtt={rtt:g}ms {workers}w {scenario} c={level} {target.name}"
        if self.plan.rounds > 1:
            label += f" r{round_}"
        _check(result, label, self.failures)
        row = {
            "size": size,
            "workers": workers,
            "scenario": scenario,
            "connections": level,
            "server": target.name,
            "db_rtt_ms": rtt,
            "round": round_,
            # The machine's 1-minute load average as the run began (2 cores, shared).
            "load_average": load,
            **result.to_dict(),
            "peak_rss_mb": servers.peak_rss_mb(target, began),
            "cpu_ms_per_request": _per_request(target.cpu_seconds() - cpu, result.requests),
            # PostgreSQL's CPU over the same run (every process of the server; only this server
            # is under load), None when the server is not on this machine.
            "postgres_cpu_ms_per_request": _postgres_per_request(
                database, self.postgres, result.requests
            ),
            # This process's CPU over the same run: the delay proxy's, when there is one (the
            # RSS sampler's besides, a few system calls a second).
            "proxy_cpu_ms_per_request": (
                _per_request(_own_cpu_seconds() - own, result.requests) if rtt is not None else None
            ),
        }
        if events is not None:
            # What the requests wrote, from the change feed (one event per task row).
            row["written"] = lists.written(db, events)
        self.runs.append(row)
        self.say(
            f"  {label:<44} {result.rps:>8,.0f} req/s  p50 "
            f"{result.p50_ms:6.1f}  p99 {result.p99_ms:6.1f} ms  "
            f"cpu {row['cpu_ms_per_request']} ms/req  "
            f"pg cpu {row['postgres_cpu_ms_per_request']} ms/req  "
            + (f"proxy cpu {row['proxy_cpu_ms_per_request']} ms/req  " if rtt is not None else "")
            + f"non-2xx {result.non2xx}  rss {row['peak_rss_mb']} MB"
        )

    def _data(self, scenario: str, data: Path) -> Path:
        """The data file a scenario's script reads: the list owners' for the list scenarios,
        the shared lists' for the shared-list runs."""
        if _scenario_of(scenario) in DAV_SYNC:
            if self.dav_sync_data is None:  # pragma: no cover - written before any pass
                raise RuntimeError("no DAV sync data")
            return self.dav_sync_data
        if _scenario_of(scenario) in CALENDAR:
            if self.calendar_data is None:  # pragma: no cover - written before any pass
                raise RuntimeError("no calendar data")
            return self.calendar_data
        if scenario in DAV:
            if self.dav_data is None:  # pragma: no cover - written before any pass
                raise RuntimeError("no DAV data")
            return self.dav_data
        if _scenario_of(scenario) in SHARED:
            if self.shared_data is None:  # pragma: no cover - written before any pass
                raise RuntimeError("no shared-list data")
            return self.shared_data
        if scenario in API_ONLY:
            if self.list_data is None:  # pragma: no cover - written before any pass
                raise RuntimeError("no list data")
            return self.list_data
        return data

    def _soak(
        self, size: str, api: servers.Server, data: Path, workers: int, seconds: float
    ) -> dict[str, Any]:
        self.say(f"[{size}] soak: mixed workload against the API for {seconds:.0f} s")
        api.samples.clear()
        began = time.monotonic()
        with servers.RssSampler([api], interval=1.0):
            result = wrk.run("mix", api.url, connections=32, seconds=seconds, data=data)
        _check(result, f"soak {size}", self.failures)
        per_worker: dict[int, list[tuple[float, int]]] = {}
        for t, sample in api.samples:
            for pid, rss in sample.items():
                per_worker.setdefault(pid, []).append((t - began, rss))

        def at(fraction: float, points: list[tuple[float, int]]) -> int:
            wanted = seconds * fraction
            return min(points, key=lambda p: abs(p[0] - wanted))[1]

        mb = 2**20
        start = max(at(0.05, p) for p in per_worker.values()) / mb
        mid = max(at(0.5, p) for p in per_worker.values()) / mb
        end = max(p[-1][1] for p in per_worker.values()) / mb
        growth = max((p[-1][1] - at(0.5, p)) / mb for p in per_worker.values())
        soak = {
            "size": size,
            "workers": workers,
            "connections": 32,
            "seconds": round(seconds),
            "requests": result.requests,
            "rps": result.rps,
            "p99_ms": result.p99_ms,
            "non2xx": result.non2xx,
            "start_rss_mb": round(start, 1),
            "mid_rss_mb": round(mid, 1),
            "end_rss_mb": round(end, 1),
            "peak_rss_mb": servers.peak_rss_mb(api, began),
            "last_half_growth_mb": round(growth, 1),
            "timeline": [
                {"t": round(t, 1), "rss_mb": round(rss / mb, 1)}
                for points in per_worker.values()
                for t, rss in points[:: max(1, len(points) // 60)]
            ],
        }
        self.say(
            f"  soak: {result.rps:,.0f} req/s, RSS {soak['start_rss_mb']} -> "
            f"{soak['end_rss_mb']} MB (last half {growth:+.1f} MB), non-2xx {result.non2xx}"
        )
        return soak


def _scenario_of(run: str) -> str:
    """The scenario a timed run belongs to (a shared-list level is two runs)."""
    return next((name for name, runs in PAIRED.items() if run in runs), run)


def _rtt(value: str) -> float | None:
    """A `--db-rtt-ms` value: milliseconds, or `off` for a pass without the proxy."""
    if value.lower() == "off":
        return None
    try:
        return float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of ms or 'off': {value!r}") from None


def _positive(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"not a whole number of at least 1: {value!r}")
    return number


def _own_cpu_seconds() -> float:
    times = psutil.Process().cpu_times()
    return float(times.user + times.system)


def _per_request(cpu_seconds: float, requests: int) -> float:
    return round(cpu_seconds * 1000 / requests, 3) if requests else 0.0


def _postgres_per_request(
    before: float | None, postgres: servers.PostgresCpu | None, requests: int
) -> float | None:
    after = postgres.cpu_seconds() if postgres else None
    if before is None or after is None:
        return None
    return _per_request(after - before, requests)


def _postgres_version(url: str) -> str:
    engine = create_engine(normalize_url(url))
    with engine.connect() as conn:
        version = str(conn.scalar(text("SHOW server_version")))
    engine.dispose()
    return version


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.bench",
        description="Benchmark the API against a raw Starlette + psycopg 3 baseline that sends "
        "the database the same messages, a naive session-per-request FastAPI + SQLModel app "
        "(what a user would pick instead; five routes), and (--before REF) against the API's "
        "own code at an earlier commit, with wrk.",
    )
    parser.add_argument(
        "--size",
        nargs="+",
        help="10k (100 users x 100 tasks), 1m (10,000 x 100), or "
        "USERSxTASKS_EACH such as 2x100; several to compare sizes in one run; default 10k",
    )
    presets = parser.add_mutually_exclusive_group()
    presets.add_argument(
        "--full",
        action="store_true",
        help="the issue's targets: 10k and 1m, "
        "concurrency 1/8/32/64, 10 s per run, 2-worker runs, 5-minute soak",
    )
    presets.add_argument(
        "--quick",
        action="store_true",
        help="the tuning loop: 10k, 1 worker, 32 connections only, every scenario, 5 s each",
    )
    parser.add_argument(
        "--only",
        metavar="SERVERS",
        help="comma-separated subset of api,baseline,naive to run (default: all three), "
        "e.g. --only api or --only api,naive",
    )
    parser.add_argument(
        "--before",
        metavar="REF",
        help="also run the API as it was at git ref REF (exported with git archive, served by "
        "its own `serve` from the export, validated and measured like the others), reported "
        "beside the API with API/before ratios, e.g. --before 756671b",
    )
    parser.add_argument(
        "--seconds",
        type=float,
        help="duration of each timed run (delete-list's at least 2 s: MIN_SECONDS)",
    )
    parser.add_argument("--concurrency", type=int, nargs="+", help="connection counts")
    parser.add_argument(
        "--scenarios",
        nargs="+",
        choices=SCENARIOS + attachments.SCENARIOS,
        help="default: every wrk scenario; upload-rss, attachment-throughput and upload-trickle "
        "(the API alone, on the filesystem and on a radosgw started for the run) only when named",
    )
    parser.add_argument("--soak", type=float, help="seconds of mixed soak (0: none)")
    parser.add_argument("--warmup", type=float, help="seconds of untimed warm-up per server")
    parser.add_argument(
        "--no-two-workers", action="store_true", help="skip the 2-worker runs at 32 connections"
    )
    parser.add_argument(
        "--db-rtt-ms",
        type=_rtt,
        nargs="+",
        metavar="MS",
        help="put a delay proxy between every server and PostgreSQL adding MS of round trip "
        "(half each way), one pass per value, e.g. --db-rtt-ms 0 2 10 (a database one region "
        "away is 10 or more); `off` is a pass without the proxy (--db-rtt-ms off 0: the "
        "proxy's own cost); default: no proxy",
    )
    parser.add_argument(
        "--rounds",
        type=_positive,
        default=1,
        metavar="N",
        help="run each scenario's level N times back to back, the servers' order turning each "
        "time (on a loaded machine: per-round figures with the load average, and the median "
        "ratios); default 1",
    )
    parser.add_argument("--reuse", action="store_true", help="keep an already seeded database")
    parser.add_argument("--out", type=Path, default=Path(".data/bench"), help="output folder")
    parser.add_argument("--quiet", action="store_true")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    wrk.wrk_path()
    # A stopped benchmark stops its servers and the proxy too (the with-blocks unwind); a
    # background run ignores SIGINT, so SIGTERM is the way to stop it.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    plan = build_plan(args)
    estimate = plan.estimate()
    print(
        f"benchmark plan ({plan.preset}): servers {', '.join(plan.kinds)}, sizes {plan.sizes}, "
        f"{len(plan.scenarios)} scenarios, "
        f"concurrency {plan.concurrency}, {plan.seconds:g} s each, 2-worker runs "
        f"{'on' if plan.two_workers else 'off'}, soak {plan.soak_seconds:g} s; "
        f"expected to take about {estimate / 60:.1f} minutes",
        flush=True,
    )
    bench = Bench(plan, args.out, args.reuse, args.quiet)
    results = bench.run()
    paths = report.write(results, args.out)
    print(paths["markdown"].read_text())
    print(f"wrote {', '.join(str(p) for p in paths.values())} in {results['total_seconds']:.0f} s")
    if "chart" not in paths:
        print(report.NO_CHART)
    if results["failures"]:
        print("FAILED: non-2xx or socket errors in timed runs:")
        for failure in results["failures"]:
            print(f"  {failure}")
        return 1
    return 0
