"""The outbox queue (`task_events` to Dapr and webhooks): every statement delivery runs on it
(specs/events.md, "Guarantees"). An outcome is recorded only while the row still carries its
lease (`attempts` unchanged, still pending): a row leased again after its lease ended is the
other worker's. A record goes to a sink only once its task's (or list's) earlier pending
records reached that sink, so each sink gets a task's events in order with many workers.

Each worker registers the sinks it sends to (`event_sinks`, renewed while it runs); a record
is delivered only once every sink of a live registration has it (`delivered_to`), whichever
workers sent it there: workers with different sinks (a rolling update adding one, a worker
run for reminders alone) lose nothing ("Workers and their sinks").
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol, cast

from sqlalchemy import (
    Connection,
    Engine,
    Float,
    Integer,
    Text,
    and_,
    bindparam,
    func,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY, UUID

from backend.events import engine
from backend.events.engine import Settled
from backend.events.health import WorkerMetrics
from backend.events.sinks import EventRow
from backend.models import DeliveryState, TaskEvent
from backend.models.notification_settings import ReminderDelivery

logger = logging.getLogger(__name__)
_E = TaskEvent.__table__.c  # type: ignore[attr-defined]
PENDING, DELIVERED, DEAD = DeliveryState.pending, DeliveryState.delivered, DeliveryState.dead

# A worker's registration of its sinks lasts this long after it was last renewed: a sink that
# no running worker has any more is waited for (its events kept pending) until then, so a
# worker's restart never lets the others mark its sink's events delivered.
SINK_REGISTRATION_SECONDS = 600.0
# How often a running worker renews its registration.
REGISTER_EVERY_SECONDS = 10.0
# How often a worker looks for pending events every live sink already has, when its last
# look found none (a sink's registration lapsed; a worker with no sink: every due event),
# and for events out of attempts (`exhausted`).
SWEEP_EVERY_SECONDS = 2.0

# The sinks of the live registrations, every worker's (`:ttl`: SINK_REGISTRATION_SECONDS).
_LIVE_SINKS = """
    SELECT coalesce(array_agg(DISTINCT s.sink), '{}') AS sinks FROM event_sinks AS s
    WHERE s.seen_at > clock_timestamp() - make_interval(secs => :ttl)
"""

# Due rows, each with the sinks of `:ready` it may go to now (`sendable`: not reached, and no
# earlier pending event of its task, or list, waits for it); a row with none is not leased.
# The two NOT EXISTS read the pending partial indexes.
_LEASE = """
WITH due AS (
    SELECT c.id, x.sendable
    FROM task_events AS c
    CROSS JOIN LATERAL (
        SELECT ARRAY(
            SELECT s FROM unnest(CAST(:ready AS text[])) AS s
            WHERE NOT s = ANY(c.delivered_to)
            AND NOT EXISTS (
                SELECT 1 FROM task_events AS e
                WHERE e.task_id = c.task_id AND e.state = 'pending' AND e.id < c.id
                AND NOT s = ANY(e.delivered_to)
            )
            AND NOT EXISTS (
                SELECT 1 FROM task_events AS e
                WHERE c.task_id IS NULL AND e.list_id = c.list_id AND e.task_id IS NULL
                AND e.state = 'pending' AND e.id < c.id AND NOT s = ANY(e.delivered_to)
            )
        ) AS sendable
    ) AS x
    WHERE c.state = 'pending' AND c.next_attempt_at <= clock_timestamp()
    AND c.attempts < :max_attempts AND cardinality(x.sendable) > 0
    ORDER BY c.id
    LIMIT :batch
    FOR UPDATE OF c SKIP LOCKED
)
UPDATE task_events AS t
SET next_attempt_at = clock_timestamp() + make_interval(secs => :lease),
    attempts = t.attempts + 1
FROM due
WHERE t.id = due.id
RETURNING t.id, t.event_id, t.user_id, t.task_id, t.list_id, t.type, t.task, t.list,
    t.object, t.actor_id, t.changes, t.occurred_at, t.attempts, t.delivered_to, due.sendable
