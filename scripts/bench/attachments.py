"""Issue 63's scenarios, against the API alone (the raw baseline and the naive app have no
attachments), on both storage backends in turn: the filesystem under the run's work folder,
and S3 on a real radosgw started for the run (tests/storage/radosgw.py: a one-node Ceph on
loopback, as the tests start it; skipped, and said so, where it is not installed).

Each backend gets an API of its own (`serve`, one worker, the production settings of every
other scenario plus the storage's), so the worker is the server process and its memory is
the upload path's alone.

- `upload-rss` ("10 concurrent uploads of the maximum size raise the worker's RSS by less than
  64 MiB"): after the validation's 1 MiB upload and download (the storage built, boto3
  loaded), the worker's RSS; then `ROUNDS` times `CONCURRENT_UPLOADS` uploads of the
  per-file maximum (as the server reports it, `GET /api/attachments/limits`) sent at once,
  the worker's peak RSS
  read from the kernel (`VmHWM` of /proc/<pid>/status, reset before each round through
  `clear_refs`; VmRSS polled every 10 ms besides, as a check and the fallback). The rise is
  the highest peak over the RSS before the first round.
- `attachment-throughput`: 1 MiB files, at every concurrency level, for the run's seconds:
  uploads (`POST`, 201) and downloads. On the filesystem a download is the API streaming the
  bytes; on S3 it is the API's 302 and then the GET of the presigned URL from radosgw, timed
  together (the API's part alone reported beside), since that is what a client waits for.

The load comes from an asyncio + httpx client in this process, not wrk: wrk sends every
request to the one host it was given, so it cannot follow the redirect to the object store,
and one client for every attachment figure keeps uploads and downloads, filesystem and S3,
comparable. At 1 MiB a request, the cost is the bytes, not the client's per-request work; its
CPU per request is reported beside the server's, since both share the machine's cores.

Every answer is checked: an upload's 201 carries the size and SHA-256 of the bytes sent, a
download's body is the file (validated byte for byte before timing; its length during). What
a run uploaded is deleted through the API afterwards (the bytes go after the commit), so the
quota and the per-task cap never stop a run.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
import psutil

from scripts.bench import servers

SCENARIOS = ("upload-rss", "attachment-throughput", "upload-trickle")
RSS_SCENARIO, THROUGHPUT_SCENARIO, TRICKLE_SCENARIO = SCENARIOS
# upload-trickle (issue 71): this many uploads of the maximum size, each sending a KiB every
# TRICKLE_INTERVAL seconds (4 KiB/s) for the run's seconds and then cut by the client, while
# GET_CONNECTIONS loops read a task each; the same GET load alone first, in the same run.
TRICKLE_UPLOADS = 40
TRICKLE_PIECE = 1024
TRICKLE_INTERVAL = 0.25
GET_CONNECTIONS = 8
TRICKLE_TARGET_RATIO = 2.0
BACKENDS = ("filesystem", "s3")
CONCURRENT_UPLOADS = 10
ROUNDS = 3
RSS_TARGET_MIB = 64
FILE_BYTES = 1024 * 1024
# Files uploaded once per backend and downloaded in turn by the download runs.
DOWNLOAD_POOL = 32
BUCKET = "task-api-bench"
# The OSD's in-memory store: radosgw keeps a large object's tail until its garbage collection
# (hours), so the RSS rounds' files stay in memory for the run; what is unused is never taken.
MEMSTORE_BYTES = 4 * 1024**3
MIB = 1024 * 1024
# Seconds per backend besides the timed runs: the API's and radosgw's starts, the validation,
# the RSS rounds, the download pool and the clean-ups.
OVERHEAD_SECONDS = 40
# A request of a timed run: (the API's client, the object store's, the loop's turn).
Call = Callable[[httpx.AsyncClient, httpx.AsyncClient, int], Awaitable["Outcome"]]
Timed = tuple[list["Outcome"], float]


def selected(scenarios: list[str]) -> list[str]:
    return [s for s in scenarios if s in SCENARIOS]


def estimate(scenarios: list[str], levels: list[int], seconds: float) -> float:
    """Seconds the attachment scenarios take, for the plan's estimate."""
    chosen = selected(scenarios)
    if not chosen:
        return 0.0
    timed = 2 * len(levels) * (seconds + 2) if THROUGHPUT_SCENARIO in chosen else 0
    timed += 2 * (seconds + 2) if TRICKLE_SCENARIO in chosen else 0
    return len(BACKENDS) * (OVERHEAD_SECONDS + timed)


