"""Reminders that reach a person, timed (issue 72): `python -m scripts.bench.reminders`.

`--reminders` reminders (10,000) due within `--window` seconds (60) for `--people` people
(1,000), each person with one Web Push subscription and a confirmed email address, delivered
by one worker process (`python -m backend worker`, the default poll and batch) to real peers
on loopback: an SMTP server (aiosmtpd) and a push service that checks each push's VAPID JWT
against the key the API publishes and decrypts its `aes128gcm` body with the subscription's
private key (scripts/bench/reminder_peers.py). The API (`serve`, one process) makes everything
the way a client would: the accounts, the subscriptions, the addresses (each confirmed by the
link its confirmation message carries) and the tasks with their reminders (a day ahead); then
one UPDATE moves the schedule (`task_reminders.remind_at`) to T0 + i * window / reminders,
T0 a few seconds ahead, so the worker, already running, meets them as they fall due.

Reported per delivery (a push or an email: two per reminder): its delay, the moment the peer
took it less its reminder's due time T (p50, p99, max; both clocks this machine's); every
reminder's delivery on each channel counted (missing, repeated); deliveries a second from T0
to the last delivery; the worker's CPU seconds (user + system, from /proc) per delivery over
the same span; the machine's load. Exit 1 when a delivery is missing or a push was refused.
The peers and this client share the machine with the worker: figures are this machine's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import psutil
from aiosmtpd.controller import Controller
from sqlalchemy import Engine, create_engine, text

from backend.auth.tokens import issue_token
from backend.config import Settings
from backend.db.engine import normalize_url
from backend.keys import new_vapid_key, vapid_public_key
from scripts.bench import seed, servers
from scripts.bench.reminder_peers import Browser, Inbox, PushReceiver

DATABASE = "task_api_bench_reminders"
SENDER = "Tasks <reminders@example.com>"
# Requests of the set-up in flight at once.
CONCURRENCY = 32
RETRIES = 3

_SCHEDULE = text(
    """
