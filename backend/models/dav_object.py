"""A task's CalDAV object (specs/caldav.md, "One task, one object"): the client's text as PUT
(minus VALARMs), kept so what we do not model comes back; a child of its task, DAV's alone."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, CheckConstraint, Index, Text, UniqueConstraint, text
from sqlmodel import SQLModel

from backend.models.columns import column, id_column, key_to_task, now_column
from backend.models.task_children import TaskChild

# RFC 4791's `max-resource-size` we announce, and the longest UID or resource name we keep.
OBJECT_MAX_BYTES = 256 * 1024
UID_MAX_LENGTH = 1024


class TaskDavObject(SQLModel, table=True):
    __tablename__ = "task_dav_objects"
    __table_args__ = (
        key_to_task("task_dav_objects"),
        UniqueConstraint("user_id", "task_id", name="uq_task_dav_objects_user_id_task_id"),
        CheckConstraint(
            f"char_length(uid) BETWEEN 1 AND {UID_MAX_LENGTH}",
            name="ck_task_dav_objects_uid_length",
        ),
        CheckConstraint(
            f"char_length(name) BETWEEN 1 AND {UID_MAX_LENGTH}",
            name="ck_task_dav_objects_name_length",
        ),
        CheckConstraint(
            f"octet_length(body) <= {OBJECT_MAX_BYTES}", name="ck_task_dav_objects_body_length"
        ),
        Index("ix_task_dav_objects_task_id_id", "task_id", "id"),
        # One served object per collection (a list, or the tasks in none) and name, and UID.
        *(
            Index(
                f"uq_task_dav_objects_{scope}_{key}",
                scope,
                key,
                unique=True,
                postgresql_where=text(f"served AND list_id IS {where}"),
            )
            for scope, where in (("list_id", "NOT NULL"), ("user_id", "NULL"))
            for key in ("name", "uid")
        ),
    )

    id: int | None = id_column()
    user_id: str = column(Text, nullable=False)
    task_id: int = column(BigInteger, nullable=False)
    # The task's list, kept in step by `tasks_move_children` (the access predicate reads it).
    list_id: int | None = column(BigInteger, default=None)
    uid: str = column(Text, nullable=False)  # the client's, verbatim
    name: str = column(Text, nullable=False)  # its href's last segment
    body: str = column(Text, nullable=False)
    # False: its name or UID was taken when it arrived (a restore, a move): not served as is.
    served: bool = column(Boolean, nullable=False, server_default=text("true"), default=True)
    created_at: datetime | None = now_column()
    updated_at: datetime | None = now_column()
    # True: a completed occurrence sent inside the series' object (`OVERRIDE_COMPLETED`).
    within: bool = column(Boolean, nullable=False, server_default=text("false"), default=False)


# No routes, tools or child's events (its own trigger records `dav_object.*`, migration 0066).
DAV_OBJECTS = TaskChild(
    TaskDavObject,
    noun="dav object",
    events=False,
    sample={
        "uid": "kept-1@example.com",
        "name": "kept-1@example.com.ics",
        "body": "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VTODO\r\nUID:kept-1@example.com\r\n"
        "SUMMARY:Kept\r\nX-CLIENT:1\r\nEND:VTODO\r\nEND:VCALENDAR\r\n",
    },
)
