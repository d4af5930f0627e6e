"""Schemas of the convenience routes: bulk operations, clearing completed tasks, statistics."""

from __future__ import annotations

from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from backend.models.common import JsonInt, UtcDatetime
from backend.models.references import LISTS, TASKS, Action, Reference
from backend.models.task import TASK_ID_MAX, Priority, Tag, TaskPublic, TimeZone
from backend.models.task_list import ONE_ANCHOR, ListId, TaskRef

BULK_MAX_OPERATIONS = 100
# What a bulk operation or a move names: rows the caller may write tasks in (issue 49).
_WRITE_TASK = Reference(TASKS, Action.TASK_WRITE)
_WRITE_LIST = Reference(LISTS, Action.TASK_WRITE)
TaskIdField = Annotated[JsonInt, Field(ge=1, le=TASK_ID_MAX, examples=[42])]


class _Op(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: Annotated[TaskIdField, _WRITE_TASK]


class CompleteOp(_Op):
    op: Literal["complete"]


class ReopenOp(_Op):
    op: Literal["reopen"]


class DeleteOp(_Op):
    op: Literal["delete"]


class SetPriorityOp(_Op):
    op: Literal["set_priority"]
    priority: Priority


class AddTagOp(_Op):
    op: Literal["add_tag"]
    tag: Tag


class RemoveTagOp(_Op):
    op: Literal["remove_tag"]
    tag: Tag


class MoveOp(_Op):
    """The task, with its subtasks, to the top level of a list (null: of no list), last; a
    task already at that list's top level stays where it is."""

    op: Literal["move"]
    list_id: Annotated[ListId, _WRITE_LIST] | None = Field(examples=[7])


BulkOperation = Annotated[
    CompleteOp | ReopenOp | DeleteOp | SetPriorityOp | AddTagOp | RemoveTagOp | MoveOp,
    Field(discriminator="op"),
]


class BulkRequest(BaseModel):
    """Operations applied in order, all or nothing."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "operations": [
                        {"op": "complete", "id": 1},
                        {"op": "set_priority", "id": 2, "priority": "high"},
                        {"op": "add_tag", "id": 2, "tag": "urgent"},
                        {"op": "move", "id": 4, "list_id": 7},
                        {"op": "delete", "id": 3},
                    ]
                }
            ]
        },
    )

    operations: list[BulkOperation] = Field(min_length=1, max_length=BULK_MAX_OPERATIONS)


class BulkResult(BaseModel):
    index: int = Field(description="Position of the operation in the request.")
    op: str
    id: int
    task: TaskPublic | None = Field(description="The task after the operation; null if deleted.")


class BulkResponse(BaseModel):
    results: list[BulkResult]


class ClearedCompleted(BaseModel):
    deleted: int = Field(description="How many completed tasks were deleted.", examples=[3])


class ListStats(BaseModel):
    """One list's share of your tasks; `list_id` null: the tasks in no list."""

    list_id: int | None = Field(examples=[7])
    name: str | None = Field(examples=["Groceries"])
    total: int = Field(examples=[5])
    pending: int = Field(examples=[3])
    completed: int = Field(examples=[2])


class TaskStatsPublic(BaseModel):
    total: int = Field(examples=[12])
    pending: int = Field(examples=[8])
    completed: int = Field(examples=[4])
    overdue: int = Field(description="Pending and past their due date.", examples=[1])
    by_priority: dict[Priority, int] = Field(
        examples=[{"none": 5, "low": 2, "medium": 3, "high": 2}]
    )
    by_list: list[ListStats] = Field(
        description="Per list, in the order of your lists (every list, empty ones too), "
        "then the tasks in no list (`list_id` null). Subtasks count in their list.",
        examples=[
            [
                {"list_id": 7, "name": "Groceries", "total": 5, "pending": 3, "completed": 2},
                {"list_id": None, "name": None, "total": 7, "pending": 5, "completed": 2},
            ]
        ],
    )


class TaskMove(BaseModel):
    """Where to move a task (with its subtasks) in one request. `after_id` / `before_id`
    (at most one): right after / before that task, among its siblings (its list and parent);
    neither: last in the destination. The destination is the anchor's siblings, else
    `parent_id` (a subtask joins its parent's list), else `list_id` (its top level), else
    where the task is. `list_id` or `parent_id` sent with an anchor must be the anchor's."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            **ONE_ANCHOR,
            "examples": [{"list_id": 7, "after_id": 41}, {"parent_id": 40}, {"before_id": 12}],
        },
    )

    list_id: Annotated[ListId, _WRITE_LIST] | None = Field(
        default=None, description="The destination list; null: out of any list."
    )
    parent_id: Annotated[TaskRef, _WRITE_TASK] | None = Field(
        default=None, description="The new parent; null: top level."
    )
    after_id: Annotated[TaskRef, _WRITE_TASK] | None = Field(
        default=None, description="Right after this task."
    )
    before_id: Annotated[TaskRef, _WRITE_TASK] | None = Field(
        default=None, description="Right before this task."
    )

    @model_validator(mode="after")
    def _one_anchor(self) -> Self:
        if self.after_id is not None and self.before_id is not None:
            raise ValueError("send after_id or before_id, not both")
        return self


# How many due dates `GET /api/tasks/{task_id}/occurrences` previews at most.
OCCURRENCES_MAX = 100


class TaskOccurrences(BaseModel):
    """The next due dates of a task's series, after its own."""

    task_id: int = Field(examples=[42])
    recurrence: str | None = Field(examples=["FREQ=WEEKLY;BYDAY=MO,TH"])
    time_zone: TimeZone = Field(examples=["Europe/Berlin"])
    occurrences: list[UtcDatetime] = Field(
        description="In order, in UTC; the first is the task's `next_due_date`. Fewer than "
        "asked when the series ends (COUNT, UNTIL), none when the task does not recur.",
        examples=[["2026-12-03T16:00:00Z", "2026-12-07T16:00:00Z"]],
    )