UPDATE task_reminders AS r
SET remind_at = to_timestamp(:t0) + (s.n - 1) * make_interval(secs => :step)
FROM (SELECT id, row_number() OVER (ORDER BY id) AS n FROM task_reminders) AS s
WHERE r.id = s.id AND r.fired_at IS NULL
"""
)
_EVENTS = text(
    "SELECT event_id::text AS event_id, task->>'remind_at' AS remind_at "
    "FROM task_events WHERE type = 'reminder'"
)
_LEFT = text("SELECT state, count(*) AS n FROM reminder_deliveries GROUP BY state ORDER BY state")


def _left(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {row.state: row.n for row in conn.execute(_LEFT)}


_OUTCOMES = text(
    "SELECT outcome, count(*) AS n FROM task_reminders WHERE fired_at IS NOT NULL "
    "GROUP BY outcome ORDER BY outcome"
)


def _env(vapid: str, smtp_port: int, extra: dict[str, str]) -> dict[str, str]:
    """The API's and the worker's settings: production's but for the environment, which
    must not be production for the one setting that lets a push go to loopback."""
    return {
        "ENVIRONMENT": "test",
        "LOG_FORMAT": "json",
        "VAPID_PRIVATE_KEY": vapid,
        "VAPID_SUBJECT": "mailto:bench@example.com",
        "PUSH_ALLOW_LOOPBACK": "true",
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(smtp_port),
        "SMTP_SECURITY": "none",
        "SMTP_FROM": SENDER,
        "WORKER_METRICS_PORT": "0",
        # One client (this process) opens every person's confirmation link: the per-client
        # bound on a mail's links (30 in the auth window) would refuse the 31st.
        "RATE_LIMIT_MAIL_LINKS_PER_IP": "0",
        **extra,
    }


@contextmanager
def _worker(
    database_url: str, secret: str, env: dict[str, str], log: Path, root: Path = servers.ROOT
) -> Iterator[int]:
    """One `python -m backend worker` process of the checkout at `root`, started and seen
    running: its pid."""
    full = {
        **os.environ,
        "DATABASE_URL": database_url,
        "JWT_SECRET": secret,
        "AUTO_MIGRATE": "false",
        "LOG_LEVEL": "INFO",
        "PYTHONPATH": str(root),
        **env,
    }
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "backend", "worker"],
            cwd=root,
            env=full,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 60
        while "worker started" not in log.read_text(errors="replace"):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the worker did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)
        yield process.pid
    finally:
        servers.stop(process)


def _cpu(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _set_up(
    url: str,
    tokens: list[str],
    receiver: PushReceiver,
    inbox: Inbox,
    reminders: int,
) -> None:
    """Each person: provisioned, subscribed (a browser of their own), an address set and
    confirmed by its link; then the reminders, spread over the people in turn."""
    sem = asyncio.Semaphore(CONCURRENCY)
    limits = httpx.Limits(max_connections=CONCURRENCY)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:

        async def call(
            method: str, path: str, token: str | None, key: str | None = None, **kw: Any
        ) -> Any:
            headers = _bearer(token) if token else {}
            if key is not None:  # a retried write is the same write
                headers["Idempotency-Key"] = key
            for attempt in range(RETRIES):
                try:
                    async with sem:
                        answer = await client.request(method, path, headers=headers, **kw)
                    break
                except httpx.TransportError:  # a kept-alive connection the server closed
                    if attempt == RETRIES - 1:
                        raise
            if not answer.is_success:
                raise RuntimeError(f"{method} {path}: {answer.status_code} {answer.text[:300]}")
            return answer.json() if answer.content else None

        async def person(n: int, token: str) -> None:
            await call("GET", "/api/auth/me", token)
            browser = Browser()
            receiver.browsers[f"/push/{n}"] = browser
            subscription = browser.subscription(receiver.endpoint(f"/push/{n}"))
            await call("POST", "/api/push-subscriptions", token, json=subscription)  # idempotent
            address = {"email_address": f"person-{n}@example.com"}
            await call("PATCH", "/api/notification-settings", token, json=address)

        await asyncio.gather(*(person(n, t) for n, t in enumerate(tokens)))
        deadline = time.monotonic() + 60
        while len(inbox.messages) < len(tokens):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{len(inbox.messages)} confirmations of {len(tokens)}")
            await asyncio.sleep(0.1)
        links = {}  # each address's last link (a retried PATCH sent a newer one)
        for message in inbox.messages:
            part = message.get_body(preferencelist=("plain",))
            words = str(part.get_content() if part else "").split()
            link = urlsplit(next(w for w in words if "/confirm?" in w))
            links[str(message["To"])] = f"{link.path}?{link.query}"
        await asyncio.gather(*(call("GET", link, None) for link in links.values()))
        for token in tokens:
            wants = (await call("GET", "/api/notification-settings", token))["data"]
            if not (wants["push"] and wants["email"] and wants["email_confirmed"]):
                raise RuntimeError(f"a person does not want both channels: {wants}")
        inbox.messages.clear()
        inbox.recipients.clear()
        inbox.arrived.clear()
        due = (datetime.now(UTC) + timedelta(days=1)).replace(microsecond=0).isoformat()

        async def task(i: int) -> None:
            body = {"title": f"Reminder {i}", "due_date": due, "reminders": [{"at": due}]}
            await call("POST", "/api/tasks", tokens[i % len(tokens)], f"bench-{i}", json=body)

        await asyncio.gather(*(task(i) for i in range(reminders)))


def _quantiles(values: list[float]) -> dict[str, float | int]:
    if not values:
        return {"count": 0}
    ordered = sorted(values)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
    return {
        "count": len(ordered),
        "p50_s": round(pick(0.5), 3),
        "p99_s": round(pick(0.99), 3),
        "max_s": round(ordered[-1], 3),
    }


def _epoch(instant: str) -> float:
    return datetime.fromisoformat(instant.replace("Z", "+00:00")).timestamp()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reminders", type=int, default=10_000)
    parser.add_argument("--people", type=int, default=1_000)
    parser.add_argument("--window", type=float, default=60, help="seconds the reminders span")
    parser.add_argument("--lead", type=float, default=5, help="seconds from the schedule to T0")
    parser.add_argument(
        "--drain", type=float, default=300, help="seconds past the window to wait at most"
    )
    parser.add_argument(
        "--worker-root",
        type=Path,
        help="time the worker of this checkout (an earlier commit's: `git worktree add`); the "
        "set-up's confirmations are sent by this checkout's worker, stopped before T0",
    )
    parser.add_argument("--database", default=DATABASE)
    parser.add_argument("--out", type=Path, default=Path("bench-reminders.json"))
    parser.add_argument(
        "--set", action="append", default=[], metavar="NAME=VALUE", help="a server setting"
    )
    args = parser.parse_args(argv)
    if args.people > args.reminders:
        parser.error("--people must not exceed --reminders")

    url = seed.fresh_database(seed.server_url(), args.database)
    secret = secrets.token_urlsafe(48)
    issuing = Settings(environment="test", jwt_secret=secret)
    tokens = [
        issue_token(f"person-{n}", issuing, local=False, expires_in=24 * 3600)
        for n in range(args.people)
    ]
    vapid = new_vapid_key()
    log_dir = Path(tempfile.mkdtemp(prefix="bench-reminders-"))
    engine = create_engine(normalize_url(url))
    inbox = Inbox()
    smtp = Controller(inbox, hostname="127.0.0.1", port=servers.free_port())
    smtp.start()
    chosen = dict(item.split("=", 1) for item in args.set)
    env = _env(vapid, smtp.port, chosen)
    report: dict[str, Any] = {
        "args": {k: str(v) for k, v in vars(args).items()},
        "cpus": os.cpu_count(),
    }
    try:
        with (
            PushReceiver(vapid_public_key(vapid), {}) as receiver,
            servers.start(
                "api", workers=1, database_url=url, secret=secret, log_dir=log_dir, extra_env=env
            ) as api,
            ExitStack() as workers,
        ):
            worker = workers.enter_context(_worker(url, secret, env, log_dir / "worker.log"))
            published = httpx.get(f"{api.url}/api/push/public-key", timeout=10).json()
            if published["data"]["public_key"] != receiver.public_key:
                raise RuntimeError("the API publishes another VAPID key")
            began = time.monotonic()
            asyncio.run(_set_up(api.url, tokens, receiver, inbox, args.reminders))
            report["set_up_seconds"] = round(time.monotonic() - began, 1)
            if args.worker_root is not None:
                workers.close()
                log = log_dir / "worker-timed.log"
                worker = workers.enter_context(_worker(url, secret, env, log, args.worker_root))
            expected = 2 * args.reminders
            load_before = os.getloadavg()
            t0 = time.time() + args.lead
            with engine.begin() as conn:
                moved = conn.execute(
                    _SCHEDULE, {"t0": t0, "step": args.window / args.reminders}
                ).rowcount
            if moved != args.reminders:
                raise RuntimeError(f"{moved} reminders scheduled of {args.reminders}")
            cpu_before, peers_before = _cpu(worker), _cpu(os.getpid())
            deadline = t0 + args.window + args.drain
            while len(receiver.received) + len(inbox.messages) < expected:
                if time.time() > deadline:
                    break
                time.sleep(0.2)
            # A send's outcome is recorded with the worker's next lease: what reached its
            # receiver may still read pending for a moment.
            left = _left(engine)
            while "pending" in left and time.time() <= deadline:
                time.sleep(0.2)
                left = _left(engine)
            cpu_after, peers_after = _cpu(worker), _cpu(os.getpid())
            load_after = os.getloadavg()
            with engine.connect() as conn:
                due = {row.event_id: _epoch(row.remind_at) for row in conn.execute(_EVENTS)}
                outcomes = {row.outcome: row.n for row in conn.execute(_OUTCOMES)}
            pushes = [(got.payload["event_id"], got.at) for got in receiver.received]
            emails = [
                (str(message["Message-ID"]).split("reminder-", 1)[1].split("@", 1)[0], at)
                for message, at in zip(inbox.messages, inbox.arrived, strict=True)
            ]
            refused = list(receiver.refused)
    finally:
        smtp.stop()
        engine.dispose()

    delays: dict[str, list[float]] = {}
    counts: dict[str, Any] = {}
    for channel, taken in (("push", pushes), ("email", emails)):
        seen = Counter(event for event, _ in taken)
        delays[channel] = [at - due[event] for event, at in taken if event in due]
        counts[channel] = {
            "received": len(taken),
            "reminders_reached": len(seen.keys() & due.keys()),
            "missing": len(due.keys() - seen.keys()),
            "repeated": sum(n - 1 for n in seen.values()),
        }
    every = delays["push"] + delays["email"]
    arrivals = [at for _, at in pushes + emails]
    span = (max(arrivals) - t0) if arrivals else 0.0
    report.update(
        {
            "reminders_fired": len(due),
            "outcomes": outcomes,
            "deliveries_expected": expected,
            "deliveries": len(arrivals),
            "channels": counts,
            "pushes_refused": len(refused),
            "deliveries_left": left,
            "delay": _quantiles(every),
            "delay_push": _quantiles(delays["push"]),
            "delay_email": _quantiles(delays["email"]),
            "seconds_t0_to_last": round(span, 2),
            "deliveries_per_s": round(len(arrivals) / span, 1) if span > 0 else None,
            "worker_cpu_seconds": round(cpu_after - cpu_before, 2),
            "worker_cpu_ms_per_delivery": round(
                (cpu_after - cpu_before) * 1000 / max(1, len(arrivals)), 3
            ),
            # This process: the SMTP server and the push receiver (parsing, VAPID checks,
            # decryption) and the wait. Near a core, the peers bound the rate, not the worker.
            "peers_cpu_seconds": round(peers_after - peers_before, 2),
            "load_average_1m": [round(load_before[0], 2), round(load_after[0], 2)],
        }
    )
    args.out.write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    complete = (
        len(due) == args.reminders
        and all(c["missing"] == 0 for c in counts.values())
        and not refused
    )
    return 0 if complete else 1


if __name__ == "__main__":
    raise SystemExit(main())
