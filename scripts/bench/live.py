"""The live change stream's benchmark (issue 51): `python -m scripts.bench.live`.

One API worker (`serve`, production settings), `--lists` shared lists of `--members` members
each, every member with a stream open (1,000 by default), the lists' owners writing `--rate`
changes a second (a create in a random list). Reported, beside the same run with no stream:

- the delay from a write's answer (as its writer read it) to each member's event, p50/p99;
- the worker's memory per open stream (its RSS with the streams, less without, per stream);
- the CPU seconds of the worker and of PostgreSQL per second of the run;
- through a proxy adding `--rtt-ms` to every database round trip: a single writer's p50 and
  the writes a second of `--connections` concurrent writers, with and without the streams;
- the most lock waits seen in `pg_locks` (sampled every 50 ms), and whether any was the
  commit-time lock a `NOTIFY` takes (an object lock on database 0): the write path must add none.

The streams are held by `--client-processes` processes; `--workers` API processes share the
port (the kernel splits the streams between them); `--before REF` serves the code of REF (an
export) to the same client, for a before/after in the same conditions. Per delivered event:
the worker's and PostgreSQL's CPU while the owners write, less the run's without streams.

The client (this process: the streams, the writers) shares the machine with the server:
figures are this machine's, loaded as it is. Writes JSON to `--out` and prints a summary.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import random
import secrets
import statistics
import tempfile
import threading
import time
from collections.abc import Awaitable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import httpx
from sqlalchemy import create_engine, text

from backend.auth.tokens import issue_token
from backend.config import Settings
from backend.db.engine import normalize_url
from scripts.bench import seed, servers
from scripts.bench.dbproxy import DbProxy

DATABASE = "task_api_bench_live"
T = TypeVar("T")
# Lock waits a NOTIFY's commit would show: the object lock on database 0 (pg_database).
_LOCKS = text(
    "SELECT count(*) FILTER (WHERE NOT granted), "
    "count(*) FILTER (WHERE NOT granted AND locktype = 'object' AND objid = 0 "
    "AND classid = 'pg_database'::regclass) FROM pg_locks"
)


class Locks:
    """Samples `pg_locks` every 50 ms while running: the most waits seen at once."""

    def __init__(self, url: str) -> None:
        self._engine = create_engine(normalize_url(url))
        self.most = self.notify = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with self._engine.connect() as conn:
            while not self._stop.wait(0.05):
                waiting, notify = conn.execute(_LOCKS).one()
                conn.rollback()
                self.most, self.notify = max(self.most, waiting), max(self.notify, notify)

    def __enter__(self) -> Locks:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self._engine.dispose()


class Streams:
    """`count` open streams, spread over `processes` client processes (each one asyncio loop
    on raw sockets), recording when each event came: `time.monotonic()` taken where the
    process reads the event's line, comparable with the writers' (one machine's clock, the
    same in every process). One process for 1,000 streams and the writers was its own
    bottleneck: an event waited for the loop behind the writers' HTTP client."""

    def __init__(self, url: str, tokens: list[str], processes: int = 4) -> None:
        self.url = url
        self.tokens = tokens
        self.processes = max(1, min(processes, len(tokens)))
        self.received: list[tuple[str, float]] = []
        self.opened = 0
        self._children: list[tuple[Any, Any]] = []

    async def open(self) -> None:
        context = multiprocessing.get_context("spawn")
        for n in range(self.processes):
            ours, theirs = context.Pipe()
            share = self.tokens[n :: self.processes]
            child = context.Process(target=_stream_process, args=(self.url, share, theirs))
            child.start()
            self._children.append((child, ours))
        for _, pipe in self._children:  # each says how many it opened, or why it failed
            answer = await asyncio.to_thread(pipe.recv)
            if isinstance(answer, str):
                raise RuntimeError(answer)
            self.opened += answer

    def count(self) -> int:
        """Events received so far, in every process."""
        total = 0
        for _, pipe in self._children:
            pipe.send("count")
            total += pipe.recv()
        return total

    def wait_for(self, expected: int, seconds: float) -> None:
        """Until `expected` events came, or `seconds` passed (those late are counted short)."""
        deadline = time.monotonic() + seconds
        while self.count() < expected and time.monotonic() < deadline:
            time.sleep(0.2)

    def close(self) -> None:
        for _, pipe in self._children:
            pipe.send("stop")
        for child, pipe in self._children:
            self.received.extend(pipe.recv())
            child.join()
        self._children = []


