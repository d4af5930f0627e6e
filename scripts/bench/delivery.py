"""The delivery engine under bad receivers, and its webhook throughput beside an older engine
(issue 82): `python -m scripts.bench.delivery latency|throughput`.

`latency`: one worker process (`python -m backend worker`, the default timeouts, attempts,
batch and poll) with two healthy webhook receivers, while `--changes` task changes (1,000) are
made over `--seconds` (20) and `--reminders` reminders of `--people` people (each with a push
subscription and a confirmed address: a push and an email each) fall due over the same span.
Three runs on the same database, each with a worker of its own: `healthy` (nothing else),
`bad-webhooks` (a receiver that accepts and never answers and one that trickles its answer, a
header byte every 0.1 s, both listed before the healthy ones) and `slow-push` (16 push
endpoints of another person that trickle theirs, beside the healthy peers). Reported: the
healthy receivers' delay per event (the receiver's clock at arrival less the change's
`occurred_at`) and the reminders' (arrival less the reminder's due time), p50/p99/max, those
not there within `--drain` seconds counted missing; each run's p99 beside the `healthy`
run's (the ratio: the machine is shared, and the same run's baseline is the yardstick).

`throughput`: `--events` task changes (5,000) queued at once, then a worker process started
and timed from the first to the last event at one webhook receiver that serves the worker's
32 delivery threads' 32 connections; the engine of this checkout and the one of `--before`
(a checkout of an earlier commit, `git worktree add /tmp/old-engine def9d76`, run from there
with PYTHONPATH pointing at it), turn by turn for `--rounds` rounds on the same database.
Reported per run: events a second and the worker's CPU per event; and the ratio of the
medians.

Peers on loopback in this process (scripts/bench/reminder_peers.py for push and SMTP): their
CPU is the machine's too. Figures are this machine's; compare runs of the same invocation.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import select
import socket
import tempfile
import threading
import time
from contextlib import ExitStack
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
from aiosmtpd.controller import Controller
from sqlalchemy import Engine, create_engine, text

from backend.auth.tokens import issue_token
from backend.config import Settings
from backend.db.engine import normalize_url
from backend.keys import new_vapid_key, vapid_public_key
from scripts.bench import seed, servers
from scripts.bench.reminder_peers import Browser, Inbox, PushReceiver
from scripts.bench.reminders import _bearer, _cpu, _env, _epoch, _quantiles, _set_up, _worker

DATABASE = "task_api_bench_delivery"
SECRET = "whsec_" + "YmVuY2gtc2VjcmV0LWJlbmNoLXNlY3JldC1iZW5jaA=="
SLOW_ENDPOINTS = 16


class Hooks:
    """Healthy webhook receivers: each POST recorded (path, webhook-id, arrival), 204 at once;
    keep-alive, a thread per connection."""

    def __init__(self) -> None:
        self.got: list[tuple[str, str, float]] = []
        self.lock = threading.Lock()
        hooks = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length", 0)))
                at = time.time()
                with hooks.lock:
                    hooks.got.append((self.path, self.headers.get("webhook-id", ""), at))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.request_queue_size = 128
        self.origin = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _open(sock: socket.socket) -> bool:
    readable, _, _ = select.select([sock], [], [], 0)
    if not readable:
        return True
    try:
        return sock.recv(1, socket.MSG_PEEK) != b""
    except OSError:
        return False


class Bad:
    """`stall`: accepts, reads, never answers; `trickle`: answers a header byte every 0.1 s;
    both until the sender hangs up. Counts the requests."""

    def __init__(self, kind: str) -> None:
        self.requests = 0
        bad = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length", 0)))
                bad.requests += 1
                try:
                    if kind == "trickle":
                        self.wfile.write(b"HTTP/1.1 200 OK\r\nx-slow: ")
                    while _open(self.connection):
                        time.sleep(0.1)
                        if kind == "trickle":
                            self.wfile.write(b"z")
                            self.wfile.flush()
                except OSError:
                    pass
                self.close_connection = True

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.origin = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _settle(engine: Engine) -> None:
    """What an earlier run left pending is out of the next one's way, and its worker's sinks
    too: a run's events would wait for the last run's registered webhooks (specs/events.md,
    "Workers and their sinks"), which no worker of this run has."""
    with engine.begin() as conn:
        conn.execute(text("UPDATE task_events SET state = 'delivered' WHERE state = 'pending'"))
        conn.execute(text("DELETE FROM reminder_deliveries WHERE state = 'pending'"))
        conn.execute(text("DELETE FROM event_sinks"))


def _owner(engine: Engine) -> str:
    with engine.connect() as conn:
        return str(conn.execute(text("SELECT id FROM users ORDER BY id LIMIT 1")).scalar_one())


_INSERT = text(
    "INSERT INTO tasks (user_id, title) SELECT :u, 'change ' || n FROM generate_series(1, :c) n"
)
_CHANGES = text(
    "SELECT event_id::text, occurred_at FROM task_events WHERE id > :after AND type <> 'reminder'"
)


def _last_event(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT coalesce(max(id), 0) FROM task_events")).scalar_one())


def _change(engine: Engine, owner: str, count: int, seconds: float) -> None:
    """`count` new tasks (a `created` event each) in 50 steps over `seconds`."""
    steps = 50
    began = time.monotonic()
    for step in range(steps):
        with engine.begin() as conn:
            share = count // steps + (1 if step < count % steps else 0)
            conn.execute(_INSERT, {"u": owner, "c": share})
        time.sleep(max(0.0, began + (step + 1) * seconds / steps - time.monotonic()))


_SCHEDULE = text(
    """