class Outcome:
    """One request's result: whether it was what was expected, and if not, what came."""

    __slots__ = ("api_ms", "attachment", "bad", "bytes", "ms")

    def __init__(
        self,
        bad: str = "",
        *,
        size: int = 0,
        ms: float = 0.0,
        api_ms: float | None = None,
        attachment: tuple[int, int, int] | None = None,
    ) -> None:
        self.bad = bad
        self.bytes = size
        self.ms = ms
        self.api_ms = api_ms
        # A stored upload's (pair, task id, attachment id): what deletes it.
        self.attachment = attachment


class Load:
    """Tokens and seeded tasks: pair n is (user number, one of that user's task ids),
    interleaved across users (scripts/bench/workload.py `owned_pairs`)."""

    def __init__(self, tokens: list[str], owned: list[list[int]]) -> None:
        if not owned:
            raise RuntimeError("the attachment scenarios need seeded tasks")
        self.tokens = tokens
        self.owned = owned

    def pair(self, n: int) -> tuple[dict[str, str], int]:
        user, task = self.owned[n % len(self.owned)]
        return {"Authorization": f"Bearer {self.tokens[user - 1]}"}, task


def run(
    scenarios: list[str],
    *,
    levels: list[int],
    seconds: float,
    database_url: str,
    secret: str,
    tokens: list[str],
    owned: list[list[int]],
    work: Path,
    say: Callable[[str], None],
) -> dict[str, Any]:
    """Run the chosen attachment scenarios on each backend; the results' `attachments`."""
    chosen = selected(scenarios)
    load = Load(tokens, owned)
    out: dict[str, Any] = {
        "scenarios": chosen,
        "servers": ["api"],
        "note": "API only: the raw baseline and the naive app have no attachments",
        "concurrent_uploads": CONCURRENT_UPLOADS,
        "rounds": ROUNDS,
        "rss_target_mib": RSS_TARGET_MIB,
        "file_bytes": FILE_BYTES,
        "levels": levels,
        "seconds": seconds,
        "load_generator": "asyncio + httpx in the benchmark's process",
        "backends": {},
        "validation": [],
        "failures": [],
    }
    for backend in BACKENDS:
        with ExitStack() as stack:
            env, skipped = _storage_env(backend, work, stack, say)
            if env is None:
                say(f"[attachments] {backend}: skipped, {skipped}")
                out["backends"][backend] = {"skipped": skipped}
                continue
            api = stack.enter_context(
                servers.start(
                    "api",
                    workers=1,
                    database_url=database_url,
                    secret=secret,
                    log_dir=work,
                    # Every trickling upload admitted (the default runs 16 at once).
                    extra_env={**env, "ATTACHMENTS_MAX_CONCURRENT_UPLOADS": str(TRICKLE_UPLOADS)},
                )
            )
            # One log per backend (servers.start names it by kind and workers).
            stack.callback(_keep_log, api.log, work / f"api-attachments-{backend}.log")
            found: dict[str, Any] = {"storage": env.get("S3_ENDPOINT_URL", "filesystem")}
            (worker,) = api.worker_processes()
            cold = _status_kib(worker.pid, "VmRSS")
            # The validation is the worker's warm-up too: the storage built (boto3 loaded on
            # S3), the upload and download paths run once.
            found["max_file_bytes"], checked = validate(api.url, load, backend)
            out["validation"] += [f"{backend}: {c}" for c in checked]
            say(f"[attachments] {backend}: validated: {'; '.join(checked)}")
            if RSS_SCENARIO in chosen:
                found["rss"] = upload_rss(api, load, found["max_file_bytes"], say, backend, cold)
                out["failures"] += found["rss"].pop("failures")
            if THROUGHPUT_SCENARIO in chosen:
                rows, failures = throughput(api, load, levels, seconds, backend, say)
                found["throughput"] = rows
                out["failures"] += failures
            if TRICKLE_SCENARIO in chosen:
                found["trickle"] = trickle(api, load, found["max_file_bytes"], seconds, say)
                out["failures"] += found["trickle"].pop("failures")
            out["backends"][backend] = found
    return out


def _keep_log(log: Path, kept: Path) -> None:
    if log.exists():
        shutil.copyfile(log, kept)


