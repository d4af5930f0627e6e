"""A change over one task (`TaskService.update`, `set_completed`, `move`): the schedule planned over
the stored row, the placement, a series' next occurrence with the completion, and why a write
matched no row."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, NoReturn, cast

from sqlalchemy import bindparam
from sqlalchemy.sql.elements import ColumnElement

from backend.db.scope import Bound
from backend.errors import AppError, Conflict, InvalidRequest, NotFound, PreconditionFailed
from backend.models import Task, TaskCreate, TaskRow, TaskUpdate
from backend.models.task import due_value, reminders_json
from backend.recurrence import Schedule, day_start
from backend.services.sharing.lists import LIST_ROLE, unknown_list
from backend.services.statements.access import Action, denied, require
from backend.services.statements.rules import Rule, fires
from backend.services.statements.task_tree import Placement, Refusal, Sent, move_statement
from backend.services.statements.versions import Expected, version_in
from backend.services.tasks.task_placement import anchor_field, other_owner, refused, unassignable
from backend.services.tasks.task_schedule import (
    SCHEDULE_FIELDS,
    SUCCESSOR,
    SUCCESSOR_FROM_WRITE,
    Planned,
    goes_on,
    moved_reminders,
    not_recurring,
    plan_schedule,
)
from backend.services.tasks.task_sending import TaskSending, Then
from backend.services.tasks.task_statements import (
    ACCESS,
    AS_SENT,
    GET_WRITABLE,
    TASK_VIEW,
    move_statements,
    own_reminders,
    updating,
    written_view,
)

# A due date as the API takes it: a day or an instant.
Due = datetime | date | None

_T = Task.__table__.c  # type: ignore[attr-defined]

# How often a write reading the task first tries before it takes the change lock instead.
_COMPLETION_TRIES = 3

# What a refused placement named: the value bound, and the read of the caller's role in it.
_NAMED_BY: dict[Refusal, tuple[str, Any, str]] = {
    Refusal.task: ("task_id", ACCESS, "task_id"),
    Refusal.parent: ("parent_id", ACCESS, "task_id"),
    Refusal.anchor: ("anchor_id", ACCESS, "task_id"),
    Refusal.list: ("list_id", LIST_ROLE, "list_id"),
}
# What a change of one task may fire (`TaskService.update`, `write_over`).
CHANGE_RULES = (
    Rule.PLACE,
    Rule.COMPLETE_SUBTASKS,
    Rule.REOPEN_ANCESTORS,
    Rule.SUBTASK_COUNTS,
    Rule.REMINDERS,
    Rule.PRIVATE_REMINDERS,
    Rule.SUCCESSOR_SUBTASKS,
    Rule.CHILDREN_FOLLOW,
    Rule.UNASSIGN_ON_MOVE,
)


@dataclass(frozen=True)
class InList:
    """A change putting the task in the list an agent names (an MCP tool's `list_name`)."""

    change: TaskUpdate
    list_name: str


class TaskUpdating(TaskSending):
    """`TaskService`'s writes of one task (module docstring)."""

    def _move(
        self,
        task_id: int,
        placement: Placement,
        expected: Expected,
        values: dict[str, Any],
        *,
        last: bool = False,
        then: Then | tuple[Then, ...] | None = None,
        own: list[Any] | None = None,
    ) -> TaskRow:
        """The placement statement; `last`: it may commit; `own`: a member's reminders."""
        if task_id == placement.parent_id:
            raise self._named_itself(
                task_id, InvalidRequest.at("body.parent_id", "A task cannot be its own subtask")
            )
        checked = expected is not None
        thens = (then,) if isinstance(then, Then) else then or ()
        if own is not None:
            thens += (own_reminders(task_id, own),)
        if values or own is not None:
            view = TASK_VIEW
            if own is not None:  # a member reads back what it sent (`written_view`)
                sent = bindparam("sent_reminders", own, type_=_T.reminders.type)
                view = written_view(sent)
            statement, refusal = move_statement(
                placement.shape, checked=checked, values=values, returning=view
            )
        else:
            statement, refusal = move_statements(placement.shape, checked)
        binds = {"task_id": task_id, **placement.values()}
        if expected is not None:
            binds["versions"] = sorted(expected)
        rows = self._write_then(statement, thens, **binds, last=last)
        moved = next((row for row in rows if row.id == task_id), None)
        if moved is None:
            self._refuse(refusal, placement, binds)
        return cast(TaskRow, moved)

    def _named_itself(self, task_id: int, error: InvalidRequest) -> AppError:
        """A body naming the task itself: the write's 404 or 403 first, else `error`."""
        found = self._read(ACCESS, task_id=task_id).first()
        role = None if found is None else found[-1]
        return denied(role, Action.TASK_WRITE, NotFound("Task not found")) or error

    def _refuse(self, refusal: Any, placement: Placement, binds: dict[str, Any]) -> NoReturn:
        """A placement wrote nothing: read why (the failure path's own round trip) and say it."""
        reason = self._read(refusal, **binds).scalar()
        if reason is None:  # pragma: no cover - the write and the read share the lock
            raise Conflict("The task changed while it was being written; retry")
        raise self._refusal(Refusal(reason), placement, binds)

    def _refusal(self, reason: Refusal, placement: Placement, binds: dict[str, Any]) -> AppError:
        if reason is Refusal.list and placement.list is Sent.name:
            return unknown_list(self._read, placement.list_name or "", field="body.list")
        # A row the placement named and could not write, by the caller's role in it: none is 404,
        # below editor 403, a writable one in another owner's space the 422 of another owner's list.
        sent, statement, by = _NAMED_BY.get(reason, ("", None, ""))
        if binds.get(sent) is not None:
            role = self._read(statement, **{by: binds[sent]}).first()
            missing = NotFound("Task not found")
            below = None if role is None else denied(role[-1], Action.TASK_WRITE, missing)
            if below is not None:
                return below
            if role is not None and reason in (Refusal.parent, Refusal.anchor):
                field = "body.parent_id" if reason is Refusal.parent else anchor_field(placement)
                return other_owner(field)
        return refused(reason, placement)

    def _replan(
        self,
        task_id: int,
        data: TaskUpdate,
        values: dict[str, Any],
        expected: Expected = None,
        placement: Placement | None = None,
    ) -> TaskRow:
        """Write `values`, the schedule planned over the task read first: no lock while planning."""
        for attempt in range(_COMPLETION_TRIES + 1):
            # The last try reads under the change lock: nothing can change the task before its
            # write.
            locking = attempt == _COMPLETION_TRIES
            if locking and self._can_begin_again():
                self._begin_again()
            current = self._current(task_id, expected, commit=not locking)
            planned = replanned(data, values, current, placement)
            if self._can_begin_again():
                self._begin_again()
            # A completion: its next occurrence, from the row the write will leave, goes with it.
            then = None
            if planned.get("completed") is True:
                then = successor(Planned(task_id, planned["due_date"], planned))
            task = self.write_over(current, planned, placement, () if then is None else (then,))
            if task is not None:
                return task
        raise Conflict("The task changed while it was being written; retry")

    @fires(*CHANGE_RULES)
    def write_over(
        self,
        current: TaskRow,
        planned: dict[str, Any],
        placement: Placement | None,
        thens: tuple[Then, ...] = (),
    ) -> TaskRow | None:
        """Write `planned` at the version `current` was read at, committing; None: changed since."""
        read = frozenset({current.version})
        if placement is not None:
            # A member's reminders go in their own statement in the move's message (a trigger would
            # make them its own on every row of the subtree).
            own = None
            if current.user_id != self.user_id and "reminders" in planned:
                planned = dict(planned)
                own = planned.pop("reminders")
                if own == current.reminders:
                    own = None
            try:
                return self._move(
                    current.id, placement, read, planned, last=True, then=thens, own=own
                )
            except PreconditionFailed:
                return None
        version = _T.version == current.version
        return self._update_where(current.id, planned, version, last=True, then=thens)

    def _current(self, task_id: int, expected: Expected, *, commit: bool = True) -> TaskRow:
        """The stored task (404, or 412 for If-Match); `commit`: the read commits with the entry."""
        rows = (
            self._write(GET_WRITABLE, task_id=task_id, last=True)
            if commit
            else self._read(GET_WRITABLE, task_id=task_id)
        )
        if not rows:
            self._missing_or_stale(task_id, None)
        task = cast(TaskRow, rows[0])
        if expected is not None and task.version not in expected:
            raise PreconditionFailed()
        return task

    def _completing(self, task: TaskRow) -> TaskRow:
        """After a write that may complete `task`: the next occurrence if this transaction completed
        it (`completed_at == updated_at`), so other writes cost nothing."""
        if task.completed and task.completed_at == task.updated_at:
            then = successor(task)
            if then is not None:
                self._at_commit(then.alone)
        return task

    def _write_completing(
        self,
        task_id: int,
        statements: tuple[Any, Any, Any],
        values: dict[str, Any],
        expected: Expected = None,
    ) -> TaskRow:
        """Write `values` committing in its own message, so no lock is held across the network; a
        series' completion is read first, then written with its next occurrence
        (specs/statements.md)."""
        unless_series, read, series = statements
        for attempt in range(_COMPLETION_TRIES):
            if attempt:
                self._begin_again()
            outcome = self._write_or_stored(unless_series, read, task_id=task_id)
            if outcome is None:  # the transaction goes on after this write
                break
            task, written = outcome
            if task is None:
                self._missing_or_stale(task_id, expected)
            if written:
                return cast(TaskRow, task)
            self._begin_again()
            # Completes a series: its next occurrence is written with the completion.
            rows = self._write_then(
                series, successor(task), task_id=task_id, read_version=task.version, last=True
            )
            if rows:
                return cast(TaskRow, rows[0])
        if self._can_begin_again():
            self._begin_again()
        return self._completing(self._update(task_id, values, expected))

    def _update(
        self, task_id: int, values: dict[str, Any], expected: Expected = None, *, last: bool = False
    ) -> TaskRow:
        """One UPDATE ... RETURNING, If-Match's versions in its WHERE: 404 or 412 for no row."""
        statement = updating(
            values, *(() if expected is None else version_in(_T.version, expected))
        )
        rows = self._write(statement, task_id=task_id, last=last)
        if not rows:
            self._missing_or_stale(task_id, expected, assigning="assignees" in values)
        return cast(TaskRow, rows[0])

    def _missing_or_stale(
        self, task_id: int, expected: Expected, *, assigning: bool = False
    ) -> NoReturn:
        """A write matched no row: 404, 403 (below editor) or 412; only failures read again."""
        found = self._read(ACCESS, task_id=task_id).first()
        if found is None:
            raise NotFound("Task not found")
        version, role = tuple(found)
        require(role, Action.TASK_WRITE, NotFound("Task not found"))
        if expected is not None and version not in expected:
            raise PreconditionFailed()
        if assigning:
            raise unassignable()
        raise NotFound("Task not found")

    def _update_where(
        self,
        task_id: int,
        values: dict[str, Any],
        *conditions: ColumnElement[bool],
        last: bool = False,
        then: Then | tuple[Then, ...] | None = None,
    ) -> TaskRow | None:
        """One UPDATE ... RETURNING, None for no row; `last`: it may commit the request."""
        statement = updating(values, *conditions)
        rows = self._write_then(statement, then, task_id=task_id, last=last)
        return cast(TaskRow, rows[0]) if rows else None


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