def _stream_process(url: str, tokens: list[str], pipe: Any) -> None:
    """A client process: opens its streams, reports how many, reads until told to stop,
    then sends back every (title, time read)."""
    received: list[tuple[str, float]] = []
    host, port = url.removeprefix("http://").split(":")

    async def follow(token: str, ready: asyncio.Semaphore, opened: list[int]) -> None:
        async with ready:
            reader, writer = await asyncio.open_connection(host, int(port), limit=1 << 20)
            writer.write(
                f"GET /api/changes/stream HTTP/1.1\r\nHost: {host}\r\n"
                f"Authorization: Bearer {token}\r\n\r\n".encode()
            )
            status = await reader.readline()
            if b" 200 " not in status:
                raise RuntimeError(f"a stream was refused: {status!r}")
            while (await reader.readline()) not in (b"\r\n", b""):
                pass
            opened.append(1)
        try:
            while line := await reader.readline():
                if line.startswith(b"data: "):
                    at = time.monotonic()
                    received.append((json.loads(line[6:])["task"]["title"], at))
        finally:
            writer.close()

    async def run() -> None:
        ready = asyncio.Semaphore(64)  # connects at once
        opened: list[int] = []
        tasks = [asyncio.create_task(follow(t, ready, opened)) for t in tokens]
        while len(opened) < len(tokens):
            for task in tasks:
                if task.done():
                    task.result()  # a failed open raises here
            await asyncio.sleep(0.05)
        pipe.send(len(opened))
        while await asyncio.to_thread(pipe.recv) == "count":
            pipe.send(len(received))
        for task in tasks:
            task.cancel()

    try:
        asyncio.run(run())
    except Exception as error:  # reported to the parent, which raises it
        pipe.send(f"a client process failed: {error!r}")
        return
    pipe.send(received)


async def _writes(
    url: str, owners: list[tuple[str, int]], rate: float, seconds: float, tag: str
) -> dict[str, float]:
    """`rate` creates a second for `seconds`, each by a random owner in its list: when each
    answer was read, by title."""
    answered: dict[str, float] = {}
    # Idle connections dropped before the server's keep-alive timeout (5 s) can close one
    # under a request.
    limits = httpx.Limits(max_connections=64, keepalive_expiry=1)
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as client:

        async def write(n: int) -> None:
            token, list_id = random.choice(owners)  # noqa: S311 (a load, not a secret)
            title = f"{tag}-{n}"
            made = await client.post(
                "/api/tasks",
                json={"title": title, "list_id": list_id},
                headers={"Authorization": f"Bearer {token}"},
            )
            if made.status_code != 201:
                raise RuntimeError(f"a write failed: {made.status_code} {made.text}")
            answered[title] = time.monotonic()

        started = time.monotonic()
        pending = []
        for n in range(int(rate * seconds)):
            await asyncio.sleep(max(0.0, started + n / rate - time.monotonic()))
            pending.append(asyncio.create_task(write(n)))
        await asyncio.gather(*pending)
    return answered


async def _probing(url: str, work: Awaitable[T]) -> tuple[T, list[float]]:
    """`work`'s result, and the time (s) of each `GET /health` sent 5 times a second
    while it ran."""
    times: list[float] = []
    task = asyncio.ensure_future(work)
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        while not task.done():
            began = time.monotonic()
            await client.get("/health")
            times.append(time.monotonic() - began)
            await asyncio.sleep(0.2)
    return await task, times


async def _write_latency(url: str, token: str, count: int) -> float:
    """A single writer's median write time (ms), one write after another."""
    times = []
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        headers = {"Authorization": f"Bearer {token}"}
        for n in range(count):
            began = time.perf_counter()
            made = await client.post("/api/tasks", json={"title": f"p50-{n}"}, headers=headers)
            times.append((time.perf_counter() - began) * 1000)
            if made.status_code != 201:
                raise RuntimeError(made.text)
    return statistics.median(times[5:])


async def _throughput(url: str, tokens: list[str], connections: int, seconds: float) -> float:
    """Writes a second of `connections` writers, each writing as fast as answered."""
    done = 0
    ends = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=connections, keepalive_expiry=1)
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as client:

        async def writer(n: int) -> None:
            nonlocal done
            headers = {"Authorization": f"Bearer {tokens[n % len(tokens)]}"}
            while time.monotonic() < ends:
                made = await client.post("/api/tasks", json={"title": "tp"}, headers=headers)
                if made.status_code == 201:
                    done += 1

        await asyncio.gather(*(writer(n) for n in range(connections)))
    return done / seconds


def _quantiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {"count": 0}
    ordered = sorted(values)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
    return {"count": len(values), "p50_ms": pick(0.5) * 1000, "p99_ms": pick(0.99) * 1000}