UPDATE task_reminders AS r
SET remind_at = to_timestamp(:t0) + (s.n - 1) * make_interval(secs => :step)
FROM (
    SELECT r.id, row_number() OVER (ORDER BY r.id) AS n
    FROM task_reminders r JOIN tasks t ON t.id = r.task_id
    WHERE r.fired_at IS NULL AND (t.title LIKE 'Slow %') = :slow
    ORDER BY r.id LIMIT :count
) AS s
WHERE r.id = s.id
"""
)
_REMINDERS = text(
    "SELECT event_id::text AS event_id, task->>'remind_at' AS remind_at FROM task_events "
    "WHERE type = 'reminder' AND id > :after AND task->>'title' NOT LIKE 'Slow %'"
)


def _latency_run(
    name: str,
    args: argparse.Namespace,
    engine: Engine,
    url: str,
    secret: str,
    env: dict[str, str],
    peers: tuple[Hooks, PushReceiver, Inbox, Bad, Bad, Bad],
    log_dir: Path,
) -> dict[str, Any]:
    hooks, receiver, inbox, stall, trickle, slow = peers
    healthy = [f"{hooks.origin}/a", f"{hooks.origin}/b"]
    bad = [f"{stall.origin}/stall", f"{trickle.origin}/trickle"] if name == "bad-webhooks" else []
    targets = [{"url": u, "secret": SECRET} for u in bad + healthy]
    _settle(engine)
    owner = _owner(engine)
    after = _last_event(engine)
    for peer in (hooks.got, receiver.received, inbox.messages, inbox.arrived):
        peer.clear()
    requests_before = (stall.requests, trickle.requests, slow.requests)
    load_before = os.getloadavg()
    with _worker(
        url,
        secret,
        {**env, "EVENT_WEBHOOKS": json.dumps(targets)},
        log_dir / f"worker-{name}.log",
    ) as pid:
        cpu_before = _cpu(pid)
        t0 = time.time() + 1
        with engine.begin() as conn:
            step = args.seconds / max(1, args.reminders)
            conn.execute(
                _SCHEDULE, {"t0": t0, "step": step, "count": args.reminders, "slow": False}
            )
            if name == "slow-push":  # the slow person's reminders, due over the same span
                conn.execute(
                    _SCHEDULE,
                    {"t0": t0, "step": args.seconds / 10, "count": 10, "slow": True},
                )
        time.sleep(max(0.0, t0 - time.time()))
        _change(engine, owner, args.changes, args.seconds)
        deadline = time.time() + args.drain
        # The run's own changes: another event (a reminder's schedule) must not end it early.
        with engine.connect() as conn:
            changed = {e for e, _ in conn.execute(_CHANGES, {"after": after})}
        while time.time() < deadline:
            with hooks.lock:
                arrived = len({(p, e) for p, e, _ in hooks.got if e in changed})
            mailed = len(receiver.received) + len(inbox.messages)
            if arrived >= 2 * args.changes and mailed >= 2 * args.reminders:
                break
            time.sleep(0.2)
        cpu = _cpu(pid) - cpu_before
    with engine.connect() as conn:
        occurred = {e: at.timestamp() for e, at in conn.execute(_CHANGES, {"after": after})}
        due = {r.event_id: _epoch(r.remind_at) for r in conn.execute(_REMINDERS, {"after": after})}
    with hooks.lock:
        got = list(hooks.got)
    webhook = [at - occurred[e] for path, e, at in got if e in occurred and path in ("/a", "/b")]
    reached = {(p, e) for p, e, _ in got if e in occurred}
    pushes = [(r.payload["event_id"], r.at) for r in receiver.received]
    emails = [
        (str(m["Message-ID"]).split("reminder-", 1)[1].split("@", 1)[0], at)
        for m, at in zip(inbox.messages, inbox.arrived, strict=True)
    ]
    reminder = [at - due[e] for e, at in pushes + emails if e in due]
    return {
        "run": name,
        "changes": len(occurred),
        "webhook": _quantiles(webhook),
        "webhook_missing": 2 * len(occurred) - len(reached),
        "reminders_due": len(due),
        "reminder": _quantiles(reminder),
        "reminder_missing": 2 * len(due)
        - len({e for e, _ in pushes} & due.keys())
        - len({e for e, _ in emails} & due.keys()),
        "bad_requests": [
            n - b
            for n, b in zip(
                (stall.requests, trickle.requests, slow.requests), requests_before, strict=True
            )
        ],
        "worker_cpu_seconds": round(cpu, 2),
        "load_average_1m": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
    }


def latency(args: argparse.Namespace) -> dict[str, Any]:
    url = seed.fresh_database(seed.server_url(), args.database)
    secret = secrets.token_urlsafe(48)
    issuing = Settings(environment="test", jwt_secret=secret)
    tokens = [
        issue_token(f"person-{n}", issuing, local=False, expires_in=24 * 3600)
        for n in range(args.people)
    ]
    slow_token = issue_token("slow-person", issuing, local=False, expires_in=24 * 3600)
    vapid = new_vapid_key()
    log_dir = Path(tempfile.mkdtemp(prefix="bench-delivery-"))
    engine = create_engine(normalize_url(url))
    inbox = Inbox()
    smtp = Controller(inbox, hostname="127.0.0.1", port=servers.free_port())
    smtp.start()
    env = _env(vapid, smtp.port, {})
    runs = []
    try:
        with ExitStack() as stack:
            receiver = stack.enter_context(PushReceiver(vapid_public_key(vapid), {}))
            hooks, stall, trickle, slow = Hooks(), Bad("stall"), Bad("trickle"), Bad("trickle")
            for peer in (hooks, stall, trickle, slow):
                stack.callback(peer.close)
            api = stack.enter_context(
                servers.start(
                    "api",
                    workers=1,
                    database_url=url,
                    secret=secret,
                    log_dir=log_dir,
                    extra_env=env,
                )
            )
            # The peers' set-up needs a worker for the confirmations: one without webhooks.
            with _worker(url, secret, env, log_dir / "worker-set-up.log"):
                asyncio.run(
                    _set_up(api.url, tokens, receiver, inbox, args.reminders * len(args.runs))
                )
                _slow_person(api.url, slow_token, slow.origin)
            for name in args.runs:
                runs.append(
                    _latency_run(
                        name,
                        args,
                        engine,
                        url,
                        secret,
                        env,
                        (hooks, receiver, inbox, stall, trickle, slow),
                        log_dir,
                    )
                )
                print(json.dumps(runs[-1]), flush=True)
    finally:
        smtp.stop()
        engine.dispose()
    base = next((r for r in runs if r["run"] == "healthy"), None)
    for run in runs:
        if base and base["webhook"].get("p99_s"):
            run["webhook_p99_ratio"] = round(
                run["webhook"].get("p99_s", 0) / base["webhook"]["p99_s"], 2
            )
    return {"latency": runs, "log_dir": str(log_dir)}


def _slow_person(url: str, token: str, origin: str) -> None:
    """A person whose 16 push subscriptions trickle their answers, with 10 reminders."""
    with httpx.Client(base_url=url, timeout=60, headers=_bearer(token)) as client:
        client.get("/api/auth/me").raise_for_status()
        for n in range(SLOW_ENDPOINTS):
            made = client.post(
                "/api/push-subscriptions", json=Browser().subscription(f"{origin}/slow/{n}")
            )
            made.raise_for_status()
        due = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 86400))
        for n in range(10):
            body = {"title": f"Slow {n}", "due_date": due, "reminders": [{"at": due}]}
            client.post("/api/tasks", json=body).raise_for_status()


def _throughput_run(
    root: Path,
    label: str,
    args: argparse.Namespace,
    engine: Engine,
    url: str,
    secret: str,
    hooks: Hooks,
    log: Path,
) -> dict[str, Any]:
    _settle(engine)
    after = _last_event(engine)
    with engine.begin() as conn:
        conn.execute(_INSERT, {"u": _owner(engine), "c": args.events})
    with engine.connect() as conn:
        wanted = {e for e, _ in conn.execute(_CHANGES, {"after": after})}
    with hooks.lock:
        hooks.got.clear()
    env = {
        "ENVIRONMENT": "test",
        "LOG_FORMAT": "json",
        "WORKER_METRICS_PORT": "0",
        "EVENT_WEBHOOKS": json.dumps([{"url": f"{hooks.origin}/t", "secret": SECRET}]),
    }
    load_before = os.getloadavg()
    with _worker(url, secret, env, log, root) as pid:
        cpu_before = _cpu(pid)
        deadline = time.time() + args.drain
        while time.time() < deadline:
            with hooks.lock:
                if len({e for _, e, _ in hooks.got} & wanted) >= len(wanted):
                    break
            time.sleep(0.1)
        cpu = _cpu(pid) - cpu_before
    with hooks.lock:
        times = sorted(at for _, e, at in hooks.got if e in wanted)
        ids = [e for _, e, _ in hooks.got if e in wanted]
    span = times[-1] - times[0] if len(times) > 1 else 0.0
    return {
        "engine": label,
        "events": len(wanted),
        "received": len(times),
        "repeated": len(ids) - len(set(ids)),
        "seconds_first_to_last": round(span, 2),
        "events_per_s": round(len(set(ids)) / span, 1) if span else None,
        "worker_cpu_ms_per_event": round(cpu * 1000 / max(1, len(set(ids))), 3),
        "load_average_1m": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
    }


def throughput(args: argparse.Namespace) -> dict[str, Any]:
    url = seed.fresh_database(seed.server_url(), args.database)
    secret = secrets.token_urlsafe(48)
    engine = create_engine(normalize_url(url))
    log_dir = Path(tempfile.mkdtemp(prefix="bench-delivery-"))
    with engine.begin() as conn:  # the owner of the changes
        conn.execute(text("INSERT INTO users (id, email) VALUES ('bench', 'bench@example.com')"))
    engines = [(servers.ROOT, "this checkout")]
    if args.before is not None:
        engines.append((args.before, f"before ({args.before})"))
    hooks = Hooks()
    runs = []
    try:
        for round_ in range(args.rounds):
            order = engines if round_ % 2 == 0 else engines[::-1]
            for root, label in order:
                log = log_dir / f"worker-{round_}-{len(runs)}.log"
                runs.append(_throughput_run(root, label, args, engine, url, secret, hooks, log))
                print(json.dumps(runs[-1]), flush=True)
    finally:
        hooks.close()
        engine.dispose()
    medians = {}
    for _, label in engines:
        rates = sorted(r["events_per_s"] or 0 for r in runs if r["engine"] == label)
        medians[label] = rates[len(rates) // 2]
    report: dict[str, Any] = {"throughput": runs, "median_events_per_s": medians}
    if len(medians) == 2:
        now, before = medians.values()
        report["ratio_to_before"] = round(now / before, 2) if before else None
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    lat = sub.add_parser("latency")
    lat.add_argument("--changes", type=int, default=1_000)
    lat.add_argument("--seconds", type=float, default=20)
    lat.add_argument("--reminders", type=int, default=200)
    lat.add_argument("--people", type=int, default=50)
    lat.add_argument("--drain", type=float, default=120)
    lat.add_argument(
        "--runs",
        nargs="+",
        default=["healthy", "bad-webhooks", "slow-push"],
        choices=["healthy", "bad-webhooks", "slow-push"],
    )
    thr = sub.add_parser("throughput")
    thr.add_argument("--events", type=int, default=5_000)
    thr.add_argument("--rounds", type=int, default=2)
    thr.add_argument("--drain", type=float, default=300)
    thr.add_argument("--before", type=Path, help="a checkout of the engine to compare with")
    for each in (lat, thr):
        each.add_argument("--database", default=DATABASE)
        each.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    report = latency(args) if args.command == "latency" else throughput(args)
    report["args"] = {k: str(v) for k, v in vars(args).items()}
    text_ = json.dumps(report, indent=2)
    (args.out or Path(f"bench-delivery-{args.command}.json")).write_text(text_)
    print(text_)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
