"""Recurring tasks' schedule in the task service's writes (`plan_schedule`: a create's, `created`; a
change's over the stored one, `replanned`) and a completed task's next occurrence (`SUCCESSOR`,
`successor`); the rule and zone logic is backend/recurrence.py."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, cast

from pydantic import TypeAdapter
from sqlalchemy import Integer, bindparam, column, func, select, table, true
from sqlalchemy import cast as sql_cast
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import insert as pg_insert

from backend.db.scope import OWNER, Bound, Then
from backend.errors import InvalidRequest
from backend.models import Task, TaskCreate, TaskRow, TaskUpdate
from backend.models.task import due_value, reminders_json
from backend.models.task_fields import COPIED_TO_SUCCESSOR
from backend.recurrence import HORIZON_YEARS, Schedule, day_start, shift_reminder
from backend.services.statements.access import Action, may
from backend.services.statements.task_tree import Placement, Sent
from backend.services.tasks.task_statements import AS_SENT, PLANNED

_T = Task.__table__.c  # type: ignore[attr-defined]

# The next occurrence of a recurring task completed in this transaction, due at its `next_due_date`;
# `previous_task_id` is unique, so a second completion (a replay, a race) inserts nothing.
_SUCCESSOR_OF = bindparam("previous_id", type_=Integer)
# Moved by the schedule rather than copied: the due date becomes the stored next one.
_MOVED = ("due_date", "next_due_date", "reminders", "previous_task_id", "all_day")


# The space of the task it follows, read as a placement reads its space (`task_tree._space`).
_PREVIOUS = Task.__table__.alias("previous")  # type: ignore[attr-defined]
_SPACE = func.coalesce(
    select(_PREVIOUS.c.user_id)
    .where(_PREVIOUS.c.id == _SUCCESSOR_OF, may(_PREVIOUS, Action.TASK_WRITE))
    .scalar_subquery(),
    bindparam(OWNER),
)


def goes_on(task: Any) -> bool:
    """Whether completing `task` inserts a next occurrence (its series goes on)."""
    return (
        task.recurrence is not None
        and task.next_due_date is not None
        and task.series_start is not None
        and task.due_date is not None
    )


def _successor(source: Any, *conditions: Any) -> Any:
    """The next occurrence's INSERT, its columns read from `source`'s row `:previous_id`."""
    c = source.c
    return (
        pg_insert(Task)
        .from_select(
            ["user_id", *COPIED_TO_SUCCESSOR, *_MOVED],
            select(
                _SPACE,
                *(c[name] for name in COPIED_TO_SUCCESSOR),
                func.coalesce(
                    sql_cast(bindparam("successor_due", type_=_T.due_date.type), _T.due_date.type),
                    c.next_due_date,
                ),
                sql_cast(
                    bindparam("following_due_date", type_=_T.next_due_date.type),
                    _T.next_due_date.type,
                ),
                bindparam("reminders", type_=JSONB),  # sent as `%(reminders)s::JSONB`
                c.id,
                c.all_day,  # a series due on days stays on days
            ).where(
                c.id == _SUCCESSOR_OF,
                c.completed == true(),
                c.completed_at == func.now(),
                c.recurrence.is_not(None),
                c.next_due_date.is_not(None),
                *conditions,
            ),
        )
        .on_conflict_do_nothing(
            index_elements=["previous_task_id"], index_where=_T.previous_task_id.is_not(None)
        )
    )


# From the stored row (a later statement), or the write's rows (`w`: the write's own statement).
SUCCESSOR = _successor(
    Task.__table__,  # type: ignore[attr-defined]
    may(Task.__table__, Action.TASK_WRITE),  # type: ignore[attr-defined]
)
_WRITTEN = table(
    "w",
    *(
        column(name, _T[name].type)
        for name in (
            "id",
            *COPIED_TO_SUCCESSOR,
            "all_day",
            "next_due_date",
            "completed",
            "completed_at",
        )
        if name != "recurrence"
    ),
    column("recurrence", _T.recurrence.type),
)
SUCCESSOR_FROM_WRITE = _successor(_WRITTEN).returning(_T.id, _T.list_id)
# The next occurrence as the completing write's first `then` inserted it (`t0`).
SUCCEEDED = table("t0", column("id", _T.id.type), column("list_id", _T.list_id.type))
# The fields that make up a task's schedule: writing any of them re-plans it.
SCHEDULE_FIELDS = {"recurrence", "time_zone", "due_date", "reminders"}


@dataclass(frozen=True)
class Planned:
    """What a write of `values` leaves of the stored task `id`: what `successor` computes from."""

    id: int
    due_date: datetime | None
    values: dict[str, Any]

    def __getattr__(self, name: str) -> Any:
        return self.values[name]


def plan_schedule(
    recurrence: str | None,
    time_zone: str,
    due: datetime | date | None,
    reminders: list[dict[str, Any]],
    *,
    current: TaskRow | None = None,
) -> dict[str, Any]:
    """The schedule columns for these fields: a new rule or zone restarts the series."""
    if due is None and any("minutes_before_due" in r for r in reminders):
        raise InvalidRequest.at("body.reminders", "A minutes_before_due reminder needs a due_date")
    all_day = not isinstance(due, datetime | None)
    due_date = due if isinstance(due, datetime | None) else day_start(due, time_zone)
    values: dict[str, Any] = dict.fromkeys(PLANNED)
    values.update(
        due_date=due_date,
        all_day=all_day,
        recurrence=recurrence,
        time_zone=time_zone,
        reminders=reminders,
    )
    if recurrence is None:
        return values
    if due_date is None:
        raise InvalidRequest.at(
            "body.due_date", "A recurring task needs a due_date: its first occurrence"
        )
    if (
        current is not None
        and current.series_start is not None
        and current.recurrence == recurrence
        and current.time_zone == time_zone
        and current.all_day == all_day
    ):
        start, restart = current.series_start, False
    else:
        start, restart = due_date, True
    next_due = Schedule.of(recurrence, time_zone, start).next_after(due_date)
    if restart and next_due is None:
        raise InvalidRequest.at(
            "body.recurrence",
            "The rule gives no occurrence after the due date (none within "
            f"{HORIZON_YEARS} years, or COUNT/UNTIL end the series at once)",
        )
    series_id = current.series_id if current is not None else None
    values.update(
        series_id=series_id or str(uuid.uuid4()), series_start=start, next_due_date=next_due
    )
    return values


def moved_reminders(
    reminders: list[dict[str, Any]], old_due: datetime, new_due: datetime
) -> list[dict[str, Any]]:
    """A successor's reminders: each `at` moved as the due date moved (dropped if out of range)."""
    moved: list[dict[str, Any]] = []
    for reminder in reminders:
        if "at" in reminder:
            at = shift_reminder(datetime.fromisoformat(reminder["at"]), old_due, new_due)
            if at is None:
                continue
            reminder = {"at": cast(str, _INSTANT.dump_python(at, mode="json"))}
        moved.append(reminder)
    return moved