@contextmanager
def _api(
    url: str,
    secret: str,
    log_dir: Path,
    settings: dict[str, str],
    workers: int = 1,
    code: Path | None = None,
) -> Iterator[servers.Server]:
    """The API (`workers` processes on one port: the kernel splits the streams between them),
    from `code` (an export of `--before REF`) or this tree."""
    extra = {
        "HTTP_MAX_CONNECTIONS": "10000",
        "STREAM_MAX_PER_WORKER": "10000",
        "WEB_CONCURRENCY": str(workers),
        **settings,
    }
    with servers.start(
        "before" if code is not None else "api",
        workers=workers,
        database_url=url,
        secret=secret,
        log_dir=log_dir,
        code=code if code is not None else servers.ROOT,
        extra_env=extra,
    ) as api:
        yield api


async def _setup(url: str, owners: list[str], members: list[list[str]]) -> list[int]:
    """Every account provisioned (its first request), a list per owner: the lists' ids."""
    sem = asyncio.Semaphore(32)
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:

        async def me(token: str) -> None:
            async with sem:
                if not (await client.get("/api/auth/me", headers=_bearer(token))).is_success:
                    raise RuntimeError("an account could not be provisioned")

        await asyncio.gather(*(me(t) for group in members for t in group))
        lists = []
        for n, token in enumerate(owners):
            made = await client.post(
                "/api/lists", json={"name": f"Shared {n}"}, headers=_bearer(token)
            )
            lists.append(int(made.json()["data"]["id"]))
    return lists


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _rss(api: servers.Server) -> int:
    return sum(api.rss().values())


