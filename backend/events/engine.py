"""The delivery engine: one lease-send-record pipeline for every sink (specs/events.md,
"Delivery").

A queue is a table of things to send: the outbox (`task_events`, to Dapr and webhooks:
backend/events/outbox.py) and `reminder_deliveries` (Web Push, reminders' and confirmation
emails: backend/events/deliveries.py). A queue says how its rows are leased and how outcomes
are recorded, in SQL; a sink adapter sends one leased row and classifies what came back
(an `Outcome`). Everything else is here, once:

- `Lane`: one queue's pipeline. At most `window` rows in flight; when they have fallen to
  half, one short transaction records the outcomes that came back and leases the next rows
  (each row's `next_attempt_at` a lease ahead, its attempt counted); the sends run in the
  lane's own thread pool with no transaction and no pooled connection held. An outcome is
  recorded only within half the lease: a send still running then leaves its row to be
  leased again when the lease ends (at least once; the repeat carries the same event id,
  push `Topic` and email `Message-ID`).
- `Receivers`: a bound on the calls one receiver (a webhook, a push service's origin) may
  have in flight. A send whose receiver is at its bound waits briefly if the receiver is
  healthy (a burst), else is not made: the attempt ends `DEFERRED` (not counted) and the
  row waits for the receiver to have room, so a receiver that never answers holds its bound
  of threads, never the others'.
- `Lane._settle`: attempts, backoff and dead letters. A failed attempt is retried after
  `next_try` (full jitter, a receiver's `Retry-After` honoured within the bound) until
  `EVENT_MAX_ATTEMPTS`, then it is dead: logged, counted in the metrics, and listed by
  `python -m backend events dead`.

The worker's loop (backend/events/worker.py) pumps every lane each cycle.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Protocol

from sqlalchemy import Engine

from backend.config import Settings
from backend.events.health import WorkerMetrics

logger = logging.getLogger(__name__)

# What one attempt can end in.
DELIVERED = "delivered"  # the receiver took it: done with
DROPPED = "dropped"  # no longer for its person (or its subscription went): done with, unsent
GONE = "gone"  # a push service's 404/410: the subscription ended
RETRY = "retry"  # failed: tried again after the backoff, within the bound
DEAD = "dead"  # failed for good, or out of attempts: kept for an operator
DEFERRED = "deferred"  # not tried: its receiver was at its bound (`Receivers`); not counted

# How long a send waits for a place at a healthy receiver that is at its bound.
RECEIVER_PATIENCE_SECONDS = 1.0


@dataclass
class Outcome:
    """What one attempt ended in (one of the kinds above). `wait`: a receiver's Retry-After
    in seconds; `sink`: which sink failed (metrics); `accepted`: the sinks that took it (an
    outbox event goes to several; those are not sent it again)."""

    kind: str
    error: str = ""
    wait: float | None = None
    sink: str = ""
    accepted: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Settled:
    """An outcome as recorded: `kind` after the retry rule (a `retry` out of attempts is
    `dead`), `retry_in` seconds for a retry."""

    row: Any
    kind: str
    outcome: Outcome
    retry_in: float | None = None


class Queue(Protocol):
    """A table of deliveries: its SQL, and what its outcomes count in the metrics."""

    name: str

    def exchange(
        self, engine: Engine, settled: Sequence[Settled], lease: int, seconds: float
    ) -> tuple[list[Any], int]:
        """One short transaction: record `settled`, then lease up to `lease` due rows for
        `seconds`; returns the rows to send and how many the lease took (a row can be leased
        and not sent: one that waits for its person's quiet hours to end)."""
        ...

    def observe(self, metrics: WorkerMetrics, settled: Settled) -> None: ...

    def describe(self, row: Any) -> str:
        """How a dead letter's log line names the row (never a URL or an address)."""
        ...


def backoff(settings: Settings, attempts: int) -> timedelta:
    """Full jitter: uniform in [0, min(max, base * 2^(attempts-1))]."""
    ceiling = min(
        settings.event_retry_max_seconds,
        settings.event_retry_base_seconds * 2 ** min(attempts - 1, 30),
    )
    return timedelta(seconds=random.uniform(0, ceiling))  # noqa: S311  (jitter, not secrecy)


def next_try(settings: Settings, attempts: int, at_least: float | None = None) -> timedelta | None:
    """THE retry rule of every sink (webhooks, Dapr, Web Push, email): after a failed attempt
    (the `attempts`-th), when to try again (the backoff, or a receiver's `Retry-After` when
    longer, within `EVENT_RETRY_MAX_SECONDS`), or None: out of attempts, dead-letter it."""
    if attempts >= settings.event_max_attempts:
        return None
    wait = backoff(settings, attempts)
    if at_least is not None:
        wait = max(wait, timedelta(seconds=at_least))
    return min(wait, timedelta(seconds=settings.event_retry_max_seconds))


def lease_for(slowest_row_seconds: float, window: int, parallel: int) -> float:
    """How long a leased row stays another worker's to skip: twice what may be ahead of it
    (every send at its deadline, as many waves as the pool needs for a window), so a live
    worker records its outcome well before the lease ends."""
    waves = -(-window // parallel)
    return 2 * waves * slowest_row_seconds


Send = Callable[[Any], Outcome]


class Receivers:
    """How many calls each receiver has in flight, each at most `bound`. `enter` takes a
    place and returns when its call began (None: make no call). A full receiver that
    answers (its last call succeeded within `patience` seconds, none of its calls in
    flight older than that: a burst) is waited for, up to `patience`; a slow or failing
    one is not: None at once. `leave` gives the place back with how the call went. `busy`
    names the full ones, which a lease leaves aside (their rows wait, uncounted, for
    room)."""

    def __init__(self, bound: int, patience: float = RECEIVER_PATIENCE_SECONDS) -> None:
        self.bound = max(1, bound)
        self.patience = patience
        self._room = threading.Condition()
        self._began: dict[str, list[float]] = {}  # the calls in flight, when each began
        self._slow: set[str] = set()  # the last call failed or took `patience` or more

    def _answers(self, receiver: str, now: float) -> bool:
        began = self._began.get(receiver, [])
        return receiver not in self._slow and all(now - b < self.patience for b in began)

    def enter(self, receiver: str) -> float | None:
        until: float | None = None
        with self._room:
            while len(self._began.get(receiver, [])) >= self.bound:
                now = time.monotonic()
                until = now + self.patience if until is None else until
                if now >= until or not self._answers(receiver, now):
                    return None
                self._room.wait(min(until - now, self.patience / 10))
            began = time.monotonic()
            self._began.setdefault(receiver, []).append(began)
            return began

    def leave(self, receiver: str, began: float, ok: bool) -> None:
        """The call that began at `began` ended: `ok`, the receiver took it."""
        with self._room:
            calls = self._began.get(receiver, [])
            if began in calls:
                calls.remove(began)
            if not calls:
                self._began.pop(receiver, None)
            if ok and time.monotonic() - began < self.patience:
                self._slow.discard(receiver)
            else:
                self._slow.add(receiver)
            self._room.notify_all()

    def busy(self) -> list[str]:
        with self._room:
            return sorted(r for r, calls in self._began.items() if len(calls) >= self.bound)


@dataclass
class _Flight:
    """A leased row on its way: its send's future and when its lease began (monotonic)."""

    row: Any
    leased_at: float
    future: Future[Outcome]


class Lane:
    """One queue's pipeline: lease, send with nothing held, record (the module's docstring).

    `room` is set when the sends in flight have fallen to half the window (more may be due)
    or to none (all to record): the worker's loop then pumps again. Lanes of one worker share
    one event, which the loop clears before it pumps them all (a lane clears only its own:
    one lane's pump must not lose another's wake-up)."""

    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        metrics: WorkerMetrics,
        queue: Queue,
        send: Send,
        pool: ThreadPoolExecutor,
        *,
        parallel: int,
        slowest_row_seconds: float,
        room: threading.Event | None = None,
        names: Sequence[str] = (),
    ) -> None:
        self._engine = engine
        self._settings = settings
        self._metrics = metrics
        self.queue = queue
        self.names = list(names)  # what it sends to: sinks or channels (the start-up log)
        self._send = send
        self._pool = pool
        self.window = settings.event_batch_size
        self.lease_seconds = lease_for(slowest_row_seconds, self.window, parallel)
        self._flights: dict[int, _Flight] = {}
        self._lock = threading.Lock()
        self._sending = 0  # sends not yet returned (under `_lock`)
        self._more = False  # the last lease took all it asked for: more may be due
        self._own_room = room is None
        self.room = room or threading.Event()

    @property
    def in_flight(self) -> int:
        """Rows leased by this worker and not yet recorded."""
        return len(self._flights)

    @property
    def sending(self) -> int:
        """Sends not yet returned."""
        with self._lock:
            return self._sending

    def pump(self, lease: bool = True) -> int:
        """Record the sends that finished and, when at most half the window is in flight
        (and `lease`), lease up to the window's room, in one transaction; returns how many
        rows it leased. Never waits for a send."""
        if self._own_room:
            self.room.clear()
        now = time.monotonic()
        settled: list[Settled] = []
        for flight in [f for f in self._flights.values() if f.future.done()]:
            del self._flights[flight.row.id]
            # Past half its lease another worker may lease it soon: its outcome is left
            # unrecorded, and the row is leased again when the lease ends (at least once).
            if now - flight.leased_at < self.lease_seconds / 2:
                settled.append(self._settle(flight.row, flight.future.result()))
        room = self.window - len(self._flights)
        wanted = room if lease and room * 2 >= self.window else 0
        rows, taken = self.queue.exchange(self._engine, settled, wanted, self.lease_seconds)
        for done in settled:
            self.queue.observe(self._metrics, done)
        if wanted:
            with self._lock:
                self._more = wanted == taken
        for row in rows:
            with self._lock:
                self._sending += 1
            future = self._pool.submit(self._attempt, row)
            future.add_done_callback(self._returned)
            # The lease began in the statement: `now`, taken before, is on the safe side.
            self._flights[row.id] = _Flight(row, now, future)
        return taken

    def run(self) -> int:
        """Lease, send and record one batch, waiting for it (within half the lease): the
        pump's steps in turn, for tests and tools; returns how many rows it leased."""
        leased = self.pump()
        self.finish()
        return leased

    def deadline(self) -> float | None:
        """The monotonic instant by which every send in flight is recorded or given up."""
        if not self._flights:
            return None
        return min(f.leased_at for f in self._flights.values()) + self.lease_seconds / 2

    def finish(self, until: float | None = None) -> None:
        """Wait for the sends in flight (each within half its lease, or until `until`) and
        record them."""
        end = self.deadline() if until is None else until
        if end is None:
            return
        futures = [f.future for f in self._flights.values()]
        wait(futures, timeout=max(0.0, end - time.monotonic()))
        self.pump(lease=False)

    def _returned(self, _: Future[Outcome]) -> None:
        with self._lock:
            self._sending -= 1
            if self._sending == 0 or (self._more and self._sending * 2 <= self.window):
                self.room.set()

    def _attempt(self, row: Any) -> Outcome:
        try:
            return self._send(row)
        except Exception as exc:  # a bug, not the receiver: say where, retry within the bound
            logger.exception("%s: sending %s failed", self.queue.name, self.queue.describe(row))
            return Outcome(RETRY, f"{type(exc).__name__}", sink="send")

    def _settle(self, row: Any, outcome: Outcome) -> Settled:
        """The one rule for a failed attempt: retry after `next_try`, or dead. A deferred
        one (its receiver was full) was no attempt: the queue records it uncounted."""
        kind = outcome.kind
        if kind == DEFERRED:
            return Settled(row, DEFERRED, outcome)
        if kind == RETRY:
            retry_in = next_try(self._settings, row.attempts, outcome.wait)
            if retry_in is not None:
                return Settled(row, RETRY, outcome, retry_in.total_seconds())
            kind = DEAD
        if kind == DEAD:
            logger.warning(
                "%s: %s dead after %d attempts: %s",
                self.queue.name,
                self.queue.describe(row),
                row.attempts,
                outcome.error,
            )
        return Settled(row, kind, outcome)
