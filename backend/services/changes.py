"""The change feed: one caller's task changes in commit order, deletions included.

Rows come from `task_events`, which a trigger on `tasks` fills in the transaction of each
change (migration 0008). Within one user, `id` order is commit order, so a position (the last
`id` a client has seen) never skips a change that commits later.

Records are pruned past retention (`prune`); per user, `task_events_pruned` keeps the highest
id deleted, updated by the statement that deletes. A position below it may have missed
changes: the feed refuses it (410) rather than answer with a gap.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, cast

from sqlalchemy import Engine, Integer, and_, bindparam, func, select, text, true
from sqlalchemy.sql.elements import ColumnElement

from backend.db.scope import Scoped, owned
from backend.errors import CursorExpired
from backend.models import TaskEvent, TaskEventsPruned
from backend.models.task_event import REMINDER

_E = TaskEvent.__table__.c  # type: ignore[attr-defined]
_P = TaskEventsPruned.__table__.c  # type: ignore[attr-defined]


class ChangeRow(Protocol):
    @property
    def id(self) -> int: ...
    @property
    def event_id(self) -> Any: ...  # uuid.UUID
    @property
    def type(self) -> str: ...
    @property
    def task_id(self) -> int: ...
    @property
    def task(self) -> dict[str, Any] | None: ...
    @property
    def occurred_at(self) -> datetime: ...


@dataclass(frozen=True)
class ChangePage:
    changes: Sequence[ChangeRow]
    # The position to continue from: the last change returned (or the one given).
    next: int
    has_more: bool


_AFTER = bindparam("after", type_=Integer)
_LIMIT = bindparam("limit", type_=Integer)
_COLUMNS = (_E.id, _E.event_id, _E.type, _E.task_id, _E.task, _E.occurred_at)
# Reminder events and list events share the outbox but are no task changes: the feed and its
# positions skip them.
_CHANGES = and_(_E.type != REMINDER, _E.task_id.is_not(None))
_PRUNED = owned(select(_P.through_id), _P.user_id)
# One statement, one snapshot: how far pruning went (0 before any), and the page after
# `after` (NULL: from where pruning left off), outer-joined so an empty page still has a row.
_THROUGH = owned(
    select(func.coalesce(func.max(_P.through_id), 0).label("through")), _P.user_id
).subquery("pruned")
_ROWS = (
    owned(
        select(*_COLUMNS).where(_E.id > func.coalesce(_AFTER, _THROUGH.c.through), _CHANGES),
        _E.user_id,
    )
    .order_by(_E.id)
    .limit(_LIMIT)
    .lateral("page")
)
_PAGE = (
    select(_THROUGH.c.through, *_ROWS.c)
    .select_from(_THROUGH.outerjoin(_ROWS, true()))
    .order_by(_ROWS.c.id)
)


def latest_position() -> ColumnElement[int]:
    """The caller's position now: their latest change id, or how far pruning went if that is
    further (0 before any). An expression over scalar subqueries: a listing selects it in its
    own statement, so the listing and the position come from one snapshot."""
    latest = owned(select(func.max(_E.id)).where(_CHANGES), _E.user_id).scalar_subquery()
    pruned = _PRUNED.scalar_subquery()
    return cast(ColumnElement[int], func.greatest(latest, pruned, 0))


class ChangeFeed(Scoped):
    def page(self, after: int | None, limit: int) -> ChangePage:
        """Up to `limit` changes after position `after` (from the oldest retained without
        one). Raises `CursorExpired` when changes after `after` have been pruned."""
        rows = self._read(_PAGE, after=after, limit=limit + 1).all()
        through = int(rows[0].through)
        # Read in the page's snapshot: a prune that removed part of it is seen.
        if after is not None and through > after:
            raise CursorExpired()
        # What pruning left is where the feed starts.
        start = through if after is None else after
        rows = [row for row in rows if row.id is not None]
        changes = cast(Sequence[ChangeRow], rows[:limit])
        return ChangePage(
            changes=changes,
            next=changes[-1].id if changes else start,
            has_more=len(rows) > limit,
        )


# One statement: the deletion and the record of how far it went commit together.
_PRUNE = """
WITH gone AS (
    DELETE FROM task_events WHERE id IN (
        SELECT id FROM task_events
        WHERE occurred_at < now() - make_interval(hours => :hours) {kept}
        ORDER BY occurred_at
        LIMIT :batch
    )
    RETURNING user_id, id, type, task_id
), recorded AS (
    INSERT INTO task_events_pruned (user_id, through_id)
    SELECT user_id, max(id) FROM gone WHERE type <> 'reminder' AND task_id IS NOT NULL
    GROUP BY user_id
    ON CONFLICT (user_id) DO UPDATE
        SET through_id = greatest(task_events_pruned.through_id, excluded.through_id)
)
SELECT count(*) FROM gone
"""
# Only delivered (or dead) changes below the user's first pending one: what a user's feed
# retains is always every change after their `through_id`, with no hole.
_PRUNE_DELIVERED = text(
    _PRUNE.format(
        kept="""AND state <> 'pending' AND NOT EXISTS (
            SELECT 1 FROM task_events AS earlier
            WHERE earlier.user_id = task_events.user_id
              AND earlier.state = 'pending' AND earlier.id < task_events.id)"""
    )
)
_PRUNE_ANY = text(_PRUNE.format(kept=""))


def prune(engine: Engine, retention_hours: int, *, undelivered: bool, batch: int = 1000) -> int:
    """Delete the changes older than the retention (and, unless `undelivered`, only those
    delivered or dead), in batches of their own transaction. Returns how many."""
    statement = _PRUNE_ANY if undelivered else _PRUNE_DELIVERED
    total = 0
    while True:
        with engine.begin() as conn:
            deleted = int(
                conn.execute(statement, {"hours": retention_hours, "batch": batch}).scalar_one()
            )
        total += deleted
        if deleted < batch:
            return total