"""


class ClaimedRow(EventRow, Protocol):
    attempts: int
    delivered_to: list[str]
    sendable: list[str]


def lease(
    conn: Connection, batch: int, seconds: float, ready: Sequence[str], max_attempts: int
) -> list[ClaimedRow]:
    """Lease up to `batch` due rows for `seconds` that may go to a sink of `ready`, oldest
    first; none already attempted `max_attempts` times (`exhausted`)."""
    statement = text(_LEASE).bindparams(
        bindparam("ready", list(ready), type_=ARRAY(Text)),
        bindparam("batch", batch, type_=Integer),
        bindparam("lease", seconds, type_=Float),
        bindparam("max_attempts", max_attempts, type_=Integer),
    )
    rows = conn.execute(statement).all()
    return sorted(cast(list[ClaimedRow], rows), key=lambda row: row.id)


# Rows out of attempts whose last attempt's outcome was never recorded, due again (their
# lease ended): dead, never sent once more than the bound. Reads the pending partial index.
_EXHAUSTED = text(
    """
    UPDATE task_events
    SET state = 'dead', last_error = 'no outcome recorded for its last attempt (its lease ended)'
    WHERE state = 'pending' AND next_attempt_at <= clock_timestamp()
    AND attempts >= :max_attempts
    """
).bindparams(bindparam("max_attempts", type_=Integer))


def exhausted(conn: Connection, max_attempts: int) -> int:
    """Due rows already attempted `max_attempts` times (the last one's outcome unrecorded, its
    lease ended): dead. Returns how many."""
    return int(conn.execute(_EXHAUSTED, {"max_attempts": max_attempts}).rowcount)


# A worker's sinks, registered (or renewed) as live now; the lapsed registrations dropped.
_REGISTER = text(
    """
    WITH lapsed AS (
        DELETE FROM event_sinks
        WHERE seen_at <= clock_timestamp() - make_interval(secs => :ttl)
    )
    INSERT INTO event_sinks (worker_id, sink, seen_at)
    SELECT :worker, s, clock_timestamp() FROM unnest(CAST(:sinks AS text[])) AS s
    ON CONFLICT (worker_id, sink) DO UPDATE SET seen_at = excluded.seen_at
    """
).bindparams(
    bindparam("worker", type_=UUID(as_uuid=True)),
    bindparam("sinks", type_=ARRAY(Text)),
    bindparam("ttl", type_=Float),
)


def register(conn: Connection, worker: uuid.UUID, sinks: Sequence[str]) -> None:
    """`worker`'s sinks live for `SINK_REGISTRATION_SECONDS` from now."""
    conn.execute(
        _REGISTER, {"worker": worker, "sinks": list(sinks), "ttl": SINK_REGISTRATION_SECONDS}
    )


@dataclass(frozen=True)
class LiveSink:
    """A sink of the live registrations: how many workers have it, and how long ago one of
    them last renewed it."""

    name: str
    workers: int
    seen_seconds_ago: float


_LIVE = text(
    """
    SELECT sink, count(*) AS workers,
        extract(epoch FROM clock_timestamp() - max(seen_at)) AS ago
    FROM event_sinks
    WHERE seen_at > clock_timestamp() - make_interval(secs => :ttl)
    GROUP BY sink ORDER BY sink
    """
).bindparams(bindparam("ttl", type_=Float))


def live_sinks(conn: Connection) -> list[LiveSink]:
    """Every live registration's sinks, whichever worker's (`events status`, the worker's log)."""
    rows = conn.execute(_LIVE, {"ttl": SINK_REGISTRATION_SECONDS}).all()
    return [LiveSink(row.sink, int(row.workers), float(row.ago)) for row in rows]


# Due rows that every live sink has (with none live: every due row, nothing to send) are
# done with, in one statement. A MATERIALIZED CTE: a LIMIT in an `IN (...)` may be run again
# by the plan and pick more rows.
_COVERED = text(
    f"""
    WITH live AS MATERIALIZED ({_LIVE_SINKS}),
    due AS MATERIALIZED (
        SELECT c.id FROM task_events AS c CROSS JOIN live
        WHERE c.state = 'pending' AND c.next_attempt_at <= clock_timestamp()
        AND live.sinks <@ c.delivered_to
        ORDER BY c.id LIMIT :batch FOR UPDATE OF c SKIP LOCKED
    )
    UPDATE task_events AS t
    SET state = 'delivered', delivered_at = clock_timestamp(), last_error = NULL
    FROM due WHERE t.id = due.id
    """  # noqa: S608  (constant text: no value is formatted in)
).bindparams(bindparam("batch", type_=Integer), bindparam("ttl", type_=Float))


