"""The delivery loop. Each cycle: fire due reminders (into the outbox), lease a batch of
events (a short transaction, committed), deliver each to every sink that has not accepted it
yet with no transaction and no connection held, record the outcomes (a short transaction);
then record the reminders' pushes and emails that came back and lease the next
(backend/events/notify.py), whose sends the loop does not wait for: it waits the poll, or
until half of them have come back.
Several workers, on several machines, share the work through SKIP LOCKED leases (outbox.py).

Every send is bounded (backend/events/bounds.py): a total deadline, a cap on the answer read.
A failed attempt is retried after an exponential backoff with full jitter (`outbox.next_try`,
the rule of every sink); after `EVENT_MAX_ATTEMPTS` the event is dead (`python -m backend
events dead|requeue`). While the database is away the loop backs off (doubling its wait up to
`DATABASE_AWAY_MAX_SECONDS`) and logs the first failure, then only every doubling.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import Connection, Engine

from backend.config import Settings
from backend.errors import database_error, database_failure, loggable
from backend.events import outbox
from backend.events.bounds import bounded_client, deadline
from backend.events.health import Readiness, WorkerMetrics
from backend.events.notify import Notifier
from backend.events.outbox import ClaimedRow, next_try
from backend.events.sinks import DeliveryFailed, Sink, event_body, urls_kept_out_of_logs
from backend.services.attachments import orphan_cutoff, sweep_orphans
from backend.services.changes import prune
from backend.services.reminders import fire_due
from backend.services.trash import purge_expired
from backend.storage import ObjectStorage, storage_from_settings

logger = logging.getLogger(__name__)
PRUNE_EVERY_SECONDS = 300
# Deliveries of one batch run this many at a time.
PARALLEL_DELIVERIES = 32
# Reminders' pushes and emails run this many at a time, in a pool of their own (their lease
# counts the waves of their own window only).
PARALLEL_NOTIFICATIONS = 32
# While waiting for the poll, how often the loop looks at its stop event.
STOP_CHECK_SECONDS = 0.25
# While the database is away, the longest wait between two cycles.
DATABASE_AWAY_MAX_SECONDS = 30.0


def longest_batch_seconds(settings: Settings, sinks: int) -> float:
    """The batch deadline: how long delivering one batch may take when every call runs to its
    deadline (`EVENT_DELIVERY_TIMEOUT_SECONDS`, the whole call). No transaction is open
    meanwhile; the batch's lease lasts twice as long (`lease_seconds`)."""
    waves = -(-settings.event_batch_size // PARALLEL_DELIVERIES)
    return waves * max(sinks, 1) * settings.event_delivery_timeout_seconds


def lease_seconds(settings: Settings, sinks: int) -> float:
    """How long a leased event stays another worker's to skip: twice the batch deadline, so a
    live worker records its outcomes well before the lease ends."""
    return 2 * longest_batch_seconds(settings, sinks)


@dataclass
class Attempt:
    """One record's delivery, filled in by a delivery thread; the batch reads it when the
    thread is done or the batch deadline has passed (then `sink` is the one being called)."""

    row: ClaimedRow
    accepted: list[str]
    sink: str = ""
    error: str | None = None
    done: bool = False
    # Set by the batch when it gave up waiting; the thread's later outcome is then ignored.
    abandoned: bool = field(default=False)


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
        self.batch_seconds = longest_batch_seconds(settings, len(self._sinks))
        self.lease_seconds = lease_seconds(settings, len(self._sinks))
        self._away = 0  # cycles failed in a row (the database away)
        self.readiness = readiness or Readiness(
            settings.worker_poll_seconds, settings.worker_max_lag_seconds, self.batch_seconds
        )
        urls_kept_out_of_logs()
        # Every call bounded as a whole (bounds.deadline around each send), not per read.
        self._http = bounded_client(settings.event_delivery_timeout_seconds)
        self._pool = ThreadPoolExecutor(
            max_workers=PARALLEL_DELIVERIES, thread_name_prefix="deliver"
        )
        # Pushes go to a client's URL: no redirects, no proxy from the environment.
        self._push_http = bounded_client(
            settings.push_timeout_seconds, follow_redirects=False, trust_env=False
        )
        self._notify_pool = ThreadPoolExecutor(
            max_workers=PARALLEL_NOTIFICATIONS, thread_name_prefix="notify"
        )
        self.notifier = Notifier(
            engine,
            settings,
            self.metrics,
            self._notify_pool,
            self._push_http,
            parallel=PARALLEL_NOTIFICATIONS,
        )
        self._pruned_at = -float("inf")  # prune on the first cycle
        self._objects: ObjectStorage | None = None

    def _storage(self) -> ObjectStorage:
        if self._objects is None:
            self._objects = storage_from_settings(self._settings)
        return self._objects

    def _drop_objects(self, keys: list[str]) -> None:
        """Delete purged attachments' bytes (their rows' purge has committed)."""
        for key in keys:
            self._storage().delete(key)

    def close(self, wait: bool = True) -> None:
        """Stop the delivery threads once their calls end; without `wait` (an abandoned batch)
        queued calls are dropped and those in flight end by their own timeouts."""
        self._pool.shutdown(wait=wait, cancel_futures=not wait)
        self._notify_pool.shutdown(wait=wait, cancel_futures=not wait)
        if wait:
            self._http.close()
            self._push_http.close()

    def run(self, stop: threading.Event) -> None:
        """Cycle until `stop` is set; a cycle in progress finishes first."""
        while not stop.is_set():
            try:
                full = self.cycle()
                self.readiness.last_ok, self.readiness.error = time.monotonic(), None
                if self._away:
                    logger.info("delivery cycles succeed again after %d failed", self._away)
                    self._away = 0
            except Exception as exc:  # the database went away: log, back off, try again
                self._away += 1
                failed = database_failure(exc) if database_error(exc) else None
                self.readiness.error = (failed or f"{type(exc).__name__}: {exc}")[:200]
                # The first failure, then the 2nd, 4th, 8th...: a bounded number of lines
                # however long it stays away. By its class and sender, never its SQL or values.
                if self._away & (self._away - 1) == 0:
                    logger.error(
                        "delivery cycle failed (%d in a row)", self._away, exc_info=loggable(exc)
                    )
                self._wait(stop, self.away_seconds())
                continue
            if not full:
                self._idle(stop)
        try:  # the sends in flight end (each within half its lease) and are recorded
            self.notifier.finish()
        except Exception as exc:  # unrecorded: their rows are sent again when leases end
            logger.error("recording the last reminder deliveries failed", exc_info=loggable(exc))

    def away_seconds(self) -> float:
        """The wait after the `_away`-th failed cycle in a row: the poll, doubled each time,
        at most `DATABASE_AWAY_MAX_SECONDS` (never a spin)."""
        poll = self._settings.worker_poll_seconds
        doubled: float = poll * 2.0 ** min(self._away - 1, 20)
        return min(doubled, max(poll, DATABASE_AWAY_MAX_SECONDS))

    @staticmethod
    def _wait(stop: threading.Event, seconds: float) -> None:
        stop.wait(seconds)

    def _idle(self, stop: threading.Event) -> None:
        """Wait the poll, or less: until the reminders' sends in flight have fallen to half
        their window, so that the next are leased while the rest still run."""
        deadline = time.monotonic() + self._settings.worker_poll_seconds
        while not stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0 or self.notifier.room.wait(min(left, STOP_CHECK_SECONDS)):
                return

    def cycle(self) -> bool:
        """One round; True when the batch was full (more may be waiting at once)."""
        fired = fire_due(self._engine, self._settings)
        if fired.fired:
            self.metrics.reminders.labels("sent").inc(fired.sent)
            self.metrics.reminders.labels("skipped").inc(fired.skipped)
        handled = self.deliver_batch()
        # Reminders' pushes and emails (backend/events/notify.py): those sent recorded and
        # the next leased, sent with no transaction open; this cycle does not wait for them.
        self.notifier.pump()
        with self._engine.connect() as conn:
            backlog = outbox.backlog(conn)
        self.metrics.observe_backlog(backlog)
        self.readiness.lag_seconds = backlog.lag_seconds
        if time.monotonic() - self._pruned_at > PRUNE_EVERY_SECONDS:
            self._pruned_at = time.monotonic()
            pruned = prune(self._engine, self._settings.change_retention_hours, undelivered=False)
            if pruned:
                logger.info("pruned %d delivered events past retention", pruned)
            purged = purge_expired(self._engine, drop=self._drop_objects)
            if purged:
                logger.info("purged %d deleted tasks past the trash's days", purged)
            swept = sweep_orphans(self._engine, self._storage(), orphan_cutoff(self._settings))
            if swept:
                logger.info("swept %d stored attachments with no row", swept)
        # A full outbox batch: the next at once. The notifier's room is waited for (`_idle`).
        return handled == self._settings.event_batch_size

    def deliver_batch(self) -> int:
        """Lease, deliver and record one batch; returns its size.

        The lease is a short transaction of its own, committed before the first send; the
        sends hold no transaction and no connection; the outcomes are recorded in another
        short one. Each send ends by its deadline (bounds.py); the batch waits for them at
        most the batch deadline. A call still running then counts as a failed attempt; its
        receiver may still get the event, so it may see it again on the retry (with the same
        event id)."""
        with self._engine.begin() as conn:
            rows = outbox.lease(conn, self._settings.event_batch_size, self.lease_seconds)
        if not rows:
            return 0
        if not self._sinks:  # a worker of reminders only: every sink (none) has them
            with self._engine.begin() as conn:
                outbox.delivered(conn, [(row.id, row.attempts) for row in rows])
            return len(rows)
        attempts = [Attempt(row, list(row.delivered_to)) for row in rows]
        futures = [self._pool.submit(self._deliver, attempt) for attempt in attempts]
        wait(futures, timeout=self.batch_seconds)
        for attempt in attempts:
            if not attempt.done:
                attempt.abandoned = True
                if not attempt.sink:  # never started: every delivery thread was busy
                    waiting = (s.name for s in self._sinks if s.name not in attempt.accepted)
                    attempt.sink = next(waiting, "queue")
                attempt.error = (
                    f"{attempt.sink}: no answer within the batch deadline "
                    f"({self.batch_seconds:g} s)"
                )
                self.metrics.failures.labels(attempt.sink).inc()
        with self._engine.begin() as conn:
            done = [(a.row.id, a.row.attempts) for a in attempts if a.error is None]
            outbox.delivered(conn, done)
            for attempt in attempts:
                if attempt.error is not None:
                    self._record_failure(conn, attempt)
        return len(rows)

    def _deliver(self, attempt: Attempt) -> None:
        row = attempt.row
        try:
            body = event_body(row)
        except Exception as exc:  # a record no longer renderable must fail alone
            logger.exception("event %s cannot be rendered", row.event_id)
            attempt.sink, attempt.error = "render", f"cannot render: {type(exc).__name__}"
            attempt.done = True
            return
        # Every sink not yet done is tried, each within its own deadline: one that fails (or
        # never answers) does not keep the event from the others.
        errors: list[str] = []
        for sink in self._sinks:
            if sink.name in attempt.accepted:
                continue
            attempt.sink = sink.name
            try:
                with deadline(self._settings.event_delivery_timeout_seconds):
                    sink.send(self._http, row, body)
            except Exception as exc:
                if attempt.abandoned:
                    return
                if not isinstance(exc, DeliveryFailed):  # a bug, not the receiver: say where
                    logger.exception("event %s: sending to %s failed", row.event_id, sink.name)
                self.metrics.failures.labels(sink.name).inc()
                errors.append(f"{sink.name}: {exc}")
                failed_sink = sink.name
                continue
            if attempt.abandoned:
                return
            attempt.accepted.append(sink.name)
            self.metrics.delivered.labels(sink.name).inc()
            age = (datetime.now(UTC) - row.occurred_at).total_seconds()
            self.metrics.latency.labels(sink.name).observe(max(age, 0.0))
        if errors:
            attempt.sink, attempt.error = failed_sink, "; ".join(errors)
        attempt.done = True

    def _record_failure(self, conn: Connection, attempt: Attempt) -> None:
        attempts = attempt.row.attempts  # counted by the lease
        retry_in = next_try(self._settings, attempts)
        outbox.failed(
            conn,
            attempt.row.id,
            attempts=attempts,
            accepted_by=list(attempt.accepted),
            error=attempt.error or "",
            retry_in=retry_in,
        )
        if retry_in is None:
            self.metrics.dead_lettered.labels(attempt.sink).inc()
            logger.warning(
                "event %s dead after %d attempts: %s", attempt.row.event_id, attempts, attempt.error
            )