def _storage_env(
    backend: str, work: Path, stack: ExitStack, say: Callable[[str], None]
) -> tuple[dict[str, str] | None, str]:
    """The API's storage settings for `backend` (S3: radosgw started, a bucket made), or
    None and why not."""
    if backend == "filesystem":
        folder = work / "attachments"
        stack.callback(shutil.rmtree, folder, True)
        return {"ATTACHMENTS_DIR": str(folder)}, ""
    # The tests' starter (a one-node Ceph on loopback), shared rather than copied.
    from backend.storage.s3 import make_client
    from tests.storage import radosgw

    if not radosgw.installed():
        return None, f"radosgw is not installed (apt-get install {' '.join(radosgw.PACKAGES)})"
    # A folder of its own in /tmp, as the tests make it: the daemons run as Debian's `ceph`
    # user when this runs as root, and could not enter the run's 0700 work folder.
    root = Path(tempfile.mkdtemp(prefix="task-api-bench-radosgw-"))
    stack.callback(shutil.rmtree, root, True)
    began = time.monotonic()
    gateway = stack.enter_context(radosgw.running_radosgw(root, memstore_bytes=MEMSTORE_BYTES))
    say(f"[attachments] s3: radosgw started in {time.monotonic() - began:.1f} s")
    make_client(
        endpoint_url=gateway.endpoint,
        region=gateway.region,
        access_key_id=gateway.access_key,
        secret_access_key=gateway.secret_key,
        addressing_style="path",
    ).create_bucket(Bucket=BUCKET)
    return {
        "S3_BUCKET": BUCKET,
        "S3_ENDPOINT_URL": gateway.endpoint,
        "S3_REGION": gateway.region,
        "S3_ACCESS_KEY_ID": gateway.access_key,
        "S3_SECRET_ACCESS_KEY": gateway.secret_key,
        "S3_ADDRESSING_STYLE": "path",
        "S3_PREFIX": "bench/",
    }, ""


# --- the requests ------------------------------------------------------------------------


async def _upload(
    client: httpx.AsyncClient, load: Load, n: int, data: bytes, sha256: str
) -> Outcome:
    headers, task = load.pair(n)
    began = time.perf_counter()
    answer = await client.post(
        f"/api/tasks/{task}/attachments",
        headers=headers,
        files={"file": (f"bench-{n}.bin", data, "application/octet-stream")},
    )
    ms = (time.perf_counter() - began) * 1000
    if answer.status_code != 201:
        return Outcome(f"upload: {answer.status_code} {answer.text[:200]}", ms=ms)
    row = answer.json()["data"]
    if row["size"] != len(data) or row["sha256"] != sha256:
        return Outcome(f"upload: stored {row['size']} bytes, sha256 {row['sha256']}", ms=ms)
    return Outcome(size=len(data), ms=ms, attachment=(n, task, int(row["id"])))


async def _download(
    client: httpx.AsyncClient,
    storage: httpx.AsyncClient,
    load: Load,
    file: tuple[int, int, int],
    size: int,
) -> Outcome:
    """The file's bytes as a client gets them: the API's answer, and on S3 the presigned
    URL it redirects to (fetched without the API's token, as a browser would)."""
    pair, task, attachment = file
    headers, _ = load.pair(pair)
    began = time.perf_counter()
    answer = await client.get(
        f"/api/tasks/{task}/attachments/{attachment}/download", headers=headers
    )
    api_ms = (time.perf_counter() - began) * 1000
    if answer.status_code == 302:
        answer = await storage.get(answer.headers["location"])
    ms = (time.perf_counter() - began) * 1000
    if answer.status_code != 200 or len(answer.content) != size:
        return Outcome(f"download: {answer.status_code}, {len(answer.content)} bytes", ms=ms)
    return Outcome(size=size, ms=ms, api_ms=api_ms)


def _client(url: str, connections: int) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    return httpx.AsyncClient(base_url=url, limits=limits, timeout=120)


async def _uploads(url: str, load: Load, count: int, data: bytes, start: int = 0) -> list[Outcome]:
    """`count` uploads of `data` sent at once, pair `start` onwards."""
    sha256 = hashlib.sha256(data).hexdigest()
    async with _client(url, count) as client:
        return list(
            await asyncio.gather(
                *(_upload(client, load, start + n, data, sha256) for n in range(count))
            )
        )


