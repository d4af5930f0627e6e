"""Every statement on `task_events` that delivery runs (the trigger writes the rows; the
change feed reads them in backend/services/changes.py).

A worker claims a batch with FOR UPDATE SKIP LOCKED in an open transaction, delivers it and
records the outcome in the same transaction: two workers never hold the same record, and a
worker that dies mid-batch loses its connection, so PostgreSQL rolls the claim back and the
records are pending again (delivered again later: at least once, with the same event id).
Only the first pending record of each task (its changes and comments) and of each list (its
own, membership and invitation events) is claimable, so they go out in order even with many
workers.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol, cast

from sqlalchemy import Connection, Integer, and_, bindparam, exists, func, select, update
from sqlalchemy.orm import aliased

from backend.config import Settings
from backend.events.sinks import EventRow
from backend.models import DeliveryState, TaskEvent

_E = TaskEvent.__table__.c  # type: ignore[attr-defined]
_EARLIER = aliased(TaskEvent.__table__)  # type: ignore[attr-defined]
PENDING, DELIVERED, DEAD = DeliveryState.pending, DeliveryState.delivered, DeliveryState.dead

_CLAIM = (
    select(
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
    .where(
        _E.state == PENDING,
        _E.next_attempt_at <= func.clock_timestamp(),
        ~exists().where(
            _EARLIER.c.task_id == _E.task_id, _EARLIER.c.state == PENDING, _EARLIER.c.id < _E.id
        ),
        # A list's own events (the list, its members, invitations), in order: they name no
        # task (a task's changes carry their list too, and keep the task's order only).
        ~exists().where(
            _E.task_id.is_(None),
            _EARLIER.c.list_id == _E.list_id,
            _EARLIER.c.task_id.is_(None),
            _EARLIER.c.state == PENDING,
            _EARLIER.c.id < _E.id,
        ),
    )
    .order_by(_E.id)
    .limit(bindparam("batch", type_=Integer))
    .with_for_update(skip_locked=True)
)


class ClaimedRow(EventRow, Protocol):
    @property
    def attempts(self) -> int: ...
    @property
    def delivered_to(self) -> list[str]: ...


def claim(conn: Connection, batch: int) -> Sequence[ClaimedRow]:
    return cast(Sequence[ClaimedRow], conn.execute(_CLAIM, {"batch": batch}).all())


def delivered(conn: Connection, ids: Sequence[int]) -> None:
    if ids:
        conn.execute(
            update(TaskEvent)
            .where(_E.id.in_(ids))
            .values(state=DELIVERED, delivered_at=func.clock_timestamp(), last_error=None)
        )


def failed(
    conn: Connection,
    row_id: int,
    *,
    accepted_by: Sequence[str],
    error: str,
    retry_in: timedelta | None,
) -> None:
    """Record a failed attempt: retry after `retry_in`, or dead-letter it (None)."""
    values: dict[str, Any] = {
        "attempts": _E.attempts + 1,
        "delivered_to": list(accepted_by),
        "last_error": error[:1000],
    }
    if retry_in is None:
        values["state"] = DEAD
    else:
        values["next_attempt_at"] = func.clock_timestamp() + retry_in
    conn.execute(update(TaskEvent).where(_E.id == row_id).values(**values))


@dataclass(frozen=True)
class Backlog:
    pending: int
    oldest_pending: datetime | None
    dead: int
    now: datetime

    @property
    def lag_seconds(self) -> float:
        if self.oldest_pending is None:
            return 0.0
        return max(0.0, (self.now - self.oldest_pending).total_seconds())


# Each part reads only its partial index (and the pending rows' heap for their age), never
# the delivered rows kept for the retention period: this runs on every poll of every worker.
_PENDING = _E.state == PENDING
_BACKLOG = select(
    select(func.count()).where(_PENDING).scalar_subquery(),
    select(func.min(_E.occurred_at)).where(_PENDING).scalar_subquery(),
    select(func.count()).where(_E.state == DEAD).scalar_subquery(),
    func.clock_timestamp(),
)


def backlog(conn: Connection) -> Backlog:
    row = conn.execute(_BACKLOG).one()
    return Backlog(pending=row[0], oldest_pending=row[1], dead=row[2], now=row[3])


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


def backoff(settings: Settings, attempts: int) -> timedelta:
    """Full jitter: uniform in [0, min(max, base * 2^(attempts-1))]."""
    ceiling = min(
        settings.event_retry_max_seconds,
        settings.event_retry_base_seconds * 2 ** min(attempts - 1, 30),
    )
    return timedelta(seconds=random.uniform(0, ceiling))  # noqa: S311  (jitter, not secrecy)
