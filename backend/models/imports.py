"""Imports (specs/import-export.md): the tables (an import, with the uploaded file until it is
written, and the items it created, keyed by where they came from) and what the API answers."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Index,
    Integer,
    LargeBinary,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import SQLModel

from backend.models.columns import (
    INSTANT,
    column,
    id_column,
    now_column,
    same_user_key,
    user_id_column,
)
from backend.models.common import UtcDatetime
from backend.models.references import not_a_reference
from backend.models.task import TaskPreview

ImportState = Literal["queued", "running", "done", "failed", "undone"]
ImportSource = Literal["task-api", "todoist", "ticktick", "google-tasks", "ical"]
# What `POST /api/imports` takes as `source`: a source, or `auto` (told from the content).
SourceParam = Literal["auto", ImportSource]
# How many planned tasks a dry run shows as they would be created.
PREVIEW_TASKS = 50
# Imports of one user not yet ended (`queued` or `running`), each holding its file (up to
# IMPORT_MAX_BYTES) in the database: one more is refused (409) until one ends.
IMPORTS_PENDING_MAX = 3
IMPORT_ID_MAX = 2**63 - 1


class Import(SQLModel, table=True):
    __tablename__ = "imports"
    __table_args__ = (
        UniqueConstraint("user_id", "id", name="uq_imports_user_id_id"),
        CheckConstraint(
            "state IN ('queued', 'running', 'done', 'failed', 'undone')", name="ck_imports_state"
        ),
        CheckConstraint(
            "source IN ('task-api', 'todoist', 'ticktick', 'google-tasks', 'ical')",
            name="ck_imports_source",
        ),
        Index("ix_imports_state_id", "state", "id"),
    )

    id: int | None = id_column()
    user_id: str = user_id_column()
    source: str = column(Text, nullable=False)
    state: str = column(Text, nullable=False, server_default=text("'queued'"), default="queued")
    progress_done: int = column(Integer, nullable=False, server_default=text("0"), default=0)
    progress_total: int = column(Integer, nullable=False, server_default=text("0"), default=0)
    counts: dict[str, Any] = column(
        JSONB, nullable=False, server_default=text("'{}'::jsonb"), default_factory=dict
    )
    warnings: list[Any] = column(
        JSONB, nullable=False, server_default=text("'[]'::jsonb"), default_factory=list
    )
    lossy: list[Any] = column(
        JSONB, nullable=False, server_default=text("'[]'::jsonb"), default_factory=list
    )
    error: str | None = column(Text, default=None)
    # The upload itself (at most IMPORT_MAX_BYTES) until the import is done, failed or undone.
    file: bytes | None = column(LargeBinary, default=None)
    file_name: str = column(Text, nullable=False, server_default=text("''"), default="")
    # None: the owner's zone (notification settings', else UTC) when it runs.
    time_zone: str | None = column(Text, default=None)
    # Where tasks with no list of their own go (checked as `POST /api/tasks` checks it).
    list_id: int | None = column(
        BigInteger,
        default=None,
        info=not_a_reference(
            "an option, not a key: each task written with it is placed through task_tree, so "
            "a list the owner can no longer add to refuses that write as POST /api/tasks would"
        ),
    )
    lease_owner: str | None = column(Text, default=None)
    lease_until: datetime | None = column(INSTANT, default=None)
    attempts: int = column(Integer, nullable=False, server_default=text("0"), default=0)
    created_at: datetime | None = now_column()
    finished_at: datetime | None = column(INSTANT, default=None)


class ImportItem(SQLModel, table=True):
    __tablename__ = "import_items"
    __table_args__ = (
        same_user_key("import_items", "import_id", "imports"),
        UniqueConstraint("user_id", "id", name="uq_import_items_user_id_id"),
        UniqueConstraint("user_id", "source", "key", name="uq_import_items_user_id_source_key"),
        CheckConstraint(
            "kind IN ('list', 'task', 'comment', 'attachment', 'filter')",
            name="ck_import_items_kind",
        ),
        Index("ix_import_items_user_id_import_id", "user_id", "import_id"),
    )

    id: int | None = id_column()
    user_id: str = user_id_column()
    import_id: int = column(BigInteger, nullable=False)
    source: str = column(Text, nullable=False)
    key: str = column(Text, nullable=False)
    kind: str = column(Text, nullable=False)
    # The row it created (a task's, list's, comment's, attachment's or filter's id).
    row_id: int = column(
        BigInteger,
        nullable=False,
        info=not_a_reference(
            "the row an import created, of the table `kind` names (a list, task, comment, "
            "file or filter): read back only by the owner's scoped statements; a row deleted "
            "since is skipped (an undo's delete finds nothing)"
        ),
    )
    # A task with no parent in the file: an undo trashes it, its subtasks with it.
    root: bool = column(Boolean, nullable=False, server_default=text("false"), default=False)
    created_at: datetime | None = now_column()


class ImportCounts(BaseModel):
    lists: int = Field(0, description="Lists the import creates (or created).", examples=[2])
    tasks: int = Field(0, description="Tasks, subtasks included.", examples=[120])
    comments: int = Field(0, description="Comments on those tasks.", examples=[4])
    attachments: int = Field(0, description="Files on those tasks.", examples=[1])
    filters: int = Field(0, description="Saved filters (our own archive's).", examples=[0])
    skipped: int = Field(
        0, description="Items left out: refused by our rules (see `warnings`).", examples=[1]
    )
    already_imported: int = Field(
        0,
        description="Items an earlier import of the same source already created (keyed by "
        "the item's id there): not created again.",
        examples=[0],
    )


class ImportWarning(BaseModel):
    item: str = Field(
        description="Where in the file: a CSV line number as an editor shows it, a JSON path "
        "or member and line, a VTODO's UID.",
        examples=["tasks.jsonl:12"],
    )
    field: str | None = Field(description="The field refused, if one.", examples=["title"])
    code: str = Field(description="What kind of problem.", examples=["invalid"])
    message: str = Field(examples=["String should have at most 200 characters"])


class LossyEntry(BaseModel):
    what: str = Field(
        description="A kind of thing the source has that is kept only partly or not at all.",
        examples=["Todoist date phrase kept as text"],
    )
    count: int = Field(examples=[3])
    example: str | None = Field(default=None, examples=["every other workday"])


class ImportProgress(BaseModel):
    done: int = Field(description="The file's tasks handled so far.", examples=[40])
    total: int = Field(description="The file's tasks.", examples=[120])


class ImportPublic(BaseModel):
    """An import: its state, progress and what it created or left out."""

    model_config = ConfigDict(from_attributes=True)

    id: int = Field(examples=[7])
    source: ImportSource = Field(examples=["todoist"])
    state: ImportState = Field(
        description="`queued` (waiting for a runner), `running`, `done`, `failed` (nothing of "
        "it is left: see `error`), `undone` (what it created is in the trash).",
        examples=["done"],
    )
    progress: ImportProgress
    counts: ImportCounts
    warnings: list[ImportWarning]
    lossy: list[LossyEntry]
    created_at: UtcDatetime = Field(examples=["2026-11-29T12:00:00Z"])
    finished_at: UtcDatetime | None = Field(examples=["2026-11-29T12:00:04Z"])
    error: str | None = Field(description="Why it failed (null: it did not).", examples=[None])

    @classmethod
    def of(cls, row: Any) -> ImportPublic:
        if isinstance(row, dict):
            from types import SimpleNamespace

            row = SimpleNamespace(**row)
        return cls(
            id=row.id,
            source=row.source,
            state=row.state,
            progress=ImportProgress(done=row.progress_done, total=row.progress_total),
            counts=ImportCounts.model_validate(row.counts or {}),
            warnings=[ImportWarning.model_validate(w) for w in row.warnings or []],
            lossy=[LossyEntry.model_validate(entry) for entry in row.lossy or []],
            created_at=row.created_at,
            finished_at=row.finished_at,
            error=row.error,
        )


class ImportPreview(BaseModel):
    """A dry run: what the import would create, nothing written."""

    source: ImportSource = Field(examples=["todoist"])
    counts: ImportCounts
    warnings: list[ImportWarning]
    lossy: list[LossyEntry]
    preview: list[TaskPreview] = Field(
        description=f"The first {PREVIEW_TASKS} tasks as they would be created, in the order "
        "they are written: the task object's fields but `id` (`TaskPreview`)."
    )