async def _delete(url: str, load: Load, stored: list[tuple[int, int, int]]) -> list[str]:
    """Delete (pair, task id, attachment id) through the API (204); what went wrong."""
    async with _client(url, 8) as client:
        gate = asyncio.Semaphore(8)

        async def one(pair: int, task: int, attachment: int) -> str:
            headers, _ = load.pair(pair)
            async with gate:
                answer = await client.delete(
                    f"/api/tasks/{task}/attachments/{attachment}", headers=headers
                )
            return "" if answer.status_code == 204 else f"delete: {answer.status_code}"

        return [bad for bad in await asyncio.gather(*(one(*s) for s in stored)) if bad]


def _stored(outcomes: list[Outcome]) -> list[tuple[int, int, int]]:
    return [o.attachment for o in outcomes if o.attachment is not None]


# --- validation --------------------------------------------------------------------------


def validate(url: str, load: Load, backend: str) -> tuple[int, list[str]]:
    """The server's per-file maximum, and the checks that an upload stores the bytes sent
    and a download (S3: by its redirect) gives them back; AssertionError otherwise."""
    headers, _ = load.pair(0)
    limits = httpx.get(f"{url}/api/attachments/limits", headers=headers, timeout=30)
    if limits.status_code != 200:
        raise AssertionError(f"{RSS_SCENARIO}: limits {limits.status_code} {limits.text[:200]}")
    max_bytes = int(limits.json()["data"]["max_file_bytes"])
    data = os.urandom(FILE_BYTES)
    (stored,) = asyncio.run(_uploads(url, load, 1, data))
    if stored.attachment is None:
        raise AssertionError(f"{THROUGHPUT_SCENARIO}: {stored.bad}")
    _, task, attachment = stored.attachment
    path = f"{url}/api/tasks/{task}/attachments/{attachment}/download"
    answer = httpx.get(path, headers=headers, timeout=60)
    how = "streamed by the API"
    if backend == "s3":
        location = answer.headers.get("location", "")
        if answer.status_code != 302 or "X-Amz-Signature=" not in location:
            raise AssertionError(f"{THROUGHPUT_SCENARIO}: s3 download {answer.status_code}")
        answer = httpx.get(location, timeout=60)
        how = "a 302 to a presigned URL, then the object store"
    if answer.status_code != 200 or answer.content != data:
        raise AssertionError(
            f"{THROUGHPUT_SCENARIO}: download {answer.status_code}, {len(answer.content)} bytes"
        )
    problems = asyncio.run(_delete(url, load, [(0, task, attachment)]))
    if problems:
        raise AssertionError(f"{THROUGHPUT_SCENARIO}: {problems[0]}")
    return max_bytes, [
        f"per-file maximum {max_bytes:,} bytes (GET /api/attachments/limits)",
        f"a 1 MiB upload stored with its size and SHA-256, downloaded byte for byte ({how}), "
        "deleted (204)",
    ]


# --- upload-rss --------------------------------------------------------------------------


def _status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/{pid}/status")