# An instant as `reminders_json` stores it (pydantic's JSON form of a UTC datetime).
_INSTANT = TypeAdapter(datetime)


def not_recurring() -> InvalidRequest:
    return InvalidRequest.at(
        "body.recurrence",
        "A subtask does not recur: only top-level tasks have a recurrence (a recurring "
        "task's subtasks come back with each occurrence)",
    )


# A due date as the API takes it: a day or an instant.
Due = datetime | date | None


def created(data: TaskCreate) -> dict[str, Any]:
    """What a create writes of `data`: its fields as sent and its schedule planned."""
    schedule = plan_schedule(
        data.recurrence, str(data.time_zone), data.due_date, reminders_json(data.reminders)
    )
    return {**data.model_dump(include=AS_SENT), "completed": data.completed, **schedule}


def replanned(
    data: TaskUpdate, values: dict[str, Any], current: TaskRow, placement: Placement | None
) -> dict[str, Any]:
    """`values` with the sent schedule over the stored one; a rule under a parent refused."""
    sent = data.model_fields_set & SCHEDULE_FIELDS
    plan = (
        data.recurrence if "recurrence" in sent else current.recurrence,
        str(data.time_zone) if "time_zone" in sent else current.time_zone,
        data.due_date
        if "due_date" in sent
        else due_value(current.due_date, current.all_day, current.time_zone),
        reminders_json(data.reminders or []) if "reminders" in sent else current.reminders,
    )
    parent = current.parent_id is not None
    if placement is not None and placement.parent is not Sent.omitted:
        parent = placement.parent is Sent.id
    if plan[0] is not None and parent:
        raise not_recurring()
    return {**values, **plan_schedule(*plan, current=current)}


def successor(
    task: TaskRow | Planned, *, due: Due = None, reminders: list[Any] | None = None
) -> Then | None:
    """The next occurrence of `task` if its series goes on, inserted only if this transaction
    completed it, reminders moved with the due date (specs/statements.md)."""
    if not goes_on(task):
        return None
    start, next_due = cast(datetime, task.series_start), cast(datetime, task.next_due_date)
    rule = cast(str, task.recurrence)
    moved_to = None
    if due is not None:
        moved_to = due if isinstance(due, datetime) else day_start(due, task.time_zone)
    # Shifted to the next due date, as the database shifts its subtasks' and members' reminders.
    if reminders is None:
        due_at = cast(datetime, task.due_date)
        reminders = moved_reminders(task.reminders, due_at, moved_to or next_due)
    if moved_to is not None:
        planned = plan_schedule(
            rule, task.time_zone, moved_to, reminders, current=cast(TaskRow, task)
        )
        following_due = planned["next_due_date"]
    else:
        following_due = Schedule.of(rule, task.time_zone, start).next_after(next_due)
    values = {
        "previous_id": task.id,
        "successor_due": moved_to,
        "following_due_date": following_due,
        "reminders": reminders,
    }
    return Then(Bound(SUCCESSOR_FROM_WRITE, values), Bound(SUCCESSOR, values))
