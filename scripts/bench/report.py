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


def _ratio(api: float, base: float) -> float | None:
    return round(api / base, 3) if base else None


def pair_rows(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (size, workers, scenario, connections) with both servers side by side."""
    rows: dict[tuple[Any, ...], dict[str, Any]] = {}
    for run in runs:
        key = (run["size"], run["workers"], run["scenario"], run["connections"])
        rows.setdefault(
            key, {"size": key[0], "workers": key[1], "scenario": key[2], "connections": key[3]}
        )[run["server"]] = run
    for row in rows.values():
        if "api" in row and "baseline" in row:
            row["ratio"] = _ratio(row["api"]["rps"], row["baseline"]["rps"])
    return list(rows.values())


def _peak(rows: list[dict[str, Any]], size: str, scenario: str, server: str) -> float:
    return max(
        (
            r[server]["rps"]
            for r in rows
            if r["size"] == size and r["workers"] == 1 and r["scenario"] == scenario and server in r
        ),
        default=0.0,
    )


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
            ratio = _ratio(api, base)
            out.append(
                {
                    "target": f"{scenario}: API/baseline peak throughput >= {goal}",
                    "measured": f"{ratio} ({api:,.0f} / {base:,.0f} req/s, {first}, 1 worker)",
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


def markdown(results: dict[str, Any]) -> str:
    m, c = results["machine"], results["config"]
    lines = [
        "# Benchmark: the API against a raw Starlette + asyncpg baseline",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['ram_gb']} GB RAM, {m['os']}; "
        f"Python {m['python']}, PostgreSQL {m['postgresql']}, {m['wrk']}. "
        f"Load average at start: {m['load_average_at_start']}.",
        "",
        f"Run: {c['preset']} preset, sizes {', '.join(c['sizes'])}, {c['seconds']} s per "
        f"scenario, concurrency {c['concurrency']}, wrk threads <= 2; took "
        f"{results.get('total_seconds', 0):.0f} s. Rate limiting on (limit "
        f"{c['rate_limit']} writes/min per user, never reached); API access log on "
        "(JSON lines, as in production), baseline without one. Every figure below had zero non-2xx "
        "responses and zero socket errors; bodies were validated before timing.",
        "",
        "## Targets",
        "",
        "| target | measured | met |",
        "|---|---|---|",
    ]
    for t in results["targets"]:
        lines.append(f"| {t['target']} | {t['measured']} | {'yes' if t['met'] else '**no**'} |")
    lines += [
        "",
        "## Results",
        "",
        "Requests/s and latency (ms) as wrk measured them; CPU ms per request is the workers' "
        "CPU time (user + system) over the requests served, a cost figure that other load on "
        "the machine barely disturbs; RSS is the peak of any one worker during that run.",
        "",
        "| size | workers | scenario | conns | API req/s | baseline req/s | ratio | "
        "API p50 / p90 / p99 | baseline p50 / p90 / p99 | API / baseline CPU ms per request | "
        "API RSS MB | baseline RSS MB |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in pair_rows(results["runs"]):
        a, b = row.get("api"), row.get("baseline")

        def lat(r: dict[str, Any] | None) -> str:
            return f"{r['p50_ms']:.1f} / {r['p90_ms']:.1f} / {r['p99_ms']:.1f}" if r else "-"

        lines.append(
            f"| {row['size']} | {row['workers']} | {row['scenario']} | {row['connections']} | "
            f"{a['rps'] if a else '-':,} | {b['rps'] if b else '-':,} | {row.get('ratio', '-')} | "
            f"{lat(a)} | {lat(b)} | {a['cpu_ms_per_request'] if a else '-'} / "
            f"{b['cpu_ms_per_request'] if b else '-'} | {a['peak_rss_mb'] if a else '-'} | "
            f"{b['peak_rss_mb'] if b else '-'} |"
        )
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


def chart(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in pair_rows(results["runs"]) if r["workers"] == 1]
    scenarios = list(dict.fromkeys(r["scenario"] for r in rows))
    sizes = list(dict.fromkeys(r["size"] for r in rows))
    fig, axes = plt.subplots(2, len(scenarios), figsize=(3.2 * len(scenarios), 6.4), squeeze=False)
    styles = {"api": ("tab:blue", "API"), "baseline": ("tab:orange", "baseline")}
    for col, scenario in enumerate(scenarios):
        for size_index, size in enumerate(sizes):
            line = "-" if size_index == 0 else "--"
            for server, (color, label) in styles.items():
                points = sorted(
                    (r["connections"], r[server])
                    for r in rows
                    if r["scenario"] == scenario and r["size"] == size and server in r
                )
                if not points:
                    continue
                xs = [p[0] for p in points]
                name = f"{label} {size}"
                axes[0][col].plot(
                    xs, [p[1]["rps"] for p in points], line, color=color, marker="o", label=name
                )
                axes[1][col].plot(
                    xs, [p[1]["p99_ms"] for p in points], line, color=color, marker="o", label=name
                )
        axes[0][col].set_title(scenario)
        for row in (0, 1):
            axes[row][col].set_xscale("symlog", base=2)
            axes[row][col].set_xlabel("connections")
            axes[row][col].grid(alpha=0.3)
    axes[0][0].set_ylabel("requests/s")
    axes[1][0].set_ylabel("p99 latency (ms)")
    axes[0][0].legend(fontsize="small")
    fig.suptitle("API vs raw baseline, 1 worker each (" + results["machine"]["cpu"] + ")")
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
    paths["json"].write_text(json.dumps(results, indent=2) + "\n")
    paths["markdown"].write_text(markdown(results))
    chart(results, paths["chart"])
    return paths
