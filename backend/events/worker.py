"""The worker's loop: fire due reminders, pump each lane of the delivery engine (the outbox's,
the reminder deliveries'), prune; it waits the poll or until a lane has room, never for a
send. While the database is away it backs off (up to `DATABASE_AWAY_MAX_SECONDS`), logging
the 1st, 2nd, 4th... failure only. Several workers share the work through SKIP LOCKED leases.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import Engine

from backend.config import Settings
from backend.errors import database_error, database_failure, loggable
from backend.events import outbox
from backend.events.bounds import HttpClient
from backend.events.deliveries import reminder_lane
from backend.events.engine import Lane, lease_for
from backend.events.health import Readiness, WorkerMetrics
from backend.events.outbox import OutboxQueue
from backend.events.sinks import Fanout, Sink
from backend.services.delivery.reminders import fire_due
from backend.services.history.changes import prune
from backend.services.history.trash import purge_expired
from backend.services.tasks.attachments import orphan_cutoff, sweep_orphans
from backend.storage import ObjectStorage, storage_from_settings
from backend.transfer.runner import RunnerThread

logger = logging.getLogger(__name__)
PRUNE_EVERY_SECONDS = 300
# Outbox events are sent this many at a time, in the outbox lane's pool.
PARALLEL_DELIVERIES = 32
# Reminders' sends, in a pool of their own: a slow receiver never holds the other lane's threads.
PARALLEL_NOTIFICATIONS = 32
# While waiting for the poll, how often the loop looks at its stop event.
STOP_CHECK_SECONDS = 0.25
# While the database is away, the longest wait between two cycles.
DATABASE_AWAY_MAX_SECONDS = 30.0


def longest_batch_seconds(settings: Settings, sinks: int) -> float:
    """How long the outbox's window of sends may take, every call at its deadline: half the
    lease (`engine.lease_for`). A worker told to stop waits at most this long."""
    per_event = max(sinks, 1) * settings.event_delivery_timeout_seconds
    return lease_for(per_event, settings.event_batch_size, PARALLEL_DELIVERIES) / 2


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
        self.metrics = metrics or WorkerMetrics()
        self.batch_seconds = longest_batch_seconds(settings, len(sinks))
        self._away = 0  # cycles failed in a row (the database away)
        self.readiness = readiness or Readiness(
            settings.worker_poll_seconds, settings.worker_max_lag_seconds, self.batch_seconds
        )
        # Every call bounded as a whole, not per read; no redirect, no proxy (bounds.py).
        self._http = HttpClient(settings.event_delivery_timeout_seconds)
        self._push_http = HttpClient(settings.push_timeout_seconds)
        self._pools = [
            ThreadPoolExecutor(max_workers=PARALLEL_DELIVERIES, thread_name_prefix="deliver"),
            ThreadPoolExecutor(max_workers=PARALLEL_NOTIFICATIONS, thread_name_prefix="notify"),
            # An event's calls to its second and further sinks, at once with the first.
            ThreadPoolExecutor(max_workers=PARALLEL_DELIVERIES, thread_name_prefix="sink"),
        ]
        # Set by either lane when it has room (or all its sends came back): pump again.
        self.room = threading.Event()
        fanout = Fanout(
            sinks, self._http, settings, self.metrics, PARALLEL_DELIVERIES, self._pools[2]
        )
        self.outbox = Lane(
            engine,
            settings,
            self.metrics,
            OutboxQueue(
                settings.event_max_attempts, fanout.ready, sinks=[sink.name for sink in sinks]
            ),
            fanout.send,
            self._pools[0],
            parallel=PARALLEL_DELIVERIES,
            slowest_row_seconds=max(len(sinks), 1) * settings.event_delivery_timeout_seconds,
            room=self.room,
            names=[sink.name for sink in sinks],
        )
        self.reminders = reminder_lane(
            engine,
            settings,
            self.metrics,
            self._pools[1],
            self._push_http,
            parallel=PARALLEL_NOTIFICATIONS,
            room=self.room,
        )
        self.lanes = (self.outbox, self.reminders)
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
        """Stop the delivery threads once their calls end; without `wait` (abandoned sends)
        queued calls are dropped and those in flight end by their own deadlines."""
        for pool in self._pools:
            pool.shutdown(wait=wait, cancel_futures=not wait)
        if wait:
            self._http.close()
            self._push_http.close()

    def run(self, stop: threading.Event) -> None:
        """Cycle until `stop` is set; then the sends in flight finish and are recorded. Imports
        run beside the cycles, on a thread of their own (backend/transfer/runner.py)."""
        imports = RunnerThread(self._engine, self._settings)
        imports.start()
        try:
            self._run(stop)
        finally:
            imports.stop()

    def _run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self.cycle()
                self.readiness.last_ok, self.readiness.error = time.monotonic(), None
                if self._away:
                    logger.info("delivery cycles succeed again after %d failed", self._away)
                    self._away = 0
            except Exception as exc:  # the database went away: log, back off, try again
                self._away += 1
                failed = database_failure(exc) if database_error(exc) else None
                self.readiness.error = (failed or f"{type(exc).__name__}: {exc}")[:200]
                # The 1st, 2nd, 4th, 8th... failure only; never its SQL or values.
                if self._away & (self._away - 1) == 0:
                    logger.error(
                        "delivery cycle failed (%d in a row)", self._away, exc_info=loggable(exc)
                    )
                self._wait(stop, self.away_seconds())
                continue
            self._idle(stop)
        logger.info("stopping: the sends in flight end and are recorded")
        try:  # the sends in flight end (each within half its lease) and are recorded
            self.finish()
        except Exception as exc:  # unrecorded: their rows are sent again when leases end
            logger.error("recording the last deliveries failed", exc_info=loggable(exc))

    def finish(self) -> None:
        """Wait for every lane's sends in flight (the waits overlap) and record them."""
        for lane in self.lanes:
            lane.finish()

    def away_seconds(self) -> float:
        """The wait after the `_away`-th failed cycle in a row: the poll, doubled each time."""
        poll = self._settings.worker_poll_seconds
        doubled: float = poll * 2.0 ** min(self._away - 1, 20)
        return min(doubled, max(poll, DATABASE_AWAY_MAX_SECONDS))

    @staticmethod
    def _wait(stop: threading.Event, seconds: float) -> None:
        stop.wait(seconds)

    def _idle(self, stop: threading.Event) -> None:
        """Wait the poll, or less: until a lane's sends in flight have fallen to half its
        window (or all came back), so that the next are leased while the rest still run."""
        deadline = time.monotonic() + self._settings.worker_poll_seconds
        while not stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0 or self.room.wait(min(left, STOP_CHECK_SECONDS)):
                return

    def cycle(self) -> None:
        """One round: fire due reminders, pump every lane, read the backlog, prune."""
        fired = fire_due(self._engine, self._settings)
        if fired.fired:
            self.metrics.reminders.labels("sent").inc(fired.sent)
            self.metrics.reminders.labels("skipped").inc(fired.skipped)
        self.room.clear()  # before the pumps: a send that returns during them sets it again
        for lane in self.lanes:
            lane.pump()
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

    def deliver_batch(self) -> int:
        """`Lane.run` of the outbox (for tests and tools)."""
        return self.outbox.run()
