"""A task's children, declared once (specs/data-model.md, "A task's children").

A child of a task is a table whose rows belong to one task (a key `(user_id, task_id)` ->
`tasks (user_id, id)` that cascades both ways), declared beside its table by a `TaskChild` in
its own module of `backend.models`; `CHILDREN` collects them all, by table name, so a new child
needs no line here. From it come its events (`task_children_register`, migration 0062, unless
`events=False`), its place in the trash (migration 0052), its service
(backend/services/child_rows.py), routes (backend/api/child_routes.py) and MCP tools
(backend/mcp/tools/children.py `child_tools`), each declaring its action
(`backend/api/actions.py`), and so the role matrix. `NOT_CHILDREN` says why each other table
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

# The MCP tools a child may have: `add_<noun>` (its `create` fields) and `list_<path>` (a
# page, oldest first), each acting as the matching route does.
ToolKind = Literal["add", "list"]


@dataclass(frozen=True)
class Stored:
    """A child whose rows each name an object in the attachments' storage: `key` the column
    naming it (a random key, backend/storage/base.py `new_key`), `size` the column of its
    bytes, `by` the column naming whose quota they count against (None: no one's). Its
    migration registers the same (`task_children_store`, migration 0079), and from that
    registry come, with no line for the child: the sweeper's "is this key named?"
    (`task_stored_known`: a key no row names, here or in a trash, is an orphan), the quota
    (`task_stored_used`), the trash's byte accounting (`task_trash_stored`) and the keys an
    account's deletion frees (`task_stored_keys_of`). An object goes after the commit that
    deleted its row (its own DELETE route, a trash's purge, the account's deletion)."""

    key: str
    size: str
    by: str | None = None


@dataclass(frozen=True)
class TaskChild:
    """A table whose rows belong to one task.

    `path`: its collection under `/api/tasks/{task_id}/` (None: no routes of its own), each
    row at `/{<noun>_id}`; `read`: the least action to read its rows, `write`: to add one or
    change or delete one's own (the role matrix tries both); `per_task`: the most rows a task
    holds (None: bounded otherwise); `edits`: a row is changed in place (`PATCH`), else only
    added and deleted; `fields`: the columns a client writes. `author`: the column that
    records who added a row (set to the caller), whose rows only their author changes, and
    deletes unless the caller may `moderate` (or owns the task's space). `sample`: a row's own
    columns, for the generated tests (every column with a key to `users` is given a member of
    the task's list). `events`: its rows added, changed (a column of `fields`, when it
    `edits`) and removed are recorded as events on their task (`<snake>.created`, `.updated`,
    `.deleted`), as its migration registered it (`task_children_register`, migration 0062);
    False for rows private to one member (members' own reminders). `stored`: its rows name
    objects in the attachments' storage (backend/storage), `Stored`. `create`
    None: no JSON create route (the child adds rows its own way, e.g. a multipart upload)."""

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
        """What its routes and tools declare: `write` to add, change or delete, else `read`
        (a child with routes declares both)."""
        action = self.write if writes else self.read
        if action is None:
            raise ValueError(f"{self.name} declares no routes")
        return action


def with_article(word: str) -> str:
    """`word` after "a" or "an", by its first letter (our nouns and roles: no "hour", no
    "user")."""
    return f"{'an' if word[:1].lower() in 'aeiou' else 'a'} {word}"


# Every declared child, by table name: collected from the modules of `backend.models` on
# first use (`__getattr__`), as the package discovers its tables, since each declaration
# lives beside its table and that module imports this one.
CHILDREN: tuple[TaskChild, ...]


def __getattr__(name: str) -> Any:
    """`CHILDREN` on first use, from every module of this package, by name as
    `backend/models/__init__.py` finds them (the modules that declare a child import this one:
    nothing here imports them by name)."""
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
    """`CHILDREN` in the database, for the trash's functions (migration 0052) and the events
    (0062): each child's migration adds its row with `task_children_register`."""

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
