"""The activity log's schema: one item per event of `task_events` (no second record)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic_core import CoreSchema, core_schema

from backend.models import task_children
from backend.models.common import UtcDatetime
from backend.models.task_event import CHANGE_TYPES, INVITATION_EVENTS, LIST_EVENTS, MEMBER_EVENTS

# Every event but reminders and the feed's access entries (children's: by their shape).
ACTIVITY_TYPES = (*CHANGE_TYPES, *LIST_EVENTS, *MEMBER_EVENTS, *INVITATION_EVENTS)
_TASK_TYPES = frozenset(CHANGE_TYPES)


class ObjectType(str):
    """What an entry is about; its schema's `enum` is read from the declared children."""

    task = "task"
    list = "list"
    member = "member"
    invitation = "invitation"

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        return core_schema.str_schema(ref="ObjectType")

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> dict[str, Any]:
        nouns = [child.snake for child in task_children.CHILDREN if child.events]
        kinds = [cls.task, cls.list, cls.member, *nouns, cls.invitation]
        return {"enum": kinds, "title": "ObjectType", "type": "string"}


class ActivityItem(BaseModel):
    id: int = Field(description="The event's position (newest first).", examples=[1042])
    at: UtcDatetime = Field(
        description="When it happened, in its transaction.", examples=["2026-11-25T17:00:00Z"]
    )
    actor_id: str | None = Field(
        description="Who did it: the account whose request made the change; null for the "
        "server's own work (the worker, the command line).",
        examples=["5f0c6e8e-3d5c-4d7e-9a53-0c1b2f6f1e9a"],
    )
    object_type: ObjectType = Field(examples=["task"])
    object_id: int | str = Field(
        description="The task's, list's, invitation's or task's child's (a comment's) id; a "
        "member's user id.",
        examples=[42],
    )
    event: str = Field(
        description="`task.created`, `task.updated`, `task.completed`, `task.reopened`, "
        "`task.deleted`, `list.created`, `list.updated`, `list.deleted`, `member.added`, "
        "`member.updated`, `member.removed`, `invitation.created`, `invitation.revoked`, "
        "`invitation.accepted`; a task's child's `<noun>.created`, `<noun>.updated`, "
        "`<noun>.deleted` (`comment.created`, `comment.updated`, `comment.deleted`).",
        examples=["task.updated"],
    )
    list_id: int | None = Field(
        description="The list it happened in; null for a task in no list.", examples=[7]
    )
    changes: dict[str, list[Any]] | None = Field(
        description="For an update: each field that changed, `[old, new]` (values as stored: "
        "instants in UTC). Null otherwise.",
        examples=[{"title": ["Buy milk", "Buy oat milk"]}],
    )

    @classmethod
    def from_row(cls, row: Any) -> ActivityItem:
        kind = row.type
        if kind in _TASK_TYPES:
            object_type, object_id, event = ObjectType.task, row.task_id, f"task.{kind}"
        else:
            object_type = kind.split(".", 1)[0]  # a child's: its noun
            if object_type == ObjectType.list:
                object_id = row.list_id
            elif object_type == ObjectType.member:
                object_id = row.object_id  # a user id
            else:
                object_id = int(row.object_id)  # read as text from the stored row
            event = kind
        return cls(
            id=row.id,
            at=row.occurred_at,
            actor_id=row.actor_id,
            object_type=ObjectType(object_type),
            object_id=object_id,
            event=event,
            list_id=row.list_id,
            changes=row.changes,
        )