def _reset_peak(pid: int) -> bool:
    """Reset the process's VmHWM to its current RSS (Linux 4.0+: "5" to clear_refs); False
    where that is not allowed (then the polled peak stands)."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


@contextmanager
def _polled_peak(pid: int, interval: float = 0.01) -> Iterator[list[int]]:
    """VmRSS (KiB) polled in a thread while the block runs: [the highest seen]."""
    peak = [_status_kib(pid, "VmRSS")]
    stop = threading.Event()

    def poll() -> None:
        while not stop.is_set():
            try:
                peak[0] = max(peak[0], _status_kib(pid, "VmRSS"))
            except (OSError, RuntimeError):
                return
            stop.wait(interval)

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    try:
        yield peak
    finally:
        stop.set()
        thread.join()


def upload_rss(
    api: servers.Server,
    load: Load,
    max_bytes: int,
    say: Callable[[str], None],
    backend: str,
    cold: int,
) -> dict[str, Any]:
    """`ROUNDS` of `CONCURRENT_UPLOADS` uploads of `max_bytes` at once; the worker's RSS
    before (`cold`: KiB, at its start), at each round's peak and after."""
    (worker,) = api.worker_processes()
    pid = worker.pid
    data = os.urandom(max_bytes)
    before = _status_kib(pid, "VmRSS")
    rounds: list[dict[str, Any]] = []
    failures: list[str] = []
    for round_ in range(1, ROUNDS + 1):
        exact = _reset_peak(pid)
        began = time.monotonic()
        with _polled_peak(pid) as polled:
            outcomes = asyncio.run(_uploads(api.url, load, CONCURRENT_UPLOADS, data))
        seconds = time.monotonic() - began
        peak = _status_kib(pid, "VmHWM") if exact else polled[0]
        bad = [o.bad for o in outcomes if o.bad]
        if bad:
            failures.append(f"{backend} {RSS_SCENARIO} round {round_}: {len(bad)} bad: {bad[0]}")
        failures += asyncio.run(_delete(api.url, load, _stored(outcomes)))
        rounds.append(
            {
                "round": round_,
                "seconds": round(seconds, 2),
                "stored": sum(o.attachment is not None for o in outcomes),
                "peak_mib": round(peak / 1024, 1),
                "polled_peak_mib": round(polled[0] / 1024, 1),
                "rise_mib": round((peak - before) / 1024, 1),
                "peak_from": "VmHWM" if exact else "VmRSS polled every 10 ms",
            }
        )
        say(
            f"  {backend} {RSS_SCENARIO} round {round_}: {CONCURRENT_UPLOADS} x "
            f"{max_bytes / MIB:g} MiB in {seconds:.1f} s, worker RSS {before / 1024:.1f} -> "
            f"peak {peak / 1024:.1f} MiB (rise {(peak - before) / 1024:+.1f} MiB)"
        )
    rise = max(r["rise_mib"] for r in rounds)
    return {
        "pid": pid,
        "max_file_bytes": max_bytes,
        "cold_rss_mib": round(cold / 1024, 1),
        "before_rss_mib": round(before / 1024, 1),
        "after_rss_mib": round(_status_kib(pid, "VmRSS") / 1024, 1),
        "rounds": rounds,
        "rise_mib": rise,
        "met": rise < RSS_TARGET_MIB and not failures,
        "failures": failures,
    }


# --- attachment-throughput ---------------------------------------------------------------


async def _timed(url: str, connections: int, seconds: float, call: Call) -> Timed:
    """`connections` loops, each calling `call(api, storage, n)` (n: its turn) until
    `seconds` have passed; the outcomes and the seconds taken."""
    outcomes: list[Outcome] = []
    deadline = time.monotonic() + seconds
    async with _client(url, connections) as api, _client("", connections) as storage:

        async def loop(first: int) -> None:
            n = first
            while time.monotonic() < deadline:
                outcomes.append(await call(api, storage, n))
                n += connections

        began = time.monotonic()
        await asyncio.gather(*(loop(c) for c in range(connections)))
        return outcomes, time.monotonic() - began


def _percentile(values: list[float], share: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(share * len(ordered)))], 1)


def throughput(
    api: servers.Server,
    load: Load,
    levels: list[int],
    seconds: float,
    backend: str,
    say: Callable[[str], None],
) -> tuple[list[dict[str, Any]], list[str]]:
    """Upload and download runs of 1 MiB files at each level; the rows and what failed."""
    data = os.urandom(FILE_BYTES)
    sha256 = hashlib.sha256(data).hexdigest()
    pool = asyncio.run(_uploads(api.url, load, DOWNLOAD_POOL, data))
    files = _stored(pool)
    if len(files) != DOWNLOAD_POOL:
        raise RuntimeError(f"{THROUGHPUT_SCENARIO}: the download pool: {pool[0].bad}")

    async def upload(client: httpx.AsyncClient, _: httpx.AsyncClient, n: int) -> Outcome:
        # Pairs past the pool's, so that a run's uploads spread over users and tasks.
        return await _upload(client, load, DOWNLOAD_POOL + n, data, sha256)

    async def download(client: httpx.AsyncClient, storage: httpx.AsyncClient, n: int) -> Outcome:
        return await _download(client, storage, load, files[n % len(files)], len(data))

    rows: list[dict[str, Any]] = []
    failures: list[str] = []
    for level in levels:
        for direction, call in (("upload", upload), ("download", download)):
            row, outcomes = _measure(api, level, seconds, call)
            row = {"backend": backend, "direction": direction, **row}
            if backend == "s3" and direction == "download":
                row["followed_redirect"] = True
            rows.append(row)
            if row["bad"]:
                failures.append(
                    f"{backend} {THROUGHPUT_SCENARIO} {direction} c={level}: {row['bad']} bad "
                    f"of {row['requests']}; first: {row['first_bad']}"
                )
            if direction == "upload":
                failures += asyncio.run(_delete(api.url, load, _stored(outcomes)))
            say(
                f"  {backend} {direction:<8} 1 MiB c={level:<3} {row['rps']:>7,.1f} req/s "
                f"{row['mib_per_s']:>7,.1f} MiB/s  p50 {row['p50_ms']:7.1f} ms  "
                f"p99 {row['p99_ms']:7.1f} ms  cpu {row['cpu_ms_per_request']} ms/req  "
                f"client cpu {row['client_cpu_ms_per_request']} ms/req  bad {row['bad']}  "
                f"rss {row['peak_rss_mb']} MB"
            )
    failures += asyncio.run(_delete(api.url, load, files))
    return rows, failures