def _phase(
    api: servers.Server, pg: servers.PostgresCpu, url: str, run: Any
) -> tuple[Any, dict[str, Any]]:
    cpu, pg_cpu, began = api.cpu_seconds(), pg.cpu_seconds(), time.monotonic()
    load_before = os.getloadavg()[0]
    result = asyncio.run(run())
    elapsed = time.monotonic() - began
    after = pg.cpu_seconds()
    return result, {
        # The machine's 1-minute load average before and after (2 cores, shared).
        "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "seconds": elapsed,
        "worker_cpu_per_s": (api.cpu_seconds() - cpu) / elapsed,
        "postgres_cpu_per_s": None
        if after is None or pg_cpu is None
        else (after - pg_cpu) / elapsed,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lists", type=int, default=100)
    parser.add_argument("--members", type=int, default=10)
    parser.add_argument("--rate", type=float, default=50, help="changes a second")
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--rtt-ms", type=float, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument(
        "--client-processes", type=int, default=4, help="processes holding the streams"
    )
    parser.add_argument(
        "--skip-write-path", action="store_true", help="no runs through the RTT proxy"
    )
    parser.add_argument(
        "--workers", type=int, default=1, help="API worker processes (the streams split)"
    )
    parser.add_argument(
        "--before", metavar="REF", help="serve the API's code at REF (an export), same client"
    )
    parser.add_argument("--out", type=Path, default=Path("bench-live.json"))
    parser.add_argument(
        "--set", action="append", default=[], metavar="NAME=VALUE", help="a server setting"
    )
    args = parser.parse_args(argv)

    url = seed.fresh_database(seed.server_url(), DATABASE)
    secret = secrets.token_urlsafe(48)
    settings = Settings(environment="test", jwt_secret=secret)
    token = lambda user: issue_token(user, settings, local=False, expires_in=24 * 3600)  # noqa: E731
    owner_ids = [f"owner-{n}" for n in range(args.lists)]
    member_ids = [[f"member-{n}-{m}" for m in range(args.members)] for n in range(args.lists)]
    owners = [token(u) for u in owner_ids]
    members = [[token(u) for u in group] for group in member_ids]
    log_dir = Path(tempfile.mkdtemp(prefix="bench-live-"))
    pg = servers.PostgresCpu.for_url(url)
    report: dict[str, Any] = {"args": {k: str(v) for k, v in vars(args).items()}}
    engine = create_engine(normalize_url(url))

    chosen = dict(item.split("=", 1) for item in args.set)
    code = None
    if args.before:
        commit = servers.resolve_ref(args.before)
        report["code"] = commit
        code = servers.export_before(commit, log_dir)
    with _api(url, secret, log_dir, chosen, args.workers, code) as api:
        lists = asyncio.run(_setup(api.url, owners, members))
        with engine.begin() as conn:
            for owner, list_id, group in zip(owner_ids, lists, member_ids, strict=True):
                for member in group:
                    conn.execute(
                        text(
                            "INSERT INTO list_members (user_id, list_id, member_id, role) "
                            "VALUES (:o, :l, :m, 'editor')"
                        ),
                        {"o": owner, "l": list_id, "m": member},
                    )
        writers = list(zip(owners, lists, strict=True))
        # Without streams.
        with Locks(url) as locks:
            _, cost = _phase(
                api, pg, url, lambda: _writes(api.url, writers, args.rate, args.seconds, "none")
            )
        report["no_streams"] = {**cost, "lock_waits_max": locks.most, "notify_waits": locks.notify}
        time.sleep(1)
        rss_before = _rss(api)
        tokens = [t for group in members for t in group]

        async def with_streams() -> tuple[
            tuple[dict[str, float], list[float]], Streams, int, dict[str, Any]
        ]:
            streams = Streams(api.url, tokens, args.client_processes)
            await streams.open()
            await asyncio.sleep(2)
            rss = _rss(api)
            cpu, pg_cpu, began = api.cpu_seconds(), pg.cpu_seconds(), time.monotonic()
            answered, probe = await _probing(
                api.url, _writes(api.url, writers, args.rate, args.seconds, "live")
            )
            # The last events' way: every one awaited (a late one counts in the delays).
            await asyncio.to_thread(streams.wait_for, len(answered) * args.members, 60)
            elapsed, pg_after = time.monotonic() - began, pg.cpu_seconds()
            window = {
                "seconds": elapsed,
                "worker_cpu_per_s": (api.cpu_seconds() - cpu) / elapsed,
                "postgres_cpu_per_s": None
                if pg_after is None or pg_cpu is None
                else (pg_after - pg_cpu) / elapsed,
            }
            await asyncio.to_thread(streams.close)
            return (answered, probe), streams, rss, window

        with Locks(url) as locks:
            ((answered, probe), streams, rss_with, window), cost = _phase(
                api, pg, url, with_streams
            )
        delays = [at - answered[t] for t, at in streams.received if t in answered]
        expected = len(answered) * args.members
        report["streams"] = {
            **cost,
            "open": streams.opened,
            "events": len(delays),
            "events_expected": expected,
            "delay": _quantiles(delays),
            # A control: the same worker's answer to a request that does nothing (GET
            # /health, 5 a second) during the run, from the writers' process: what the
            # machine's load alone adds to any round trip through the worker.
            "health_probe": _quantiles(probe),
            "rss_per_stream_kb": (rss_with - rss_before) / max(1, streams.opened) / 1024,
            # What the streams add, per delivered event: the CPU per second while the owners
            # wrote and the events came (the streams open), less the run's without streams,
            # times that window's length, per event.
            **{
                f"{name}_ms_per_event": None
                if window[key] is None or report["no_streams"][key] is None
                else (window[key] - report["no_streams"][key])
                * window["seconds"]
                / max(1, len(delays))
                * 1000
                for name, key in (
                    ("worker", "worker_cpu_per_s"),
                    ("postgres", "postgres_cpu_per_s"),
                )
            },
            "writing": window,
            "lock_waits_max": locks.most,
            "notify_waits": locks.notify,
        }

    if args.skip_write_path:
        engine.dispose()
        args.out.write_text(json.dumps(report, indent=2))
        print(json.dumps(report, indent=2))
        return 0
    # The write path at `--rtt-ms` per database round trip, with and without the streams.
    with (
        DbProxy.for_url(url, delay_ms=args.rtt_ms) as proxy,
        _api(proxy.url(url), secret, log_dir, chosen, args.workers, code) as api,
    ):
        write_path: dict[str, Any] = {}
        for label, streaming in (("none", False), ("streams", True)):

            async def measure(streaming: bool = streaming) -> dict[str, float]:
                streams = Streams(api.url, tokens, args.client_processes)
                if streaming:
                    await streams.open()
                    await asyncio.sleep(2)
                p50 = await _write_latency(api.url, owners[0], 105)
                rate = await _throughput(api.url, owners, args.connections, args.seconds / 2)
                if streaming:
                    await asyncio.to_thread(streams.close)
                return {"write_p50_ms": p50, "writes_per_s": rate}

            with Locks(url) as locks:
                result, _ = _phase(api, pg, url, measure)
            write_path[label] = {
                **result,
                "lock_waits_max": locks.most,
                "notify_waits": locks.notify,
            }
        write_path["p50_ratio"] = (
            write_path["streams"]["write_p50_ms"] / write_path["none"]["write_p50_ms"]
        )
        write_path["throughput_ratio"] = (
            write_path["streams"]["writes_per_s"] / write_path["none"]["writes_per_s"]
        )
        report["write_path_at_rtt"] = write_path
    engine.dispose()
    args.out.write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
