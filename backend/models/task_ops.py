"""Schemas of the convenience routes: bulk operations, clearing completed tasks, statistics."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from backend.models.common import JsonInt, UtcDatetime
from backend.models.task import TASK_ID_MAX, Priority, Tag, TaskPublic, TimeZone

BULK_MAX_OPERATIONS = 100
TaskIdField = Annotated[JsonInt, Field(ge=1, le=TASK_ID_MAX, examples=[42])]


class _Op(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: TaskIdField


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


BulkOperation = Annotated[
    CompleteOp | ReopenOp | DeleteOp | SetPriorityOp | AddTagOp | RemoveTagOp,
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


class TaskStatsPublic(BaseModel):
    total: int = Field(examples=[12])
    pending: int = Field(examples=[8])
    completed: int = Field(examples=[4])
    overdue: int = Field(description="Pending and past their due date.", examples=[1])
    by_priority: dict[Priority, int] = Field(
        examples=[{"none": 5, "low": 2, "medium": 3, "high": 2}]
    )


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