def _measure(
    api: servers.Server, level: int, seconds: float, call: Call
) -> tuple[dict[str, Any], list[Outcome]]:
    """One timed run at `level` connections: its figures and its outcomes."""
    load_average = round(os.getloadavg()[0], 2)
    api.samples.clear()
    cpu, own = api.cpu_seconds(), _own_cpu_seconds()
    began = time.monotonic()
    with servers.RssSampler([api]):
        outcomes, took = asyncio.run(_timed(api.url, level, seconds, call))
    server_cpu, client_cpu = api.cpu_seconds() - cpu, _own_cpu_seconds() - own
    good = [o for o in outcomes if not o.bad]
    bad = [o.bad for o in outcomes if o.bad]
    ms = [o.ms for o in good]
    api_ms = [o.api_ms for o in good if o.api_ms is not None]
    count = len(outcomes)
    row: dict[str, Any] = {
        "connections": level,
        "seconds": round(took, 2),
        "requests": count,
        "rps": round(len(good) / took, 1) if took else 0.0,
        "mib_per_s": round(sum(o.bytes for o in good) / MIB / took, 1) if took else 0.0,
        "p50_ms": _percentile(ms, 0.5),
        "p90_ms": _percentile(ms, 0.9),
        "p99_ms": _percentile(ms, 0.99),
        "api_p50_ms": _percentile(api_ms, 0.5) if api_ms else None,
        "bad": len(bad),
        "first_bad": bad[0] if bad else "",
        "cpu_ms_per_request": round(server_cpu * 1000 / count, 2) if count else 0.0,
        "client_cpu_ms_per_request": round(client_cpu * 1000 / count, 2) if count else 0.0,
        "peak_rss_mb": servers.peak_rss_mb(api, began),
        "load_average": load_average,
    }
    return row, outcomes


def _own_cpu_seconds() -> float:
    times = psutil.Process().cpu_times()
    return float(times.user + times.system)


# --- upload-trickle ----------------------------------------------------------------------


async def _trickling(url: str, load: Load, n: int, max_bytes: int, until: float) -> str:
    """One upload declaring `max_bytes` of file, sent TRICKLE_PIECE bytes at a time until
    `until`, then cut (the connection closed): "" if no answer came meanwhile, else the
    answer's status line (a refusal, say)."""
    headers, task = load.pair(n)
    address = httpx.URL(url)
    boundary = os.urandom(8).hex()
    part = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="slow.bin"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    head = (
        f"POST /api/tasks/{task}/attachments HTTP/1.1\r\nHost: {address.host}\r\n"
        f"Authorization: {headers['Authorization']}\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
        f"Content-Length: {len(part) + max_bytes + len(tail)}\r\n\r\n"
    ).encode()
    reader, writer = await asyncio.open_connection(address.host, address.port)
    answer = asyncio.ensure_future(reader.readline())
    try:
        writer.write(head + part)
        while time.monotonic() < until and not answer.done():
            writer.write(os.urandom(TRICKLE_PIECE))
            await writer.drain()
            await asyncio.wait([answer], timeout=TRICKLE_INTERVAL)
        return answer.result().decode(errors="replace").strip() if answer.done() else ""
    finally:
        answer.cancel()
        writer.close()


async def _read_task(client: httpx.AsyncClient, load: Load, n: int) -> Outcome:
    headers, task = load.pair(n)
    began = time.perf_counter()
    answer = await client.get(f"/api/tasks/{task}", headers=headers)
    ms = (time.perf_counter() - began) * 1000
    if answer.status_code != 200:
        return Outcome(f"GET: {answer.status_code} {answer.text[:200]}", ms=ms)
    return Outcome(ms=ms)


