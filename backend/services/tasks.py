"""The task service: one user's tasks, read and written one task at a time (and in bulk).

Every statement is built with `owned_task`, which adds `tasks.user_id = :owner`, and run with
`Scoped._read`/`_write`, which bind `owner` to the service's caller (backend/db/scope.py). A
task that belongs to someone else is therefore indistinguishable from one that does not
exist. The connection is private: nothing outside this class runs a statement on `tasks`.
The parts it is built from, each one job: the statements (task_statements.py), where a write
puts a task (task_placement.py, task_tree.py), a recurring task's schedule
(task_schedule.py), bulk operations (task_bulk.py) and the listing (task_listing.py).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, NoReturn, cast

from sqlalchemy import bindparam, select
from sqlalchemy.sql.elements import ColumnElement

from backend.db.scope import Bound
from backend.errors import (
    AppError,
    Conflict,
    InvalidRequest,
    NotFound,
    PreconditionFailed,
    ServiceUnavailable,
)
from backend.models import Priority, Task, TaskCreate, TaskRow, TaskUpdate
from backend.models.task import due_value, reminders_json
from backend.models.task_ops import BulkOperation, CompleteOp, DeleteOp, MoveOp
from backend.recurrence import Schedule, day_start
from backend.services.access import Action, denied, require
from backend.services.lists import LIST_ROLE, unknown_list
from backend.services.rules import Rule, fires
from backend.services.task_bulk import LOCK_TASKS, bulk_placement, step, step_error, task_of
from backend.services.task_listing import (
    FilterChanged,
    Keyset,
    ListingShape,
    TaskListQuery,
)
from backend.services.task_placement import (
    anchor_field,
    other_owner,
    placement_of,
    refused,
    unassignable,
)
from backend.services.task_schedule import (
    SCHEDULE_FIELDS,
    SUCCESSOR,
    SUCCESSOR_FROM_WRITE,
    Planned,
    goes_on,
    moved_reminders,
    not_recurring,
    plan_schedule,
)
from backend.services.task_sending import StepRefused, TaskSending, Then
from backend.services.task_statements import (
    ACCESS,
    AS_SENT,
    COMPLETED_AT_SENT,
    COMPLETING,
    CREATE,
    DELETE,
    DELETE_COMPLETED,
    DELETE_NAMED,
    GET,
    GET_WRITABLE,
    NEXT_OCCURRENCE,
    PLACED,
    STATS,
    SUBTREE,
    TASK_VIEW,
    TOGGLING,
    completing,
    completion,
    create_statements,
    deleting,
    listing,
    listing_still_empty,
    listing_total,
    move_statements,
    own_reminders,
    owned_task,
    updating,
    written_view,
)
from backend.services.task_tree import Placement, Refusal, Sent, move_statement, spaces_lock
from backend.services.versions import Expected, version_in

# A due date as the API takes it: a day or an instant.
Due = datetime | date | None

_T = Task.__table__.c  # type: ignore[attr-defined]


@dataclass(frozen=True)
class TaskPage:
    items: Sequence[TaskRow]
    next: Keyset | None
    total: int | None
    # The caller's latest change id in the same snapshot as `items` (when asked for).
    feed_position: int | None = None


@dataclass(frozen=True)
class ListCounts:
    """One list's share of the caller's tasks (`list_id` None: the tasks in no list)."""

    list_id: int | None
    name: str | None
    total: int
    pending: int
    completed: int


@dataclass(frozen=True)
class TaskStats:
    total: int
    pending: int
    completed: int
    overdue: int
    by_priority: dict[str, int]
    by_list: list[ListCounts]


# Re-reads of an empty page that filled up meanwhile, before giving up (503).
_EMPTY_PAGE_ATTEMPTS = 5
# How often a write that reads the stored task first (a series' completion:
# `_write_completing`; a schedule change: `_replan`) reads and writes before it holds the
# caller's change lock instead: each try fails only when another write changed the task between.
_COMPLETION_TRIES = 3


# What a refused placement named (`_refusal`): the value the request bound, and the read of
# the caller's role in it (with the name that read binds it by).
_NAMED_BY: dict[Refusal, tuple[str, Any, str]] = {
    Refusal.task: ("task_id", ACCESS, "task_id"),
    Refusal.parent: ("parent_id", ACCESS, "task_id"),
    Refusal.anchor: ("anchor_id", ACCESS, "task_id"),
    Refusal.list: ("list_id", LIST_ROLE, "list_id"),
}


class TaskService(TaskSending):
    def list_page(self, query: TaskListQuery, *, feed_position: bool = False) -> TaskPage:
        """One page; with `feed_position`, also the caller's change-feed position as of the
        very snapshot the page was read in. The statement is the one built for the query's
        shape (`task_statements.listing`), the query's values bound to it."""
        shape = query.shape(feed_position=feed_position)
        values = query.values()
        rows = self._page_rows(shape, values)
        position = None
        if feed_position:
            rows, position = self._with_position(shape, values, rows)
        page = rows[: query.limit]
        next_keyset = None
        if len(rows) > query.limit:
            last = page[-1]
            next_keyset = Keyset(key=last.sort_key, id=int(last.id))  # type: ignore[attr-defined]
        total = None
        if query.include_total:
            count = listing_total(query.filters.shape())
            total = self._read(count, **query.filters.values()).scalar()
        return TaskPage(items=page, next=next_keyset, total=total, feed_position=position)

    def _with_position(
        self, shape: ListingShape, values: dict[str, Any], rows: Sequence[TaskRow]
    ) -> tuple[Sequence[TaskRow], int]:
        """The feed position read with `rows` (the page `shape`, which reads it). An empty page
        carries none, so the position is read with the proof that the page is still empty
        (one snapshot); a task that appeared in between means reading the page again."""
        for _ in range(_EMPTY_PAGE_ATTEMPTS):
            if rows:
                return rows, int(rows[0].feed_position)  # type: ignore[attr-defined]
            check = self._read(listing_still_empty(shape), **values)
            position, appeared = cast(tuple[int, bool], check.one())
            if not appeared:
                return rows, int(position)
            rows = self._page_rows(shape, values)
        raise ServiceUnavailable("The task list kept changing while it was read; retry")

    def _page_rows(self, shape: ListingShape, values: dict[str, Any]) -> Sequence[TaskRow]:
        """The page's rows; with a saved filter applied, once the filter still holds the query
        the page applied (else `FilterChanged`: its page is the filter's as it was)."""
        rows = cast(Sequence[Any], self._read(listing(shape), **values).all())
        if not shape.filters.saved:
            return rows
        if not rows[0].filter_held:
            raise FilterChanged()
        return rows if rows[0].id is not None else []

    def stats(self) -> TaskStats:
        row: Sequence[Any] = self._read(STATS).one()
        total, done, overdue, *by_priority, without_list, without_list_done, lists = row
        by_list = [
            ListCounts(
                list_id=entry["id"],
                name=entry["name"],
                total=entry["total"],
                pending=entry["total"] - entry["completed"],
                completed=entry["completed"],
            )
            for entry in lists
        ]
        by_list.append(
            ListCounts(
                list_id=None,
                name=None,
                total=without_list,
                pending=without_list - without_list_done,
                completed=without_list_done,
            )
        )
        return TaskStats(
            total=total,
            pending=total - done,
            completed=done,
            overdue=overdue,
            by_priority=dict(zip((p.value for p in Priority), by_priority, strict=True)),
            by_list=by_list,
        )

    def get(self, task_id: int) -> TaskRow:
        rows = self._read(GET, task_id=task_id)
        if not rows:
            raise NotFound("Task not found")
        return cast(TaskRow, rows[0])

    def successor(self, task_id: int) -> TaskRow | None:
        """The next occurrence completing `task_id` created, if any and the caller may read
        it (CalDAV hands the client's object on to it: specs/caldav.md)."""
        rows = self._read(NEXT_OCCURRENCE, task_id=task_id)
        return cast(TaskRow, rows[0]) if rows else None

    def titles(self) -> set[str]:
        """The titles of the caller's tasks (the seed command skips demo tasks it has)."""
        return set(self._read(owned_task(select(_T.title))).scalars())

    @fires(
        Rule.PLACE,
        Rule.REOPEN_ANCESTORS,
        Rule.SUBTASK_COUNTS,
        Rule.REMINDERS,
        Rule.PRIVATE_REMINDERS,
    )
    def create(
        self,
        data: TaskCreate,
        *,
        list_name: str | None = None,
        then: Then | None = None,
        completed_at: datetime | None = None,
    ) -> TaskRow:
        """A new task; a recurring one starts its series at its due date. Created completed,
        it is not a completion: no next occurrence is created. In a list or under a parent
        (`list_name`: a list named as an agent would), checked and written in one statement;
        the database gives it its place (first at the top level, last under a parent).
        `then`: a statement that writes from the new row (a DAV object kept beside it), in
        the create's own statement. `completed_at`: when a task created completed was
        completed, as a CalDAV client says (else now)."""
        schedule = plan_schedule(
            data.recurrence, str(data.time_zone), data.due_date, reminders_json(data.reminders)
        )
        values = {**data.model_dump(include=AS_SENT), "completed": data.completed, **schedule}
        if completed_at is not None:
            values[COMPLETED_AT_SENT.key] = completed_at
        placement = placement_of(data, list_name)
        # Nothing follows an insert (created completed is no completion): it commits the
        # request itself, one round trip; a placement refused reads why afterwards.
        if placement is None:
            if set(data.assignees) - {self.user_id}:  # a task in no list: its owner only
                raise unassignable()
            [row] = self._write_then(CREATE, then, **values, last=True)
            return cast(TaskRow, row)
        if data.recurrence is not None and placement.parent is Sent.id:
            raise not_recurring()
        # The caller's change lock and the space's it writes in, together (`spaces_lock`).
        self._lock_spaces(spaces_lock(placement.shape), first=False, **placement.values())
        statement, refusal = create_statements(placement.shape)
        rows = self._write_then(statement, then, **values, **placement.values(), last=True)
        if not rows:
            self._refuse(refusal, placement, {**placement.values(), "assignees": data.assignees})
        return cast(TaskRow, rows[0])

    @fires(
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
    def update(
        self,
        task_id: int | None,
        data: TaskUpdate,
        expected: Expected = None,
        *,
        list_name: str | None = None,
        current: TaskRow | None = None,
        completed_at: datetime | None = None,
        after: Then | None = None,
        following: TaskUpdate | None = None,
    ) -> TaskRow:
        """Write `data` over the task. `current`: the stored task as the caller has just read
        it (its version in `expected`: a DAV PUT's, found by its href), or what a DAV tag
        tested in this write's message says of it (its version, zone, no rule, no parent:
        `dav.objects._Vouched`), so a schedule change, or a series' completion, writes over
        it without reading it again (one message, not two). `task_id` None: the task a
        statement ahead in this message named (`NAMED_TASK`: a DAV PUT with no precondition,
        `current` what that statement tested of it), for a write of its schedule fields in
        place: its update matching no row is a 404 (the caller looks the task up).
        `completed_at`: when the client says it completed the task (a CalDAV COMPLETED), for
        a write that completes no series (the caller's to know: a series' completion is
        stamped now). `after`: where the write completes a series, a statement that writes on
        its next occurrence once inserted (`task_schedule.SUCCEEDED` in the completion's
        statement, else the stored row with the COMMIT: a CalDAV series' object handed to
        it). `following`: what the write says of that next occurrence (its due date, moved
        as a PATCH would move it, and its reminders), inserted so (`_successor`)."""
        changes = data.model_dump(exclude_unset=True, exclude={*SCHEDULE_FIELDS, *PLACED})
        values: dict[str, Any] = {k: v for k, v in changes.items() if k != "completed"}
        if "completed" in changes:
            values.update(completion(changes["completed"], completed_at))
        sent = data.model_fields_set & SCHEDULE_FIELDS
        placing = list_name is not None or not data.model_fields_set.isdisjoint(PLACED)
        placement = placement_of(data, list_name, stay=True) if placing else None
        if (
            placement is not None
            and "recurrence" in sent
            and data.recurrence is not None
            and placement.parent is Sent.id
        ):
            raise not_recurring()
        if task_id is None and (
            "recurrence" not in sent
            or data.recurrence is not None
            or placement is not None
            or current is None
        ):
            raise ValueError("a named task's update sends no rule and stays where it is")
        if not sent:
            if task_id is None:  # pragma: no cover - refused above
                raise ValueError("a named task's update writes its schedule")
            # Only a completion can add a statement (a recurring task's next occurrence).
            last = changes.get("completed") is not True
            if placement is not None:
                moved = self._move(task_id, placement, expected, values, last=last)
                return self._completing(moved, after, following)
            if not last:
                statements = completing(values, *version_in(_T.version, expected))
                read = current is not None and current.version in (expected or ())
                stored = current if read else None
                return self._write_completing(
                    task_id,
                    statements,
                    values,
                    expected,
                    stored=stored,
                    after=after,
                    following=following,
                )
            return self._update(task_id, values, expected, last=True)

        # The schedule is the stored one with the sent fields over it: read it first (with
        # the caller's entry, in the first message), then write it (with the COMMIT).
        # A day stays the same day when only the zone changes (its start moves with it).
        def plan_of(current: TaskRow) -> tuple[str | None, str, Due, list[Any]]:
            return (
                data.recurrence if "recurrence" in sent else current.recurrence,
                str(data.time_zone) if "time_zone" in sent else current.time_zone,
                data.due_date
                if "due_date" in sent
                else due_value(current.due_date, current.all_day, current.time_zone),
                reminders_json(data.reminders or []) if "reminders" in sent else current.reminders,
            )

        return self._replan(
            task_id, values, plan_of, expected, placement=placement, current=current
        )

    @fires(
        Rule.REOPEN_ANCESTORS,
        Rule.SUBTASK_COUNTS,
        Rule.CHILDREN_FOLLOW,
        Rule.PRIVATE_REMINDERS,
        Rule.UNASSIGN_ON_MOVE,
    )
    def move(self, task_id: int, placement: Placement, expected: Expected = None) -> TaskRow:
        """Move a task, with its subtree, to the place `placement` names (one statement)."""
        if task_id == placement.anchor_id:
            raise self._named_itself(
                task_id,
                InvalidRequest.at(
                    anchor_field(placement), "A task cannot be placed next to itself"
                ),
            )
        return self._move(task_id, placement, expected, {}, last=True)

    def _move(
        self,
        task_id: int,
        placement: Placement,
        expected: Expected,
        values: dict[str, Any],
        *,
        last: bool = False,
        then: Then | None = None,
        own: list[Any] | None = None,
    ) -> TaskRow:
        """The placement statement: the task (with `values` written on it too), its subtree
        and any respaced siblings; the moved task's row. `last`: nothing follows it, so it
        may commit the request itself (`_write(last=True)`). `own`: a member's reminders,
        written from the move's rows (`own_reminders`), and read back as sent."""
        if task_id == placement.parent_id:
            raise self._named_itself(
                task_id, InvalidRequest.at("body.parent_id", "A task cannot be its own subtask")
            )
        checked = expected is not None
        thens: tuple[Then, ...] = () if then is None else (then,)
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
        """A body naming the task itself (its parent, its anchor) breaks a rule of the body's
        values, and permission comes first: the 404 or 403 a write of it gets, else `error`
        (the failure path's own round trip)."""
        found = self._read(ACCESS, task_id=task_id).first()
        role = None if found is None else found[-1]
        return denied(role, Action.TASK_WRITE, NotFound("Task not found")) or error

    def subtree(self, task_id: int) -> list[TaskRow]:
        """The task and every task under it, depth-first in position order (one statement:
        at most 1 + SUBTASKS_PER_TASK rows)."""
        rows = cast(list[TaskRow], self._read(SUBTREE, task_id=task_id).all())
        if not rows:
            raise NotFound("Task not found")
        return rows

    def _refuse(self, refusal: Any, placement: Placement, binds: dict[str, Any]) -> NoReturn:
        """A placement wrote nothing: read why (the failure path's own round trip) and say it."""
        reason = self._read(refusal, **binds).scalar()
        if reason is None:  # pragma: no cover - the write and the read share the lock
            raise Conflict("The task changed while it was being written; retry")
        raise self._refusal(Refusal(reason), placement, binds)

    def _refusal(self, reason: Refusal, placement: Placement, binds: dict[str, Any]) -> AppError:
        if reason is Refusal.list and placement.list is Sent.name:
            return unknown_list(self._read, placement.list_name or "", field="body.list")
        # A task or list the placement named and could not write, by the caller's role in
        # that row: none (it cannot read it, or it does not exist) is the 404 `refused` says;
        # a member below editor, 403; a parent or anchor it may write, but in another owner's
        # space than the task's, is the 422 a list of another owner gets.
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

    def occurrences(self, task_id: int, count: int) -> tuple[TaskRow, list[datetime]]:
        """The task and the next `count` due dates of its series after its own (fewer when
        the series ends; none when it does not recur)."""
        task = self.get(task_id)
        if task.recurrence is None or task.due_date is None or task.series_start is None:
            return task, []
        schedule = Schedule.of(task.recurrence, task.time_zone, task.series_start)
        return task, schedule.after(task.due_date, count)

    def _replan(
        self,
        task_id: int | None,
        values: dict[str, Any],
        plan_of: Callable[[TaskRow], tuple[str | None, str, Due, list[Any]]],
        expected: Expected = None,
        *,
        placement: Placement | None = None,
        current: TaskRow | None = None,
    ) -> TaskRow:
        """Write `values` and the schedule `plan_of(stored task)` over the stored task, and move
        it to `placement` in the same statement. The stored task is read in a message that
        commits (`_current`; or given: `current`, read by the caller), then the write names
        the version read and commits the request itself: no lock is held while the schedule
        is planned. A task changed in between is read again; after a few tries, under the
        caller's change lock. `task_id` None: the named task (`update`), written once."""
        named = task_id is None
        given = current if current is not None and (expected is not None or named) else None
        for attempt in range(_COMPLETION_TRIES + 1):
            # The last try reads inside the write's transaction, under the caller's change
            # lock (the entry's), so nothing can change the task before it is written.
            locking = attempt == _COMPLETION_TRIES
            if locking and self._can_begin_again():
                self._begin_again()
            if (
                attempt == 0
                and given is not None
                and (named or given.version in cast(Any, expected))
            ):
                current = given
            elif task_id is None:  # pragma: no cover - the named task's write is its first
                raise NotFound("Task not found")
            else:
                current = self._current(task_id, expected, commit=not locking)
            plan = plan_of(current)
            parent = current.parent_id is not None
            if placement is not None and placement.parent is not Sent.omitted:
                parent = placement.parent is Sent.id
            if plan[0] is not None and parent:
                raise not_recurring()
            planned = {**values, **plan_schedule(*plan, current=current)}
            if self._can_begin_again():
                self._begin_again()
            # The write may complete the task: its next occurrence, computed from the row the
            # write will leave (known here), is written with it.
            then = None
            if planned.get("completed") is True:
                # (A named task's update sends no rule: no successor, no id needed.)
                then = self._successor(Planned(cast(int, task_id), planned["due_date"], planned))
            read = frozenset({current.version})
            if placement is not None and task_id is not None:
                # A move writes its subtree in the same statement: a member's reminders (a
                # trigger would make them its own on every row written) go in a statement of
                # their own in the move's message (`own_reminders`).
                own = None
                if current.user_id != self.user_id:
                    own = planned.pop("reminders")
                    if own == current.reminders:
                        own = None
                try:
                    return self._move(
                        task_id, placement, read, planned, last=True, then=then, own=own
                    )
                except PreconditionFailed:
                    if expected is not None:
                        raise
                    continue
            # The named task is as its naming statement found it, under the change locks that
            # statement took: no version to name.
            versions = () if named else (_T.version == current.version,)
            task = self._update_where(task_id, planned, *versions, last=True, then=then)
            if task is not None:
                return task
            if named:
                raise NotFound("Task not found")
        raise Conflict("The task changed while it was being written; retry")

    def _current(self, task_id: int, expected: Expected, *, commit: bool = True) -> TaskRow:
        """The stored task, read to be changed: 404 for none, 412 if If-Match names none of
        its versions. With `commit`, in a write's first message the read commits (the entry's
        count with it); else it stays in the write's transaction."""
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

    def _completing(
        self, task: TaskRow, after: Then | None = None, following: TaskUpdate | None = None
    ) -> TaskRow:
        """After any write that may complete `task`: when this transaction completed a
        recurring task whose series goes on, insert its next occurrence (then `after`, which
        writes on it: `update`). Decided from the returned row alone (`completed_at` equals
        `updated_at`, both this transaction's `now()`, only when it completed it here), so
        other writes cost nothing more."""
        if task.completed and task.completed_at == task.updated_at:
            then = self._successor(task, following)
            if then is not None:
                self._at_commit(then.alone)
                if after is not None:
                    self._at_commit(after.alone)
        return task

    def _successor(
        self, task: TaskRow | Planned, following: TaskUpdate | None = None
    ) -> Then | None:
        """The next occurrence of `task` (its stored row, or the one a write will leave) if it
        is recurring and its series goes on, to insert if this transaction completed it
        (checked by the statement itself): in the completing write's statement, or with the
        COMMIT (specs/statements.md). Its subtasks come with it (migration 0018). Its
        reminders are the task's, moved with the due date, and its due date the series'
        next; `following` (a stored row's) says otherwise: a due date off the rule, planned
        as a PATCH of it is (the next one after it on the same rule), and reminders."""
        if not goes_on(task):
            return None
        start, next_due = cast(datetime, task.series_start), cast(datetime, task.next_due_date)
        due = cast(datetime, task.due_date)
        rule = cast(str, task.recurrence)
        moved_to = None
        sent = set() if following is None else following.model_fields_set
        if following is not None and following.due_date is not None and "due_date" in sent:
            moved_to = following.due_date
            if not isinstance(moved_to, datetime):  # a day, on the series' clock
                moved_to = day_start(moved_to, task.time_zone)
        # Shifted to the due date the next occurrence has, as the database shifts its
        # subtasks' and the members' reminders (`tasks_copy_subtasks`, migration 0018).
        reminders = moved_reminders(task.reminders, due, moved_to or next_due)
        if following is not None and "reminders" in sent:
            reminders = reminders_json(following.reminders or [])
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

    @fires(
        Rule.COMPLETE_SUBTASKS,
        Rule.REOPEN_ANCESTORS,
        Rule.SUBTASK_COUNTS,
        Rule.REMINDERS,
        Rule.PRIVATE_REMINDERS,
        Rule.SUCCESSOR_SUBTASKS,
        Rule.PLACE,
    )
    def set_completed(
        self, task_id: int, completed: bool | None, expected: Expected = None
    ) -> TaskRow:
        """Set the completion state, or toggle it when `completed` is None.

        One UPDATE computes the new state from the stored one, so concurrent toggles
        never lose an update.
        """
        if completed is False:  # reopening adds nothing after the write
            return self._update(task_id, completion(False), expected, last=True)
        target: ColumnElement[bool] | bool = ~_T.completed if completed is None else True
        values = completion(target)
        if expected is None:
            statements = TOGGLING if completed is None else COMPLETING
        else:
            statements = completing(values, *version_in(_T.version, expected))
        return self._write_completing(task_id, statements, values, expected)

    def _write_completing(
        self,
        task_id: int,
        statements: tuple[Any, Any, Any],
        values: dict[str, Any],
        expected: Expected = None,
        *,
        stored: TaskRow | None = None,
        after: Then | None = None,
        following: TaskUpdate | None = None,
    ) -> TaskRow:
        """Write `values`, which may complete the task (`completing`'s `statements`), committing in
        the write's own message so that no lock is held while a message crosses the network
        (specs/statements.md). Completing a recurring task adds its next occurrence, computed
        from the stored row: that write is sent once the row has been read, in a second
        message that commits it with the occurrence only if the task is still the version
        read (else it tries again); `stored`, the row the caller read at a version `expected`
        names, is that read (one message). `after` writes on the next occurrence, after its
        insert. Where the transaction cannot end with the write (an Idempotency-Key's record
        follows), or the task keeps changing, the write holds its row until its COMMIT
        instead."""
        unless_series, read, series = statements
        for attempt in range(_COMPLETION_TRIES):
            if attempt:
                self._begin_again()
            then = None
            if attempt == 0 and stored is not None and self._send.can_finish:
                # Read by the caller, at a version the write names: a series it completes is
                # written at once.
                then = self._successor(stored, following)
                if then is not None and stored.completed:
                    then = None
            task: Any = stored
            if then is None:
                outcome = self._write_or_stored(unless_series, read, task_id=task_id)
                if outcome is None:  # the transaction goes on after this write
                    break
                task, written = outcome
                if task is None:
                    self._missing_or_stale(task_id, expected)
                if written:
                    return cast(TaskRow, task)
                self._begin_again()
                then = self._successor(task, following)
            # Completes a series: its next occurrence is written with the completion.
            thens = () if then is None else (then,) if after is None else (then, after)
            rows = self._write_then(
                series, thens, task_id=task_id, read_version=task.version, last=True
            )
            if rows:
                return cast(TaskRow, rows[0])
        if self._can_begin_again():
            self._begin_again()
        return self._completing(self._update(task_id, values, expected), after, following)

    @fires(Rule.SUBTREE_CASCADE, Rule.SUBTASK_COUNTS)
    def delete(self, task_id: int | None, expected: Expected = None) -> str:
        """Delete the task (its subtree with it) into the trash; return the title it had.
        `task_id` None: the task a statement ahead in this message named (`NAMED_TASK`)."""
        if task_id is None:
            named = self._write(DELETE_NAMED, last=True)
            if not named:
                raise NotFound("Task not found")
            return cast(str, named[0].title)
        statement = DELETE if expected is None else deleting(*version_in(_T.version, expected))
        deleted = self._write(statement, task_id=task_id, last=True)
        if not deleted:
            self._missing_or_stale(task_id, expected)
        return cast(str, deleted[0].title)

    @fires(
        Rule.COMPLETE_SUBTASKS,
        Rule.REOPEN_ANCESTORS,
        Rule.SUBTASK_COUNTS,
        Rule.REMINDERS,
        Rule.PRIVATE_REMINDERS,
        Rule.SUBTREE_CASCADE,
        Rule.SUCCESSOR_SUBTASKS,
        Rule.PLACE,
        Rule.CHILDREN_FOLLOW,
        Rule.UNASSIGN_ON_MOVE,
    )
    def apply(self, operations: Sequence[BulkOperation]) -> list[TaskRow | None]:
        """Apply operations in order, all in one message (`TaskSending._steps`); the first
        failure aborts the batch (the request's transaction rolls back, so nothing is
        changed) and names the failing operation. A recurring task a step completed gets
        its next occurrence, as from any completing write."""
        try:
            # Only a completion can add a statement (a recurring task's next occurrence).
            last = not any(isinstance(operation, CompleteOp) for operation in operations)
            self._lock_spaces(LOCK_TASKS, task_ids=sorted({o.id for o in operations}))
            rows = self._steps([step(operation) for operation in operations], last=last)
        except StepRefused as refused:
            operation = operations[refused.index]
            error = step_error(operation, refused.reason)
            if isinstance(error, Refusal):
                # A move's: explained as a PATCH's is, by the caller's role in the row it named.
                placement = bulk_placement(cast(MoveOp, operation))
                binds = {**placement.values(), "task_id": operation.id}
                error = self._refusal(error, placement, binds)
            detail = {
                "field": f"body.operations.{refused.index}",
                "message": error.message,
                "type": error.code.lower(),
            }
            raise type(error)(error.message, details=[detail]) from None
        return [
            None if isinstance(operation, DeleteOp) else self._completing(task_of(row))
            for operation, row in zip(operations, rows, strict=True)
        ]

    @fires(Rule.SUBTASK_COUNTS)
    def delete_completed(self) -> int:
        """Delete the caller's completed tasks (with their subtrees) into the trash; return
        how many."""
        rows = self._write(DELETE_COMPLETED, last=True)
        return int(rows[0].deleted) if rows else 0

    def _update(
        self, task_id: int, values: dict[str, Any], expected: Expected = None, *, last: bool = False
    ) -> TaskRow:
        """One UPDATE ... RETURNING of the caller's task, If-Match's versions in its WHERE: 404
        or 412 when no row matched."""
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
        """A write matched no row: 404 for a task the caller cannot see (missing, or
        another's), 403 for a member below editor, or 412 if If-Match named none of its
        versions. Only this failure path reads again."""
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
        task_id: int | None,
        values: dict[str, Any],
        *conditions: ColumnElement[bool],
        last: bool = False,
        then: Then | None = None,
    ) -> TaskRow | None:
        """One UPDATE ... RETURNING of the caller's task; None when no row matched. `last`:
        nothing follows it in the transaction, so it may commit it (`_write(last=True)`).
        `task_id` None: the task named ahead in the message (`NAMED_TASK`)."""
        statement = updating(values, *conditions, named=task_id is None)
        binds = {} if task_id is None else {"task_id": task_id}
        rows = self._write_then(statement, then, **binds, last=last)
        return cast(TaskRow, rows[0]) if rows else None
