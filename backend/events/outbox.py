"""The outbox queue of the delivery engine (backend/events/engine.py): every statement on
`task_events` that delivery runs (the trigger writes the rows; the change feed reads them in
backend/services/changes.py).

Lease, send, record (specs/events.md, "Delivery"): the engine leases due rows (FOR UPDATE
SKIP LOCKED): each row's `next_attempt_at` moves to the lease's end and its `attempts` counts
the attempt. The sends run with no transaction and no connection held. The outcomes are
recorded in the short transaction of the next lease, each only while the row still carries
its lease (`attempts` unchanged, still pending): a row whose lease ended and that another
worker leased again is that worker's. A worker that dies mid-send leaves its rows leased;
they are leased again when the lease ends (at least once, the repeat with the same event id).
Only the first pending record of each task (its changes and comments) and of each list (its
own, membership and invitation events) is leasable, and a leased or retrying record is still
pending, so a task's events go out in order even with many workers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol, cast

from sqlalchemy import (
    Connection,
    Engine,
    Float,
    Integer,
    and_,
    bindparam,
    exists,
    func,
    select,
    tuple_,
    update,
)
from sqlalchemy.orm import aliased

from backend.events import engine
from backend.events.engine import Settled
from backend.events.health import WorkerMetrics
from backend.events.sinks import EventRow
from backend.models import DeliveryState, TaskEvent
from backend.models.notification_settings import ReminderDelivery

_E = TaskEvent.__table__.c  # type: ignore[attr-defined]
_EARLIER = aliased(TaskEvent.__table__)  # type: ignore[attr-defined]
PENDING, DELIVERED, DEAD = DeliveryState.pending, DeliveryState.delivered, DeliveryState.dead

_C = aliased(TaskEvent.__table__, name="candidate")  # type: ignore[attr-defined]


def _leasing(batch: int, seconds: float) -> Any:
    """Due rows, oldest first, each the first pending one of its task (or its list's own),
    leased for `seconds` (the statement's shape is the same for any values: compiled once)."""
    due = (
        select(_C.c.id)
        .where(
            _C.c.state == PENDING,
            _C.c.next_attempt_at <= func.clock_timestamp(),
            ~exists().where(
                _EARLIER.c.task_id == _C.c.task_id,
                _EARLIER.c.state == PENDING,
                _EARLIER.c.id < _C.c.id,
            ),
            # A list's own events (the list, its members, invitations), in order: they name no
            # task (a task's changes carry their list too, and keep the task's order only).
            ~exists().where(
                _C.c.task_id.is_(None),
                _EARLIER.c.list_id == _C.c.list_id,
                _EARLIER.c.task_id.is_(None),
                _EARLIER.c.state == PENDING,
                _EARLIER.c.id < _C.c.id,
            ),
        )
        .order_by(_C.c.id)
        .limit(bindparam("batch", batch, type_=Integer))
        .with_for_update(skip_locked=True)
    )
    return (
        update(TaskEvent)
        .where(_E.id.in_(due))
        .values(
            next_attempt_at=func.clock_timestamp()
            + func.make_interval(0, 0, 0, 0, 0, 0, bindparam("lease", seconds, type_=Float)),
            attempts=_E.attempts + 1,
        )
        .returning(
            _E.id,
            _E.event_id,
            _E.user_id,
            _E.task_id,
            _E.list_id,
            _E.type,
            _E.task,
            _E.list,
            _E.object,
            _E.actor_id,
            _E.changes,
            _E.occurred_at,
            _E.attempts,
            _E.delivered_to,
        )
    )


class ClaimedRow(EventRow, Protocol):
    @property
    def attempts(self) -> int: ...
    @property
    def delivered_to(self) -> list[str]: ...


def lease(conn: Connection, batch: int, seconds: float) -> list[ClaimedRow]:
    """Lease up to `batch` due rows for `seconds` (`attempts` counts this attempt); the
    caller commits at once. Oldest first."""
    rows = conn.execute(_leasing(batch, seconds)).all()
    return sorted(cast(list[ClaimedRow], rows), key=lambda row: row.id)


def _held(row_id: int, attempts: int) -> Any:
    """The row still carries the lease that counted `attempts`."""
    return and_(_E.id == row_id, _E.attempts == attempts, _E.state == PENDING)


def delivered(conn: Connection, leased: Sequence[tuple[int, int]]) -> None:
    """Rows (id, attempts of their lease) every sink accepted."""
    if leased:
        conn.execute(
            update(TaskEvent)
            .where(_E.state == PENDING, tuple_(_E.id, _E.attempts).in_(list(leased)))
            .values(state=DELIVERED, delivered_at=func.clock_timestamp(), last_error=None)
        )


def failed(
    conn: Connection,
    row_id: int,
    *,
    attempts: int,
    accepted_by: Sequence[str],
    error: str,
    retry_in: timedelta | None,
) -> None:
    """Record a failed attempt (the lease that counted `attempts`): retry after `retry_in`,
    or dead-letter it (None)."""
    values: dict[str, Any] = {
        "delivered_to": list(accepted_by),
        "last_error": error[:1000],
    }
    if retry_in is None:
        values["state"] = DEAD
    else:
        values["next_attempt_at"] = func.clock_timestamp() + retry_in
    conn.execute(update(TaskEvent).where(_held(row_id, attempts)).values(**values))


@dataclass(frozen=True)
class Backlog:
    """Both queues' backlog: the outbox's pending and dead events and the age of the oldest
    pending one; reminder deliveries' (pushes, emails, confirmations) pending and dead."""

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


# Each part reads only its partial index (and the pending rows' heap for their age), never
# the delivered rows kept for the retention period: this runs on every poll of every worker.
# `reminder_deliveries` holds only what is not yet delivered (a delivered row is deleted).
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
    return conn.execute(
        select(
            _E.id,
            _E.event_id,
            _E.type,
            _E.task_id,
            _E.list_id,
            _E.user_id,
            _E.attempts,
            _E.occurred_at,
            _E.last_error,
        )
        .where(_E.state == DEAD)
        .order_by(_E.id)
        .limit(limit)
    ).all()


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
    """`task_events` to the configured sinks (Dapr, webhooks): one row, every sink that has
    not accepted it yet (`delivered_to`), in order per task."""

    name = "outbox"

    def exchange(
        self, db: Engine, settled: Sequence[Settled], lease_rows: int, seconds: float
    ) -> tuple[list[ClaimedRow], int]:
        if not settled and not lease_rows:
            return [], 0
        with db.begin() as conn:
            done = [(s.row.id, s.row.attempts) for s in settled if s.kind == engine.DELIVERED]
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
            rows = lease(conn, lease_rows, seconds) if lease_rows else []
        return rows, len(rows)

    def observe(self, metrics: WorkerMetrics, settled: Settled) -> None:
        if settled.kind == engine.DEAD:
            metrics.dead_lettered.labels(settled.outcome.sink or "send").inc()

    def describe(self, row: ClaimedRow) -> str:
        return f"event {row.event_id}"