async def _gets_beside_trickles(
    url: str, load: Load, max_bytes: int, seconds: float, uploads: int
) -> tuple[Timed, list[str]]:
    """The GET load for `seconds`, beside `uploads` trickling uploads begun half a second
    before it (none: the baseline); the GETs' outcomes and the uploads' early answers."""
    until = time.monotonic() + seconds + 0.5
    trickles = [
        asyncio.ensure_future(_trickling(url, load, n, max_bytes, until)) for n in range(uploads)
    ]
    if trickles:
        await asyncio.sleep(0.5)

    async def read(api: httpx.AsyncClient, _: httpx.AsyncClient, n: int) -> Outcome:
        return await _read_task(api, load, n)

    timed = await _timed(url, GET_CONNECTIONS, seconds, read)
    answers = [answer for answer in await asyncio.gather(*trickles) if answer]
    return timed, answers


def trickle(
    api: servers.Server, load: Load, max_bytes: int, seconds: float, say: Callable[[str], None]
) -> dict[str, Any]:
    """GET p50/p99 with no upload, then beside TRICKLE_UPLOADS trickling uploads."""
    runs: dict[str, Any] = {}
    failures: list[str] = []
    for name, uploads in (("alone", 0), ("beside uploads", TRICKLE_UPLOADS)):
        cpu = api.cpu_seconds()
        (outcomes, took), answered = asyncio.run(
            _gets_beside_trickles(api.url, load, max_bytes, seconds, uploads)
        )
        good = [o.ms for o in outcomes if not o.bad]
        bad = [o.bad for o in outcomes if o.bad]
        if bad:
            failures.append(f"{TRICKLE_SCENARIO} {name}: {len(bad)} bad GETs; first: {bad[0]}")
        if answered:
            failures.append(
                f"{TRICKLE_SCENARIO}: {len(answered)} trickling uploads answered before "
                f"the client cut them; first: {answered[0]}"
            )
        runs[name] = {
            "uploads": uploads,
            "requests": len(outcomes),
            "rps": round(len(good) / took, 1) if took else 0.0,
            "p50_ms": _percentile(good, 0.5),
            "p99_ms": _percentile(good, 0.99),
            "cpu_ms_per_request": round((api.cpu_seconds() - cpu) * 1000 / len(outcomes), 2)
            if outcomes
            else 0.0,
            "uploads_answered_early": len(answered),
        }
        say(
            f"  {TRICKLE_SCENARIO} GET {name:<14} {runs[name]['rps']:>7,.1f} req/s  "
            f"p50 {runs[name]['p50_ms']:6.1f} ms  p99 {runs[name]['p99_ms']:6.1f} ms  "
            f"({uploads} uploads at {TRICKLE_PIECE / TRICKLE_INTERVAL / 1024:g} KiB/s)"
        )
    alone, beside = runs["alone"]["p99_ms"], runs["beside uploads"]["p99_ms"]
    ratio = round(beside / alone, 2) if alone else None
    return {
        **runs,
        "seconds": seconds,
        "get_connections": GET_CONNECTIONS,
        "upload_bytes_per_second": TRICKLE_PIECE / TRICKLE_INTERVAL,
        "declared_bytes": max_bytes,
        "p99_ratio": ratio,
        "met": ratio is not None and ratio <= TRICKLE_TARGET_RATIO and not failures,
        "failures": failures,
    }


# --- the report --------------------------------------------------------------------------


