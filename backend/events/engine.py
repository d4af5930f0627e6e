"""The delivery engine: one lease-send-record pipeline for every queue (the outbox, reminder
deliveries) and one rule for attempts, backoff and dead letters (specs/events.md, "One engine").

A queue says in SQL how its rows are leased and outcomes recorded; a sink adapter sends one
leased row and classifies the answer (`Outcome`); `Lane` does the rest with no transaction or
pooled connection held while a receiver answers, and `Receivers` bounds each receiver's calls
in flight so that one that never answers holds its own threads, never the others'.
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
# A lease's margin past its sends' deadlines and waits for a place: a send that ended at its
# deadline is recorded, not left to be leased (and sent) again when the lease ends.
RECORD_SLACK_SECONDS = 2.0


@dataclass
class Outcome:
    """What one attempt ended in. `wait`: a receiver's Retry-After in seconds; `sink`: which
    sink failed (metrics); `accepted`: the sinks that took it (not sent it again)."""

    kind: str
    error: str = ""
    wait: float | None = None
    sink: str = ""
    accepted: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Settled:
    """An outcome after the retry rule (a `retry` out of attempts is `dead`)."""

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
        `seconds`; returns the rows to send and how many the lease took (a row held for its
        person's quiet hours is leased, not sent)."""
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
    """THE retry rule of every sink: after the `attempts`-th failed attempt, the backoff (or a
    longer `Retry-After`, within `EVENT_RETRY_MAX_SECONDS`), or None: dead-letter it."""
    if attempts >= settings.event_max_attempts:
        return None
    wait = backoff(settings, attempts)
    if at_least is not None:
        wait = max(wait, timedelta(seconds=at_least))
    return min(wait, timedelta(seconds=settings.event_retry_max_seconds))


def lease_for(slowest_row_seconds: float, window: int, parallel: int) -> float:
    """How long a leased row stays another worker's to skip: twice what may be ahead of it
    (every send at its deadline, in as many waves as the pool needs for a window, its own
    after a wait for a place at its receiver), plus a slack: an outcome is recorded within
    half of it, so a send that ended at its deadline is recorded."""
    waves = -(-window // parallel)
    ahead = waves * slowest_row_seconds + RECEIVER_PATIENCE_SECONDS
    return 2 * (ahead + RECORD_SLACK_SECONDS)


def receiver_share(parallel: int, window: int, receivers: int = 2) -> int:
    """A receiver's bound on its calls in flight: its fair share of the lane's threads among
    `receivers`, and at most half of what the worker has in flight (`EVENT_BATCH_SIZE` rows,
    or the threads when fewer), never all of it, so others' rows are leased beside a slow
    receiver's; at least 1. The only receiver there is may have all."""
    if receivers <= 1:
        return max(1, min(parallel, window))
    return max(1, min(parallel // receivers, min(parallel, window) // 2))


Send = Callable[[Any], Outcome]


class Receivers:
    """At most `bound` calls in flight per receiver. `enter` returns when its call began, or
    None (make no call): a full receiver that answers (a burst) is waited for up to
    `patience`, a slow or failing one is not. A lease leaves the `busy` ones aside."""

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
    """One queue's pipeline. `room` is set when the sends in flight have fallen to half the
    window or to none: pump again. A shared `room` is cleared by the loop, never by a lane
    (one lane's pump must not lose another's wake-up)."""

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
        """Record the sends that finished and, when at most half the window is in flight,
        lease up to its room, in one transaction; returns how many it leased. Never waits."""
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
        """Lease, send and record one batch, waiting for it (for tests and tools)."""
        leased = self.pump()
        self.finish()
        return leased

    def deadline(self) -> float | None:
        """The monotonic instant by which every send in flight is recorded or given up."""
        if not self._flights:
            return None
        return min(f.leased_at for f in self._flights.values()) + self.lease_seconds / 2

    def finish(self, until: float | None = None) -> None:
        """Wait for the sends in flight (within half their lease, or `until`); record them."""
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
        """A failed attempt is retried after `next_try`, or dead; a deferred one was none."""
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
