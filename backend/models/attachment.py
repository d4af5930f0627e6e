"""A task's attachments (specs/storage.md): a declared child of its task; the upload (multipart)
and the download are api/routes/attachments.py's."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, Text
from sqlmodel import SQLModel

from backend.models.columns import column, id_column, key_to_task, now_column
from backend.models.common import UtcDatetime
from backend.models.references import Action
from backend.models.task_children import Stored, TaskChild

# The most files a task holds (Trello's cap per card).
ATTACHMENTS_PER_TASK = 100
SHA256_EXAMPLE = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


class TaskAttachment(SQLModel, table=True):
    __tablename__ = "task_attachments"
    __table_args__ = (
        key_to_task("task_attachments"),
        CheckConstraint("size >= 0", name="ck_task_attachments_size"),
        CheckConstraint("sha256 ~ '^[0-9a-f]{64}$'", name="ck_task_attachments_sha256"),
        CheckConstraint(
            "octet_length(filename) BETWEEN 1 AND 255", name="ck_task_attachments_filename_length"
        ),
        CheckConstraint(
            "char_length(storage_key) BETWEEN 1 AND 512",
            name="ck_task_attachments_storage_key_length",
        ),
        Index("ix_task_attachments_task_id_id", "task_id", "id"),
        Index("ix_task_attachments_storage_key", "storage_key"),
        Index("ix_task_attachments_uploaded_by", "uploaded_by"),
    )

    id: int | None = id_column()
    user_id: str = column(Text, nullable=False)
    task_id: int = column(BigInteger, nullable=False)
    # The task's list, kept in step by `tasks_move_children` (migration 0053).
    list_id: int | None = column(BigInteger, default=None)
    # NULL once the uploader's account is deleted: the file stays with its task.
    uploaded_by: str | None = column(
        Text, ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    # Random (backend/storage/base.py `new_key`), never from the file name; never shown.
    storage_key: str = column(Text, nullable=False)
    filename: str = column(Text, nullable=False)
    content_type: str = column(Text, nullable=False)
    size: int = column(BigInteger, nullable=False)
    sha256: str = column(Text, nullable=False)
    created_at: datetime | None = now_column()


class AttachmentPublic(BaseModel):
    """A file on a task: what was stored, as measured (never as the client declared it)."""

    model_config = ConfigDict(from_attributes=True)

    id: int = Field(examples=[11])
    task_id: int = Field(examples=[42])
    filename: str = Field(
        description="The uploaded name, sanitised (no path, control or bidi characters; at "
        "most 255 bytes).",
        examples=["receipt.pdf"],
    )
    content_type: str = Field(
        description="Detected from the bytes (the declared type is not trusted).",
        examples=["application/pdf"],
    )
    size: int = Field(description="Bytes, as measured.", examples=[48213])
    sha256: str = Field(description="The bytes' SHA-256, hex.", examples=[SHA256_EXAMPLE])
    created_at: UtcDatetime = Field(examples=["2026-11-25T17:00:00Z"])
    uploaded_by: str | None = Field(
        description="Null once the uploader's account is deleted.",
        examples=["5f0c6e8e-3d5c-4d7e-9a53-0c1b2f6f1e9a"],
    )


class AttachmentLimits(BaseModel):
    """The caller's limits and use."""

    max_file_bytes: int = Field(examples=[26214400])
    max_per_task: int = Field(examples=[ATTACHMENTS_PER_TASK])
    quota_bytes: int = Field(examples=[1073741824])
    used_bytes: int = Field(
        description="Bytes the caller uploaded that count: trashed files until purged.",
        examples=[48213],
    )


TASK_ATTACHMENTS = TaskChild(
    TaskAttachment,
    noun="attachment",
    path="attachments",
    read=Action.LIST_READ,
    write=Action.TASK_WRITE,
    per_task=ATTACHMENTS_PER_TASK,
    edits=False,
    author="uploaded_by",
    # A task's files are the task's, kept by whoever works on it (a comment: its author's).
    delete_any=Action.TASK_WRITE,
    sample={
        "storage_key": "00/000000000000000000000000000000ff",
        "filename": "receipt.pdf",
        "content_type": "application/pdf",
        "size": 3,
        "sha256": SHA256_EXAMPLE,
    },
    public=AttachmentPublic,
    about="A task's files: list (oldest first, keyset pages), upload (multipart, one part "
    "`file`), download, delete. Whoever may read the task lists and downloads them; an editor "
    "and up uploads them and deletes any, whoever uploaded it; a member below the role "
    "gets 403 `FORBIDDEN`, anyone else the 404 a missing task gets.",
    stored=Stored(key="storage_key", size="size", by="uploaded_by"),
)