def covered(conn: Connection, batch: int) -> int:
    """Mark up to `batch` due rows delivered that every live sink has (no sink live: every
    due row, nothing to send); returns how many."""
    return int(conn.execute(_COVERED, {"batch": batch, "ttl": SINK_REGISTRATION_SECONDS}).rowcount)


def _held(row_id: int, attempts: int) -> Any:
    """The row still carries the lease that counted `attempts`."""
    return and_(_E.id == row_id, _E.attempts == attempts, _E.state == PENDING)


# Rows every sink of this worker accepted: delivered when every live sink has them, else
# their sinks recorded, due again at once for the other workers' sinks, the attempt not
# counted (it failed nowhere).
_DELIVERED = text(
    f"""
    WITH live AS MATERIALIZED ({_LIVE_SINKS})
    UPDATE task_events AS t
    SET delivered_to = r.accepted,
        state = CASE WHEN live.sinks <@ r.accepted THEN 'delivered' ELSE 'pending' END,
        delivered_at = CASE WHEN live.sinks <@ r.accepted THEN clock_timestamp() END,
        attempts = t.attempts - CASE WHEN live.sinks <@ r.accepted THEN 0 ELSE 1 END,
        next_attempt_at = CASE WHEN live.sinks <@ r.accepted
            THEN t.next_attempt_at ELSE clock_timestamp() END,
        last_error = NULL
    FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS r(id bigint, attempts integer, accepted text[])
    CROSS JOIN live
    WHERE t.id = r.id AND t.attempts = r.attempts AND t.state = 'pending'
    """  # noqa: S608  (constant text: no value is formatted in)
).bindparams(bindparam("rows", type_=Text), bindparam("ttl", type_=Float))


def delivered(conn: Connection, leased: Sequence[tuple[int, int, Sequence[str]]]) -> None:
    """Rows (id, attempts of their lease, the sinks that have them) this worker's sinks all
    accepted: delivered once every live sink has them."""
    if leased:
        rows = [{"id": i, "attempts": a, "accepted": list(sinks)} for i, a, sinks in leased]
        conn.execute(_DELIVERED, {"rows": json.dumps(rows), "ttl": SINK_REGISTRATION_SECONDS})


def failed(
    conn: Connection,
    row_id: int,
    *,
    attempts: int,
    accepted_by: Sequence[str],
    error: str,
    retry_in: timedelta | None,
) -> None:
    """A failed attempt of the lease that counted `attempts`: retry after `retry_in`, or dead."""
    values: dict[str, Any] = {"delivered_to": list(accepted_by), "last_error": error[:1000]}
    if retry_in is None:
        values["state"] = DEAD
    else:
        values["next_attempt_at"] = func.clock_timestamp() + retry_in
    conn.execute(update(TaskEvent).where(_held(row_id, attempts)).values(**values))


def deferred(conn: Connection, row_id: int, *, attempts: int, accepted_by: Sequence[str]) -> None:
    """An attempt that left a sink uncalled (full) and none failed: acceptances kept, the
    attempt uncounted, due again at once."""
    conn.execute(
        update(TaskEvent)
        .where(_held(row_id, attempts))
        .values(
            delivered_to=list(accepted_by),
            attempts=_E.attempts - 1,
            next_attempt_at=func.clock_timestamp(),
        )
    )


@dataclass(frozen=True)
class Backlog:
    """Both queues' pending and dead rows, and the outbox's oldest pending event."""

    pending: int
    oldest_pending: datetime | None
    dead: int
    now: datetime
    deliveries_pending: int = 0
    deliveries_dead: int = 0

    @property
    def lag_seconds(self) -> float:
        if self.oldest_pending is None:
            return 0.0
        return max(0.0, (self.now - self.oldest_pending).total_seconds())


# Each part reads only its partial index, never the delivered rows kept for retention: this
# runs on every poll of every worker.
_PENDING = _E.state == PENDING
_D = ReminderDelivery.__table__.c  # type: ignore[attr-defined]
_BACKLOG = select(
    select(func.count()).where(_PENDING).scalar_subquery(),
    select(func.min(_E.occurred_at)).where(_PENDING).scalar_subquery(),
    select(func.count()).where(_E.state == DEAD).scalar_subquery(),
    func.clock_timestamp(),
    select(func.count()).where(_D.state == "pending").scalar_subquery(),
    select(func.count()).where(_D.state == "dead").scalar_subquery(),
)


