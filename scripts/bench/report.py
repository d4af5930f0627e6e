"""The benchmark's outputs: results.json, results.md (tables and targets) and a PNG chart."""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
from pathlib import Path
from typing import Any

import psutil

TARGETS_DOC = {
    "list_ratio": "list 100 tasks, API/baseline throughput >= 0.5",
    "write_ratio": "get one / create / toggle, API/baseline throughput >= 0.6",
    "p99_2w": "p99 latency, every endpoint, 32 connections, 2 workers < 25 ms",
    "list_scaling": "list p50 at 1,000,000 tasks vs at 10,000 tasks <= 1.2x",
    "rss": "RSS per worker after a 5-minute mixed run < 150 MB, no growth in the last half",
}


def machine(postgres_version: str) -> dict[str, Any]:
    cpu = platform.processor() or ""
    try:
        text = Path("/proc/cpuinfo").read_text()
        found = re.search(r"^model name\s*:\s*(.+)$", text, re.MULTILINE)
        cpu = found.group(1).strip() if found else cpu
    except OSError:
        pass
    try:
        wrk = subprocess.run(["wrk", "--version"], capture_output=True, text=True, check=False)
        wrk_version = (wrk.stdout or wrk.stderr).splitlines()[0]
    except (OSError, IndexError):
        wrk_version = "unknown"
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "ram_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "postgresql": postgres_version,
        "wrk": wrk_version,
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


SERVERS = ("api", "floor", "baseline")
LABELS = {"api": "API", "floor": "floor", "baseline": "baseline"}
# Issue 12: the API against the floor, at 1 worker and 32 connections, per route.
FLOOR_LEVEL = 32
FLOOR_THROUGHPUT = {
    "get": 0.8,
    "list": 0.8,
    "search": 0.8,
    "create": 0.7,
    "update": 0.7,
    "toggle": 0.7,
    "delete": 0.7,
}
FLOOR_CPU = 1.3  # API CPU per request at most this many times the floor's, every route


def _ratio(api: float | None, base: float | None) -> float | None:
    return round(api / base, 3) if api is not None and base else None


def pair_rows(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (size, workers, scenario, connections) with every server side by side,
    and the API's ratios to the floor and to the baseline: throughput (`ratio_floor`,
    `ratio`) and CPU per request (`cpu_ratio_floor`, `cpu_ratio`)."""
    rows: dict[tuple[Any, ...], dict[str, Any]] = {}
    for run in runs:
        rtt = run.get("db_rtt_ms")
        key = (run["size"], run["workers"], run["scenario"], run["connections"], rtt)
        rows.setdefault(
            key,
            {
                "size": key[0],
                "workers": key[1],
                "scenario": key[2],
                "connections": key[3],
                "db_rtt_ms": rtt,
            },
        )[run["server"]] = run
    for row in rows.values():
        if "api" not in row:
            continue
        for other, suffix in (("baseline", ""), ("floor", "_floor")):
            if other in row:
                row["ratio" + suffix] = _ratio(row["api"]["rps"], row[other]["rps"])
                row["cpu_ratio" + suffix] = _ratio(
                    row["api"]["cpu_ms_per_request"], row[other]["cpu_ms_per_request"]
                )
    return list(rows.values())


def comparisons(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The side-by-side rows without the nested runs, for results.json."""
    out = []
    for row in pair_rows(runs):
        flat = {k: row[k] for k in ("size", "workers", "scenario", "connections", "db_rtt_ms")}
        for server in SERVERS:
            if server in row:
                run = row[server]
                flat[f"{server}_rps"] = run["rps"]
                flat[f"{server}_p50_ms"] = run["p50_ms"]
                flat[f"{server}_p99_ms"] = run["p99_ms"]
                flat[f"{server}_cpu_ms_per_request"] = run["cpu_ms_per_request"]
        for name, key in (
            ("api_over_floor_rps", "ratio_floor"),
            ("api_over_baseline_rps", "ratio"),
            ("api_over_floor_cpu", "cpu_ratio_floor"),
            ("api_over_baseline_cpu", "cpu_ratio"),
        ):
            if key in row:
                flat[name] = row[key]
        out.append(flat)
    return out


