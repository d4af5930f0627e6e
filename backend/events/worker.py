"""The delivery loop. Each cycle: fire due reminders (into the outbox), claim a batch of
events, deliver each to every sink that has not accepted it yet, record the outcome, commit.
Several workers, on several machines, share the work through SKIP LOCKED (outbox.py).

A failed attempt is retried after an exponential backoff with full jitter; after
`EVENT_MAX_ATTEMPTS` the event is dead (`python -m backend events dead|requeue`).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import Connection, Engine

from backend.config import Settings
from backend.events import outbox
from backend.events.health import Readiness, WorkerMetrics
from backend.events.outbox import ClaimedRow
from backend.events.sinks import DeliveryFailed, Sink, event_body
from backend.services.changes import prune
from backend.services.reminders import fire_due

logger = logging.getLogger(__name__)
PRUNE_EVERY_SECONDS = 300
# Deliveries of one batch run this many at a time.
PARALLEL_DELIVERIES = 32


def longest_batch_seconds(settings: Settings, sinks: int) -> float:
    """How long delivering one batch can take when every call times out: the claim's
    transaction must be allowed to stay open that long."""
    waves = -(-settings.event_batch_size // PARALLEL_DELIVERIES)
    return waves * sinks * settings.event_delivery_timeout_seconds


def backoff(settings: Settings, attempts: int) -> timedelta:
    """Full jitter: uniform in [0, min(max, base * 2^(attempts-1))]."""
    ceiling = min(
        settings.event_retry_max_seconds,
        settings.event_retry_base_seconds * 2 ** min(attempts - 1, 30),
    )
    return timedelta(seconds=random.uniform(0, ceiling))  # noqa: S311  (jitter, not secrecy)


@dataclass(frozen=True)
class Outcome:
    row: ClaimedRow
    accepted_by: tuple[str, ...]
    error: str | None


class Worker:
    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        sinks: Sequence[Sink],
        metrics: WorkerMetrics | None = None,
        readiness: Readiness | None = None,
    ) -> None:
        self._engine = engine
        self._settings = settings
        self._sinks = tuple(sinks)
        self.metrics = metrics or WorkerMetrics()
        self.readiness = readiness or Readiness(
            settings.worker_poll_seconds, settings.worker_max_lag_seconds
        )
        self._http = httpx.Client(timeout=settings.event_delivery_timeout_seconds)
        self._pool = ThreadPoolExecutor(
            max_workers=PARALLEL_DELIVERIES, thread_name_prefix="deliver"
        )
        self._pruned_at = 0.0

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self._http.close()

    def run(self, stop: threading.Event) -> None:
        """Cycle until `stop` is set; a cycle in progress finishes first."""
        while not stop.is_set():
            try:
                full = self.cycle()
                self.readiness.last_ok, self.readiness.error = time.monotonic(), None
            except Exception as exc:  # the database went away: log, wait, try again
                logger.exception("delivery cycle failed")
                self.readiness.error = f"{type(exc).__name__}: {str(exc)[:200]}"
                full = False
            if not full:
                stop.wait(self._settings.worker_poll_seconds)

    def cycle(self) -> bool:
        """One round; True when the batch was full (more may be waiting at once)."""
        fired = fire_due(self._engine, self._settings)
        if fired.fired:
            self.metrics.reminders.labels("sent").inc(fired.sent)
            self.metrics.reminders.labels("skipped").inc(fired.skipped)
        handled = self.deliver_batch()
        with self._engine.connect() as conn:
            backlog = outbox.backlog(conn)
        self.metrics.observe_backlog(backlog)
        self.readiness.lag_seconds = backlog.lag_seconds
        if time.monotonic() - self._pruned_at > PRUNE_EVERY_SECONDS:
            self._pruned_at = time.monotonic()
            pruned = prune(self._engine, self._settings.change_retention_hours, undelivered=False)
            if pruned:
                logger.info("pruned %d delivered events past retention", pruned)
        return handled == self._settings.event_batch_size

    def deliver_batch(self) -> int:
        """Claim, deliver and record one batch in one transaction; returns its size."""
        with self._engine.connect() as conn, conn.begin():
            rows = outbox.claim(conn, self._settings.event_batch_size)
            outcomes = list(self._pool.map(self._deliver, rows))
            done = [o.row.id for o in outcomes if o.error is None]
            outbox.delivered(conn, done)
            for outcome in outcomes:
                if outcome.error is not None:
                    self._record_failure(conn, outcome)
        return len(rows)

    def _deliver(self, row: ClaimedRow) -> Outcome:
        body = event_body(row)
        accepted = list(row.delivered_to)
        for sink in self._sinks:
            if sink.name in accepted:
                continue
            try:
                sink.send(self._http, row, body)
            except DeliveryFailed as exc:
                self.metrics.failures.labels(sink.name).inc()
                return Outcome(row, tuple(accepted), f"{sink.name}: {exc}")
            accepted.append(sink.name)
            self.metrics.delivered.labels(sink.name).inc()
            age = (datetime.now(UTC) - row.occurred_at).total_seconds()
            self.metrics.latency.labels(sink.name).observe(max(age, 0.0))
        return Outcome(row, tuple(accepted), None)

    def _record_failure(self, conn: Connection, outcome: Outcome) -> None:
        attempts = outcome.row.attempts + 1
        last = attempts >= self._settings.event_max_attempts
        retry_in = None if last else backoff(self._settings, attempts)
        outbox.failed(
            conn,
            outcome.row.id,
            accepted_by=outcome.accepted_by,
            error=outcome.error or "",
            retry_in=retry_in,
        )
        if last:
            self.metrics.dead_lettered.inc()
            logger.warning(
                "event %s dead after %d attempts: %s", outcome.row.event_id, attempts, outcome.error
            )