def backlog(conn: Connection) -> Backlog:
    row = conn.execute(_BACKLOG).one()
    return Backlog(*row)


def dead_letters(conn: Connection, limit: int) -> Sequence[Any]:
    shown = (_E.id, _E.event_id, _E.type, _E.task_id, _E.list_id, _E.user_id, _E.attempts)
    query = select(*shown, _E.occurred_at, _E.last_error).where(_E.state == DEAD)
    return conn.execute(query.order_by(_E.id).limit(limit)).all()


def requeue(conn: Connection, ids: Sequence[int] | None) -> int:
    """Dead records (those named, or all) back to pending, with fresh attempts."""
    chosen = _E.state == DEAD if ids is None else and_(_E.state == DEAD, _E.id.in_(ids))
    result = conn.execute(
        update(TaskEvent)
        .where(chosen)
        .values(state=PENDING, attempts=0, next_attempt_at=func.clock_timestamp())
    )
    return int(result.rowcount)


class OutboxQueue:
    """`task_events` to every sink that has not accepted a row yet (`delivered_to`). `ready`:
    the sinks with room for a call now (`Fanout.ready`; None: no sink at all); `sinks`: this
    worker's, registered as `worker`'s while it leases."""

    name = "outbox"

    def __init__(
        self,
        max_attempts: int,
        ready: Callable[[], list[str] | None] = lambda: None,
        *,
        sinks: Sequence[str] = (),
        worker: uuid.UUID | None = None,
    ) -> None:
        self._max_attempts = max_attempts
        self._ready = ready
        self.sinks = list(sinks)
        self.worker = worker or uuid.uuid4()
        self._register_at = -float("inf")  # monotonic: at the first lease
        self._others: set[str] = set()  # other workers' sinks, as last logged
        self._sweep_at = self._exhaust_at = -float("inf")

    def exchange(
        self, db: Engine, settled: Sequence[Settled], lease_rows: int, seconds: float
    ) -> tuple[list[ClaimedRow], int]:
        if not settled and not lease_rows:
            return [], 0
        now = time.monotonic()
        with db.begin() as conn:
            if self.sinks and now >= self._register_at:
                register(conn, self.worker, self.sinks)
                self._register_at = now + REGISTER_EVERY_SECONDS
                self._say_others(conn)
            done = [
                (s.row.id, s.row.attempts, s.outcome.accepted)
                for s in settled
                if s.kind == engine.DELIVERED
            ]
            delivered(conn, done)
            for s in settled:
                if s.kind in (engine.RETRY, engine.DEAD):
                    failed(
                        conn,
                        s.row.id,
                        attempts=s.row.attempts,
                        accepted_by=s.outcome.accepted,
                        error=s.outcome.error,
                        retry_in=None if s.retry_in is None else timedelta(seconds=s.retry_in),
                    )
                elif s.kind == engine.DEFERRED:
                    deferred(
                        conn, s.row.id, attempts=s.row.attempts, accepted_by=s.outcome.accepted
                    )
            if not lease_rows:
                return [], 0
            ready = self._ready()
            swept = 0
            if now >= self._sweep_at:
                swept = covered(conn, lease_rows)
                self._sweep_at = now if swept else now + SWEEP_EVERY_SECONDS
            if ready is None:
                return [], swept
            # The lease never takes such rows; made dead (for `events dead`) every few seconds:
            # the statement reads every pending row.
            if now >= self._exhaust_at:
                self._exhaust_at = now + SWEEP_EVERY_SECONDS
                if exhausted(conn, self._max_attempts):
                    logger.warning("%s: events out of attempts with no outcome: dead", self.name)
            rows = lease(conn, lease_rows, seconds, ready, self._max_attempts)
        return rows, len(rows)

    def _say_others(self, conn: Connection) -> None:
        """Log, when they change, the live sinks this worker does not have: its events are
        delivered only once those have them too (sent by the workers that do)."""
        others = {sink.name for sink in live_sinks(conn)} - set(self.sinks)
        if others != self._others:
            self._others = others
            logger.info(
                "outbox: sinks of other workers, which events wait for too: %s",
                ", ".join(sorted(others)) or "none",
            )

    def observe(self, metrics: WorkerMetrics, settled: Settled) -> None:
        if settled.kind == engine.DEAD:
            metrics.dead_lettered.labels(settled.outcome.sink or "send").inc()

    def describe(self, row: ClaimedRow) -> str:
        return f"event {row.event_id}"