def _peak(rows: list[dict[str, Any]], size: str, scenario: str, server: str) -> float:
    return max(
        (
            r[server]["rps"]
            for r in rows
            if r["size"] == size and r["workers"] == 1 and r["scenario"] == scenario and server in r
        ),
        default=0.0,
    )


def floor_targets(rows: list[dict[str, Any]], size: str) -> list[dict[str, Any]]:
    """Issue 12's targets, judged on the 1-worker run at 32 connections of `size` (or, in a
    run without one, the nearest connection count, said in the figure)."""
    out: list[dict[str, Any]] = []
    candidates = [
        r for r in rows if r["size"] == size and r["workers"] == 1 and "api" in r and "floor" in r
    ]
    for scenario, goal in FLOOR_THROUGHPUT.items():
        found = [r for r in candidates if r["scenario"] == scenario]
        if not found:
            continue
        row = min(found, key=lambda r: (abs(r["connections"] - FLOOR_LEVEL), -r["connections"]))
        where = f"{size}, 1 worker, {row['connections']} connections"
        if row["connections"] != FLOOR_LEVEL:
            where += f" (the target is set at {FLOOR_LEVEL})"
        api, floor, base = row["api"], row["floor"], row.get("baseline")
        versus_base = f"; API/baseline {row['ratio']}" if base else ""
        out.append(
            {
                "target": f"{scenario}: API/floor throughput >= {goal}",
                "measured": f"{row['ratio_floor']} (API {api['rps']:,} / floor "
                f"{floor['rps']:,} req/s{versus_base}; {where})",
                "met": row["ratio_floor"] is not None and row["ratio_floor"] >= goal,
                "against": "floor",
                "ratio": row["ratio_floor"],
                "connections": row["connections"],
            }
        )
        versus_base = f"; API/baseline {row['cpu_ratio']}x" if base else ""
        out.append(
            {
                "target": f"{scenario}: API CPU per request <= {FLOOR_CPU}x floor's",
                "measured": f"{row['cpu_ratio_floor']}x (API {api['cpu_ms_per_request']} / "
                f"floor {floor['cpu_ms_per_request']} ms{versus_base}; {where})",
                "met": row["cpu_ratio_floor"] is not None and row["cpu_ratio_floor"] <= FLOOR_CPU,
                "against": "floor",
                "ratio": row["cpu_ratio_floor"],
                "connections": row["connections"],
            }
        )
    return out


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    rows = pair_rows(results["runs"])
    sizes = results["config"]["sizes"]
    first = sizes[0]
    out: list[dict[str, Any]] = []

    def ratio_target(key: str, scenarios: list[str], goal: float) -> None:
        for scenario in scenarios:
            api, base = (
                _peak(rows, first, scenario, "api"),
                _peak(rows, first, scenario, "baseline"),
            )
            if not api or not base:
                continue
            ratio = _ratio(api, base)
            floor = _peak(rows, first, scenario, "floor")
            versus_floor = f"; API/floor peak {_ratio(api, floor)}" if floor else ""
            out.append(
                {
                    "target": f"{scenario}: API/baseline peak throughput >= {goal}",
                    "measured": f"{ratio} ({api:,.0f} / {base:,.0f} req/s, {first}, 1 worker"
                    f"{versus_floor})",
                    "met": ratio is not None and ratio >= goal,
                }
            )

    ratio_target("list_ratio", ["list"], 0.5)
    ratio_target("write_ratio", ["get", "create", "toggle"], 0.6)
    two = [r for r in rows if r["workers"] == 2 and r["connections"] == 32 and "api" in r]
    if two:
        worst = max(two, key=lambda r: r["api"]["p99_ms"])
        out.append(
            {
                "target": TARGETS_DOC["p99_2w"],
                "measured": f"worst {worst['api']['p99_ms']:.1f} ms ({worst['scenario']}, "
                f"{worst['size']})",
                "met": worst["api"]["p99_ms"] < 25,
            }
        )
    if len(sizes) > 1:

        def p50(size: str) -> tuple[float, int] | None:
            found = sorted(
                (
                    r
                    for r in rows
                    if r["size"] == size
                    and r["workers"] == 1
                    and r["scenario"] == "list"
                    and "api" in r
                ),
                key=lambda r: r["connections"],
            )
            return (found[0]["api"]["p50_ms"], found[0]["connections"]) if found else None

        small, large = p50(sizes[0]), p50(sizes[-1])
        if small and large:
            factor = round(large[0] / small[0], 2)
            out.append(
                {
                    "target": TARGETS_DOC["list_scaling"],
                    "measured": f"{factor}x ({large[0]:.2f} ms at {sizes[-1]} vs {small[0]:.2f} ms "
                    f"at {sizes[0]}, {small[1]} connection(s))",
                    "met": factor <= 1.2,
                }
            )
    out += floor_targets(rows, first)
    soak = results.get("soak")
    if soak:
        out.append(
            {
                "target": TARGETS_DOC["rss"],
                "measured": f"peak {soak['peak_rss_mb']} MB, last-half growth "
                f"{soak['last_half_growth_mb']:+.1f} MB over {soak['seconds']} s",
                "met": soak["peak_rss_mb"] < 150 and soak["last_half_growth_mb"] < 5,
            }
        )
    return out


