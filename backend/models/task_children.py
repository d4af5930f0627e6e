"""A task's children, declared once beside their tables (specs/data-model.md, "A task's
children"): events, trash, service (child_rows.py), routes (api/child_routes.py) and MCP tools
(mcp/tools/children.py) come from each `TaskChild`; `NOT_CHILDREN` says why each other table
keyed to `tasks` is none (tests/test_task_children.py).
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel
from sqlalchemy import CheckConstraint, Text, UniqueConstraint, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlmodel import SQLModel

from backend.models.columns import column
from backend.models.references import Action

# The MCP tools a child may have: `add_<noun>` and `list_<path>`, each as its route acts.
ToolKind = Literal["add", "list"]


@dataclass(frozen=True)
class Stored:
    """A child whose rows each name an object in storage (specs/storage.md, "Stored children"):
    the columns of its `key`, its `size` and whose quota it counts against (`by`; None: no
    one's), as its migration registers them (`task_children_store`)."""

    key: str
    size: str
    by: str | None = None


@dataclass(frozen=True)
class TaskChild:
    """A table whose rows belong to one task.

    `path`: its collection under `/api/tasks/{task_id}/` (None: no routes), each row at
    `/{<noun>_id}`; `read`/`write`: the least action to read, or to add and change or delete
    one's own; `per_task`: the most rows a task holds; `edits`: changed in place (`PATCH`),
    else only added and deleted; `fields`: the columns a client writes; `author`: the column
    recording who added a row (only they change it, and delete it unless the caller may
    `delete_any` or owns the space); `sample`: a row's own columns for the generated tests;
    `events`: its changes are events on their task (`<snake>.created`, ...: migration 0062),
    False for rows private to one member; `stored`: its rows name objects in storage;
    `create` None: no JSON create route (an upload)."""

    table: type[SQLModel]
    noun: str
    path: str | None = None
    read: Action | None = None
    write: Action | None = None
    per_task: int | None = None
    edits: bool = True
    fields: tuple[str, ...] = ()
    author: str | None = None
    delete_any: Action | None = None
    sample: Mapping[str, Any] = field(default_factory=dict)
    public: type[BaseModel] | None = None
    create: type[BaseModel] | None = None
    update: type[BaseModel] | None = None
    tag: str | None = None
    about: str = ""
    tools: tuple[ToolKind, ...] = ()
    events: bool = True
    stored: Stored | None = None

    @property
    def name(self) -> str:
        return str(self.table.__tablename__)

    @property
    def a_noun(self) -> str:
        """Its noun with its article, for messages: "an attachment", "a comment"."""
        return with_article(self.noun)

    @property
    def snake(self) -> str:
        """Its noun in names: `<snake>_id`, `add_<snake>`."""
        return "_".join(self.noun.split())

    @property
    def edited(self) -> tuple[str, ...]:
        """The columns whose change is an event (`task_children.edits`, migration 0062)."""
        return self.fields if self.events and self.edits else ()

    @property
    def event_types(self) -> tuple[str, ...]:
        """The types of the events it records (none without `events`)."""
        if not self.events:
            return ()
        verbs = ("created", "updated", "deleted") if self.edited else ("created", "deleted")
        return tuple(f"{self.snake}.{verb}" for verb in verbs)

    def action(self, *, writes: bool) -> Action:
        """What its routes and tools declare: `write` to add, change or delete, else `read`."""
        action = self.write if writes else self.read
        if action is None:
            raise ValueError(f"{self.name} declares no routes")
        return action


def with_article(word: str) -> str:
    """`word` after "a" or "an", by its first letter (our nouns: no "hour", no "user")."""
    return f"{'an' if word[:1].lower() in 'aeiou' else 'a'} {word}"


# Every declared child, by table name, collected from the package's modules on first use.
CHILDREN: tuple[TaskChild, ...]


def __getattr__(name: str) -> Any:
    """`CHILDREN`, found by module name (each module that declares a child imports this one)."""
    if name != "CHILDREN":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    found = {
        value.name: value
        for module in pkgutil.iter_modules([str(Path(__file__).parent)])
        for value in vars(importlib.import_module(f"{__package__}.{module.name}")).values()
        if isinstance(value, TaskChild)
    }
    globals()["CHILDREN"] = tuple(found[key] for key in sorted(found))
    return globals()["CHILDREN"]


# Tables with a key to `tasks` that are no task's child, and why.
NOT_CHILDREN: dict[str, str] = {
    "tasks": "a task's subtasks are tasks: the trash keeps the whole subtree itself",
    "task_reminders": "derived: the reminders due, scheduled by triggers from a task's "
    "`reminders` and its members' whenever those are written (a restore writes them again)",
}


class TaskChildTable(SQLModel, table=True):
    """`CHILDREN` in the database (trash, events), each row added by `task_children_register`."""

    __tablename__ = "task_children"
    __table_args__ = (
        UniqueConstraint("noun", name="uq_task_children_noun"),
        CheckConstraint(
            "(stored IS NULL) = (stored_size IS NULL) "
            "AND (stored IS NOT NULL OR stored_by IS NULL)",
            name="ck_task_children_stored",
        ),
    )

    name: str = column(Text, primary_key=True)
    # Its events' noun (`<noun>.created`, ...); None: it records none.
    noun: str | None = column(Text, default=None)
    # The columns whose change is recorded as `<noun>.updated`.
    edits: list[str] = column(
        ARRAY(Text), nullable=False, server_default=text("'{}'"), default_factory=list
    )
    # Its `Stored` (migration 0079): the key, size and uploader columns; NULL: none.
    stored: str | None = column(Text, default=None)
    stored_size: str | None = column(Text, default=None)
    stored_by: str | None = column(Text, default=None)
