"""The task service: one user's tasks. Every statement is built with `owned_task` and run by
`Scoped`, so another's task is indistinguishable from a missing one; outside this class only
`DavObjectService` sends on `tasks`. Its parts: task_statements, task_update,
task_placement/task_tree, task_schedule, task_bulk, task_listing."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import select
from sqlalchemy.sql.elements import ColumnElement

from backend.errors import InvalidRequest, NotFound, ServiceUnavailable
from backend.models import Priority, Task, TaskCreate, TaskRow, TaskUpdate
from backend.models.task_ops import BulkOperation, CompleteOp, DeleteOp, MoveOp
from backend.recurrence import Schedule
from backend.services.statements.rules import Rule, fires
from backend.services.statements.task_tree import Placement, Refusal, Sent, spaces_lock
from backend.services.statements.versions import Expected, version_in
from backend.services.tasks.task_bulk import LOCK_TASKS, bulk_placement, step, step_error, task_of
from backend.services.tasks.task_listing import FilterChanged, Keyset, ListingShape, TaskListQuery
from backend.services.tasks.task_placement import anchor_field, placement_of, unassignable
from backend.services.tasks.task_schedule import SCHEDULE_FIELDS, not_recurring
from backend.services.tasks.task_sending import StepRefused, Then
from backend.services.tasks.task_statements import (
    AS_SENT,
    COMPLETING,
    DELETE,
    DELETE_COMPLETED,
    DELETE_MANY,
    GET,
    INSERTING,
    NEXT_OCCURRENCE,
    PLACED,
    STATS,
    SUBTREE,
    TOGGLING,
    Inserting,
    completing,
    completion,
    deleting,
    listing,
    listing_still_empty,
    listing_total,
    owned_task,
)
from backend.services.tasks.task_update import CHANGE_RULES, InList, TaskUpdating, created

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

    @classmethod
    def of(cls, list_id: int | None, name: str | None, total: int, completed: int) -> ListCounts:
        return cls(list_id, name, total, total - completed, completed)


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
_NEXT_TO_ITSELF = "A task cannot be placed next to itself"


class TaskService(TaskUpdating):
    def list_page(self, query: TaskListQuery, *, feed_position: bool = False) -> TaskPage:
        """One page; `feed_position`: also the change-feed position in its snapshot."""
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
        """The feed position with `rows`; an empty page's with the proof it is still empty."""
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
        """The page's rows; a saved filter's only while it holds the query (`FilterChanged`)."""
        rows = cast(Sequence[Any], self._read(listing(shape), **values).all())
        if not shape.filters.saved:
            return rows
        if not rows[0].filter_held:
            raise FilterChanged()
        return rows if rows[0].id is not None else []

    def stats(self) -> TaskStats:
        row: Sequence[Any] = self._read(STATS).one()
        total, done, overdue, *by_priority, without_list, without_list_done, lists = row
        by_list = [ListCounts.of(e["id"], e["name"], e["total"], e["completed"]) for e in lists]
        by_list.append(ListCounts.of(None, None, without_list, without_list_done))
        priorities = dict(zip((p.value for p in Priority), by_priority, strict=True))
        return TaskStats(total, total - done, done, overdue, priorities, by_list)

    def get(self, task_id: int) -> TaskRow:
        rows = self._read(GET, task_id=task_id)
        if not rows:
            raise NotFound("Task not found")
        return cast(TaskRow, rows[0])

    def successor(self, task_id: int) -> TaskRow | None:
        """The next occurrence completing `task_id` created, if readable (CalDAV's)."""
        rows = self._read(NEXT_OCCURRENCE, task_id=task_id)
        return cast(TaskRow, rows[0]) if rows else None

    def titles(self) -> set[str]:
        """The titles of the caller's tasks (the seed command skips demo tasks it has)."""
        return set(self._read(owned_task(select(_T.title))).scalars())

    def create(self, data: TaskCreate, *, list_name: str | None = None) -> TaskRow:
        """A new task; `list_name`: a list named as an agent would."""
        return self.write_new(data, created(data), placement_of(data, list_name))

    @fires(
        Rule.PLACE,
        Rule.REOPEN_ANCESTORS,
        Rule.SUBTASK_COUNTS,
        Rule.REMINDERS,
        Rule.PRIVATE_REMINDERS,
    )
    def write_new(
        self,
        data: TaskCreate,
        values: dict[str, Any],
        placement: Placement | None,
        thens: tuple[Then, ...] = (),
        inserting: Inserting = INSERTING,
    ) -> TaskRow:
        """Insert a new task at `placement` by `inserting`, checked and written in one statement;
        refused: why."""
        if placement is None:
            if set(data.assignees) - {self.user_id}:  # a task in no list: its owner only
                raise unassignable()
            [row] = self._write_then(inserting.alone, thens, **values, last=True)
            return cast(TaskRow, row)
        if data.recurrence is not None and placement.parent is Sent.id:
            raise not_recurring()
        # The caller's change lock and the space's it writes in, together (`spaces_lock`).
        self._lock_spaces(spaces_lock(placement.shape), first=False, **placement.values())
        statement, refusal = inserting.placed(placement.shape)
        rows = self._write_then(statement, thens, **values, **placement.values(), last=True)
        if not rows:
            self._refuse(refusal, placement, {**placement.values(), "assignees": data.assignees})
        return cast(TaskRow, rows[0])

    @fires(*CHANGE_RULES)
    def update(
        self, task_id: int, change: TaskUpdate | InList, expected: Expected = None
    ) -> TaskRow:
        """Write `change` over the task: its schedule over the stored one (read first), its
        placement and a series' next occurrence in one statement, If-Match in its WHERE."""
        data = change if isinstance(change, TaskUpdate) else change.change
        list_name = change.list_name if isinstance(change, InList) else None
        placing = list_name is not None or not data.model_fields_set.isdisjoint(PLACED)
        placement = placement_of(data, list_name, stay=True) if placing else None
        values = data.model_dump(exclude_unset=True, include=AS_SENT)
        if "completed" in data.model_fields_set:
            values = {**values, **completion(cast(bool, data.completed))}
        sent = data.model_fields_set & SCHEDULE_FIELDS
        recurring = "recurrence" in sent and data.recurrence is not None
        if recurring and placement is not None and placement.parent is Sent.id:
            raise not_recurring()
        if not sent:
            # Only a completion can add a statement (a recurring task's next occurrence).
            last = values.get("completed") is not True
            if placement is not None:
                moved = self._move(task_id, placement, expected, values, last=last)
                return self._completing(moved)
            if not last:
                statements = completing(values, *version_in(_T.version, expected))
                return self._write_completing(task_id, statements, values, expected)
            return self._update(task_id, values, expected, last=True)
        # The schedule is the stored one with the sent fields over it: read first, then written.
        return self._replan(task_id, data, values, expected, placement)

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
            error = InvalidRequest.at(anchor_field(placement), _NEXT_TO_ITSELF)
            raise self._named_itself(task_id, error)
        return self._move(task_id, placement, expected, {}, last=True)

    def subtree(self, task_id: int) -> list[TaskRow]:
        """The task and its subtree, depth-first in position order (one statement)."""
        rows = cast(list[TaskRow], self._read(SUBTREE, task_id=task_id).all())
        if not rows:
            raise NotFound("Task not found")
        return rows

    def occurrences(self, task_id: int, count: int) -> tuple[TaskRow, list[datetime]]:
        """The task and its series' next `count` due dates (fewer if it ends)."""
        task = self.get(task_id)
        if task.recurrence is None or task.due_date is None or task.series_start is None:
            return task, []
        schedule = Schedule.of(task.recurrence, task.time_zone, task.series_start)
        return task, schedule.after(task.due_date, count)

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
        """Set the completion state, or toggle it when `completed` is None: one UPDATE computes it
        from the stored one, so concurrent toggles never lose an update."""
        if completed is False:  # reopening adds nothing after the write
            return self._update(task_id, completion(False), expected, last=True)
        target: ColumnElement[bool] | bool = ~_T.completed if completed is None else True
        values = completion(target)
        if expected is None:
            statements = TOGGLING if completed is None else COMPLETING
        else:
            statements = completing(values, *version_in(_T.version, expected))
        return self._write_completing(task_id, statements, values, expected)

    @fires(Rule.SUBTREE_CASCADE, Rule.SUBTASK_COUNTS)
    def delete(self, task_id: int, expected: Expected = None) -> str:
        """Delete the task (its subtree with it) into the trash; return the title it had."""
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
        """Apply operations in one message; the first failure rolls back and names its operation."""
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

    @fires(Rule.SUBTREE_CASCADE, Rule.SUBTASK_COUNTS)
    def delete_many(self, task_ids: Sequence[int], *, last: bool = True) -> set[int]:
        """Delete those of `task_ids` still there that the caller may delete (as `delete`: its
        own, and a shared list's where it may write), each with its subtree, into the trash in
        one statement (`last`: it may commit the request); return the ids of those trashed."""
        rows = self._write(DELETE_MANY, task_ids=list(task_ids), last=last)
        return {int(row.id) for row in rows}

    @fires(Rule.SUBTASK_COUNTS)
    def delete_completed(self) -> int:
        """Delete the caller's completed tasks (with subtrees) into the trash; return how many."""
        rows = self._write(DELETE_COMPLETED, last=True)
        return int(rows[0].deleted) if rows else 0
