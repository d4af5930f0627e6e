"""The change feed's schema: one change to a task, and the feed page's meta."""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import BaseModel, Field

from backend.models.common import UtcDatetime
from backend.models.task import TaskPublic
from backend.models.task_event import FeedType


class ChangedChild(BaseModel):
    """The row of a task's child a child's change is about."""

    kind: str = Field(
        description="The child's noun, as in the type (`attachment` of `attachment.created`, "
        "`comment`, ...).",
        examples=["attachment"],
    )
    id: int = Field(
        description="The row's id (a deletion: the id it had): read it at "
        "`GET /api/tasks/{task_id}/<its path>/{id}`, or drop your copy of it.",
        examples=[11],
    )


class TaskChange(BaseModel):
    event_id: uuid.UUID = Field(
        description="Unique per change: the same id as the change's delivered event, for "
        "de-duplication.",
        examples=["0b6f3b1e-8f7a-4d58-9a4c-2f3c9a1d7e55"],
    )
    type: FeedType = Field(
        description="`created`, `updated`, `completed` (now completed), `reopened` (no "
        "longer completed) or `deleted`; for a list shared with you, `access.granted` (you "
        "can now see the task: an upsert, with `task`) or `access.ended` (you no longer can: "
        "drop your copy; `task` null); a task's child added, changed or removed, "
        "`<noun>.created`, `<noun>.updated`, `<noun>.deleted` (`attachment.created`, "
        "`comment.deleted`, ...: `child` names the row; `task` is the task, unchanged by it).",
        examples=["completed"],
    )
    task_id: int = Field(examples=[42])
    child: ChangedChild | None = Field(
        description="A child's event (`<noun>.created`, `.updated`, `.deleted`): which row of "
        "the task's child it is about, its kind and id, so a client updates its copy of that "
        "one row (a deletion: drops it) without listing the task's children; null for a "
        "task's own change and for `access.*`.",
        examples=[None],
    )
    task: TaskPublic | None = Field(
        description="The task as this change left it (a child's event: as it found it, "
        "null when the task went with it); null for `deleted` and `access.ended`. Compare "
        "`task.updated_at`/the ETag version to skip a change already seen."
    )
    occurred_at: UtcDatetime = Field(
        description="When the change was made, in its transaction.",
        examples=["2026-11-22T17:00:00Z"],
    )

    @classmethod
    def from_row(cls, row: Any) -> TaskChange:
        return cls(
            event_id=row.event_id,
            type=FeedType(row.type),
            task_id=row.task_id,
            child=_child(row),
            task=None if row.task is None else TaskPublic.from_stored(row.task),
            occurred_at=row.occurred_at,
        )


def _child(row: Any) -> ChangedChild | None:
    """A child's event's row: its noun from the type, its id as recorded."""
    if row.child_id is None:
        return None
    return ChangedChild(kind=row.type.split(".", 1)[0], id=row.child_id)


class ChangesMeta(BaseModel):
    count: int = Field(description="Number of changes in `data`.", examples=[1])
    has_more: bool = Field(
        description="True when more changes are ready now: fetch `next_cursor` at once.",
        examples=[False],
    )
    next_cursor: str = Field(
        description="Where to continue: pass as `cursor` on the next poll (always present; "
        "on the last page it waits for the next change).",
        examples=["9cqm_BcWun9g3QMeX40zmkeH2ARDv41t"],
    )