def targets(found: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Issue 63's memory target per backend, for the report's targets table."""
    out: list[dict[str, Any]] = []
    for backend, result in ((found or {}).get("backends") or {}).items():
        slow = result.get("trickle")
        if slow:
            out.append(
                {
                    "target": f"GET p99 beside {TRICKLE_UPLOADS} uploads of the maximum size "
                    f"trickling at {slow['upload_bytes_per_second'] / 1024:g} KiB/s within "
                    f"{TRICKLE_TARGET_RATIO:g}x of the same GETs alone, {backend} (issue 71)",
                    "measured": f"{slow['beside uploads']['p99_ms']} ms against "
                    f"{slow['alone']['p99_ms']} ms ({slow['p99_ratio']}x)",
                    "met": slow["met"],
                }
            )
        rss = result.get("rss")
        if not rss:
            continue
        out.append(
            {
                "target": f"{CONCURRENT_UPLOADS} concurrent uploads of the maximum size "
                f"({rss['max_file_bytes'] / MIB:g} MiB) raise the worker's RSS by < "
                f"{RSS_TARGET_MIB} MiB, {backend} (issue 63)",
                "measured": f"+{rss['rise_mib']} MiB (from {rss['before_rss_mib']} MiB; "
                f"highest of {len(rss['rounds'])} rounds)",
                "met": rss["met"],
            }
        )
    return out


def markdown_lines(found: dict[str, Any] | None) -> list[str]:
    """The report's section for issue 63's scenarios (nothing when they did not run)."""
    if not found:
        return []
    lines = [
        "",
        "## Attachments (issues 63, 71)",
        "",
        f"{found['note']}. One API worker per storage backend; load from "
        f"{found['load_generator']}. Every upload answered 201 with the size and SHA-256 "
        "of the bytes sent; every download gave the file's length.",
    ]
    for backend, result in found["backends"].items():
        if "skipped" in result:
            lines += ["", f"{backend}: skipped, {result['skipped']}."]
            continue
        rss = result.get("rss")
        if rss:
            per_round = ", ".join(
                f"{r['peak_mib']} MiB ({r['rise_mib']:+} MiB, {r['seconds']} s)"
                for r in rss["rounds"]
            )
            lines += [
                "",
                f"{backend}, `upload-rss`: {found['concurrent_uploads']} concurrent uploads of "
                f"{rss['max_file_bytes']:,} bytes (the per-file maximum), "
                f"{len(rss['rounds'])} rounds. Worker RSS {rss['cold_rss_mib']} MiB after "
                f"start, {rss['before_rss_mib']} MiB after the validation's 1 MiB upload and "
                "download, "
                f"peak per round ({rss['rounds'][0]['peak_from']}): {per_round}; "
                f"{rss['after_rss_mib']} MiB after. Rise {rss['rise_mib']:+} MiB against the "
                f"{RSS_TARGET_MIB} MiB target: {'met' if rss['met'] else 'NOT met'}.",
            ]
    for backend, result in found["backends"].items():
        slow = result.get("trickle")
        if slow:
            lines += [
                "",
                f"{backend}, `upload-trickle` (issue 71): {slow['get_connections']} loops of "
                f"`GET /api/tasks/{{id}}` for {slow['seconds']} s alone, then beside "
                f"{TRICKLE_UPLOADS} uploads declaring {slow['declared_bytes']:,} bytes sent at "
                f"{slow['upload_bytes_per_second'] / 1024:g} KiB/s each and cut by the client "
                f"at the end. GET p50 / p99: {slow['alone']['p50_ms']} / "
                f"{slow['alone']['p99_ms']} ms alone, {slow['beside uploads']['p50_ms']} / "
                f"{slow['beside uploads']['p99_ms']} ms beside the uploads "
                f"({slow['p99_ratio']}x; target {TRICKLE_TARGET_RATIO:g}x: "
                f"{'met' if slow['met'] else 'NOT met'}); "
                f"{slow['alone']['rps']:,} and {slow['beside uploads']['rps']:,} GET/s.",
            ]
    rows = [row for result in found["backends"].values() for row in result.get("throughput", [])]
    if rows:
        lines += [
            "",
            f"`attachment-throughput`: 1 MiB files, {found['seconds']} s per run. A download "
            "on the filesystem is the API streaming the bytes; on S3 the API's 302 and the GET "
            "of the presigned URL from radosgw, timed together (the API's 302 alone: `API "
            "p50`). CPU ms/req is the API worker's; client CPU the load generator's, on the "
            "same cores.",
            "",
            "| backend | direction | conns | req/s | MiB/s | p50 / p90 / p99 ms | API p50 ms | "
            "CPU ms/req | client CPU ms/req | RSS MB | load |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for row in rows:
            api = row["api_p50_ms"] if row.get("followed_redirect") else "-"
            lines.append(
                f"| {row['backend']} | {row['direction']} | {row['connections']} | "
                f"{row['rps']:,} | {row['mib_per_s']:,} | {row['p50_ms']} / {row['p90_ms']} / "
                f"{row['p99_ms']} | {api} | {row['cpu_ms_per_request']} | "
                f"{row['client_cpu_ms_per_request']} | {row['peak_rss_mb']} | "
                f"{row['load_average']} |"
            )
    return lines