def _cell(row: dict[str, Any], key: str, fmt: str = "{}") -> str:
    values = [fmt.format(row[server][key]) if server in row else "-" for server in SERVERS]
    return " / ".join(values)


def _latency(run: dict[str, Any] | None) -> str:
    if run is None:
        return "-"
    return f"{run['p50_ms']:.1f} / {run['p90_ms']:.1f} / {run['p99_ms']:.1f}"


def _target_table(targets: list[dict[str, Any]]) -> list[str]:
    lines = ["| target | measured | met |", "|---|---|---|"]
    for t in targets:
        lines.append(f"| {t['target']} | {t['measured']} | {'yes' if t['met'] else '**no**'} |")
    return lines


def _servers_sentence(c: dict[str, Any]) -> str:
    kinds = c.get("servers", ["api", "baseline"])
    api_env = c.get("api_env") or {}
    parts = []
    if "api" in kinds:
        settings = ", ".join(f"{k}={v}" for k, v in api_env.items())
        parts.append(
            "the API as in production (" + (settings + "; " if settings else "") + "JSON access "
            "log on, Prometheus metrics on, rate limiting on with a limit of "
            f"{c['rate_limit']} writes/min per user, never reached; revocation checked on "
            "every request)"
        )
    if "floor" in kinds:
        parts.append(
            "the stack floor (FastAPI sync routes, SQLAlchemy Core over psycopg2, python-jose "
            "with the API's claims cache; the same rate-limit count; no middleware, no ORM "
            "session, no dependency tree, no pydantic models; no access log)"
        )
    if "baseline" in kinds:
        parts.append("the raw baseline (Starlette + asyncpg, no access log)")
    return "Servers: " + "; ".join(parts) + "."


def markdown(results: dict[str, Any]) -> str:
    m, c = results["machine"], results["config"]
    kinds = c.get("servers", ["api", "baseline"])
    lines = [
        "# Benchmark: the API against the stack floor and a raw Starlette + asyncpg baseline",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['ram_gb']} GB RAM, {m['os']}; "
        f"Python {m['python']}, PostgreSQL {m['postgresql']}, {m['wrk']}. "
        f"Load average at start: {m['load_average_at_start']}.",
        "",
        f"Run: {c['preset']} preset, servers {', '.join(kinds)}, sizes {', '.join(c['sizes'])}, "
        f"{c['seconds']} s per scenario, concurrency {c['concurrency']}, wrk threads <= 2; took "
        f"{results.get('total_seconds', 0):.0f} s. Every figure below had zero non-2xx "
        "responses and zero socket errors; bodies were validated before timing.",
        "",
        _servers_sentence(c),
        "",
    ]
    floor = [t for t in results["targets"] if t.get("against") == "floor"]
    others = [t for t in results["targets"] if t.get("against") != "floor"]
    if floor:
        lines += [
            f"## Targets against the stack floor (1 worker, {FLOOR_LEVEL} connections)",
            "",
            *_target_table(floor),
            "",
        ]
    if others:
        lines += ["## Targets", "", *_target_table(others), ""]
    lines += [
        "## Results",
        "",
        "Requests/s and latency (ms) as wrk measured them, for API / floor / baseline; the "
        "ratios are the API's figure over the other server's (throughput: higher is better for "
        "the API; CPU: lower is). CPU ms per request is the workers' CPU time (user + system) "
        "over the requests served, a cost figure that other load on the machine barely "
        "disturbs; RSS is the peak of any one worker during that run. `-`: not run.",
        "",
        "| size | workers | scenario | conns | req/s API / floor / baseline | API/floor | "
        "API/baseline | API p50 / p90 / p99 | floor p50 / p90 / p99 | baseline p50 / p90 / p99 | "
        "CPU ms/req API / floor / baseline | CPU API/floor | CPU API/baseline | "
        "RSS MB API / floor / baseline |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in pair_rows(results["runs"]):
        size = row["size"]
        if row.get("db_rtt_ms") is not None:
            size = f"{size}, RTT {row['db_rtt_ms']:g} ms"
        lines.append(
            f"| {size} | {row['workers']} | {row['scenario']} | {row['connections']} | "
            f"{_cell(row, 'rps', '{:,}')} | {row.get('ratio_floor', '-')} | "
            f"{row.get('ratio', '-')} | {_latency(row.get('api'))} | "
            f"{_latency(row.get('floor'))} | {_latency(row.get('baseline'))} | "
            f"{_cell(row, 'cpu_ms_per_request')} | {row.get('cpu_ratio_floor', '-')} | "
            f"{row.get('cpu_ratio', '-')} | {_cell(row, 'peak_rss_mb')} |"
        )
    lines += _round_trip_table(pair_rows(results["runs"]))
    soak = results.get("soak")
    if soak:
        lines += [
            "",
            "## Soak",
            "",
            f"Mixed workload against the API ({soak['workers']} worker, {soak['connections']} "
            f"connections) for {soak['seconds']} s at {soak['size']}: {soak['requests']:,} "
            f"requests, {soak['rps']:,} req/s, p99 {soak['p99_ms']:.1f} ms, "
            f"{soak['non2xx']} non-2xx. RSS per worker: {soak['start_rss_mb']} MB after "
            f"warm-up, {soak['mid_rss_mb']} MB at half time, {soak['end_rss_mb']} MB at the end "
            f"(peak {soak['peak_rss_mb']} MB; last-half growth "
            f"{soak['last_half_growth_mb']:+.1f} MB).",
        ]
    lines += ["", "## Validation before timing", ""]
    lines += [f"- {v}" for v in results["validation"]]
    return "\n".join(lines) + "\n"


def _round_trip_table(rows: list[dict[str, Any]]) -> list[str]:
    """With `--db-rtt-ms`: latency at 1 connection and throughput at 32, per added database
    round trip, the API beside the baseline (1 worker)."""
    rtts = sorted({r["db_rtt_ms"] for r in rows if r.get("db_rtt_ms") is not None})
    if not rtts:
        return []

    def find(scenario: str, rtt: float, level: int) -> dict[str, Any]:
        found = [
            r
            for r in rows
            if r["scenario"] == scenario
            and r.get("db_rtt_ms") == rtt
            and r["connections"] == level
            and r["workers"] == 1
        ]
        return found[0] if found else {}

    def latency(row: dict[str, Any], server: str) -> str:
        run = row.get(server)
        return f"{run['p50_ms']:.1f} / {run['p99_ms']:.1f}" if run else "-"

    def rate(row: dict[str, Any], server: str) -> str:
        run = row.get(server)
        return f"{run['rps']:,.0f}" if run else "-"

    lines = [
        "",
        "## Database round trip (delay proxy, `--db-rtt-ms`)",
        "",
        "1 worker. p50 / p99 ms at 1 connection; req/s at 32 connections. Every server "
        "reaches PostgreSQL through the delay proxy of scripts/bench/dbproxy.py (0 ms too).",
        "",
        "| scenario | RTT ms | API p50 / p99 (c=1) | baseline p50 / p99 (c=1) | "
        "API req/s (c=32) | baseline req/s (c=32) |",
        "|---|---|---|---|---|---|",
    ]
    for scenario in dict.fromkeys(r["scenario"] for r in rows):
        for rtt in rtts:
            one, many = find(scenario, rtt, 1), find(scenario, rtt, 32)
            if not one and not many:
                continue
            lines.append(
                f"| {scenario} | {rtt:g} | {latency(one, 'api')} | {latency(one, 'baseline')} "
                f"| {rate(many, 'api')} | {rate(many, 'baseline')} |"
            )
    return lines


STYLES = {
    "api": ("tab:blue", "API"),
    "floor": ("tab:green", "floor"),
    "baseline": ("tab:orange", "baseline"),
}


def chart(results: dict[str, Any], path: Path) -> None:
    """Per scenario (columns), 1 worker: requests/s, p99, CPU ms per request of each server,
    and the API's throughput ratio to the floor and to the baseline, against connections."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in pair_rows(results["runs"]) if r["workers"] == 1]
    scenarios = list(dict.fromkeys(r["scenario"] for r in rows))
    sizes = list(dict.fromkeys(r["size"] for r in rows))
    fig, axes = plt.subplots(4, len(scenarios), figsize=(3.2 * len(scenarios), 12.0), squeeze=False)
    measures = (
        ("rps", "requests/s"),
        ("p99_ms", "p99 latency (ms)"),
        ("cpu_ms_per_request", "CPU ms per request"),
    )
    for col, scenario in enumerate(scenarios):
        for size_index, size in enumerate(sizes):
            line = "-" if size_index == 0 else "--"
            here = sorted(
                (r for r in rows if r["scenario"] == scenario and r["size"] == size),
                key=lambda r: r["connections"],
            )
            for server, (color, label) in STYLES.items():
                points = [(r["connections"], r[server]) for r in here if server in r]
                if not points:
                    continue
                xs = [p[0] for p in points]
                for index, (key, _) in enumerate(measures):
                    axes[index][col].plot(
                        xs,
                        [p[1][key] for p in points],
                        line,
                        color=color,
                        marker="o",
                        label=f"{label} {size}",
                    )
            for key, server in (("ratio_floor", "floor"), ("ratio", "baseline")):
                points = [(r["connections"], r[key]) for r in here if r.get(key) is not None]
                if points:
                    axes[3][col].plot(
                        [p[0] for p in points],
                        [p[1] for p in points],
                        line,
                        color=STYLES[server][0],
                        marker="o",
                        label=f"API/{server} {size}",
                    )
        axes[0][col].set_title(scenario)
        for row in range(4):
            axes[row][col].set_xscale("symlog", base=2)
            axes[row][col].set_xlabel("connections")
            axes[row][col].grid(alpha=0.3)
        if scenario in FLOOR_THROUGHPUT:
            # The API/floor target, judged at 32 connections.
            axes[3][col].axhline(FLOOR_THROUGHPUT[scenario], color="tab:green", ls=":", lw=1)
        axes[3][col].set_ylim(bottom=0)
    for index, (_, label) in enumerate(measures):
        axes[index][0].set_ylabel(label)
    axes[3][0].set_ylabel("API throughput ratio")
    axes[0][0].legend(fontsize="small")
    axes[3][0].legend(fontsize="small")
    fig.suptitle(
        "API vs stack floor vs raw baseline, 1 worker each (" + results["machine"]["cpu"] + ")"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def write(results: dict[str, Any], out_dir: Path) -> dict[str, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    results["targets"] = targets(results)
    paths = {
        "json": out_dir / "results.json",
        "markdown": out_dir / "results.md",
        "chart": out_dir / "results.png",
    }
    results["comparisons"] = comparisons(results["runs"])
    paths["json"].write_text(json.dumps(results, indent=2) + "\n")
    paths["markdown"].write_text(markdown(results))
    chart(results, paths["chart"])
    return paths
