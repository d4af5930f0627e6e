"""The task schemas, derived from `task_fields.py`; the table (`task_table.py`) and the field
types (`types.py`) are re-exported here."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    StrictBool,
    create_model,
    model_validator,
)

from backend.models.common import omittable
from backend.models.task_fields import FIELDS, READ_ONLY, REQUIRED, Doc, Writable, event_defaults
from backend.models.task_table import Task as Task
from backend.models.task_table import TaskRow as TaskRow
from backend.models.types import TAGS_MAX_COUNT as TAGS_MAX_COUNT
from backend.models.types import TASK_ID_MAX as TASK_ID_MAX
from backend.models.types import Instant as Instant
from backend.models.types import MinutesBeforeDue as MinutesBeforeDue
from backend.models.types import Priority as Priority
from backend.models.types import ReminderAt as ReminderAt
from backend.models.types import SortOrder as SortOrder
from backend.models.types import Tag as Tag
from backend.models.types import TaskSort as TaskSort
from backend.models.types import TaskStatus as TaskStatus
from backend.models.types import TimeZone as TimeZone
from backend.models.types import reminders_json as reminders_json
from backend.recurrence import day_of, day_start


def is_overdue(completed: bool, due: datetime | date | None, now: datetime, zone: str) -> bool:
    """Not completed and due before `now` (a day: once ended on its clock, as `task_due_end`)."""
    if completed or due is None:
        return False
    if isinstance(due, datetime):
        return due < now
    return day_start(due + timedelta(days=1), zone) <= now


def due_value(due_date: datetime | None, all_day: bool, zone: str) -> datetime | date | None:
    """`due_date` as the API shows it: the day of a task due on a day, else the instant."""
    if due_date is None or not all_day:
        return due_date
    return day_of(due_date, zone)


class _TaskInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    if TYPE_CHECKING:
        # The fields are derived (below); type checkers see each as Any.
        def __init__(self, **data: Any) -> None: ...
        def __getattr__(self, name: str) -> Any: ...

    @model_validator(mode="before")
    @classmethod
    def _drop_read_only(cls, data: Any) -> Any:
        # Front ends send a task back whole: these are dropped, any other unknown field a 422.
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if k not in READ_ONLY}
        return data


# A change every role that may write a task may send (Swagger's example; the role matrix's).
_PATCH_EXAMPLES: list[JsonValue] = [{"title": "Call the plumber", "priority": "high"}]


class _TaskPatch(_TaskInput):
    model_config = ConfigDict(json_schema_extra={"examples": _PATCH_EXAMPLES})


class _TaskMerge(_TaskPatch):
    """PUT merges as PATCH does; `{}` is refused (more likely a bug than a wish to bump
    `updated_at`)."""

    model_config = ConfigDict(json_schema_extra={"minProperties": 1, "examples": _PATCH_EXAMPLES})

    @model_validator(mode="after")
    def _names_a_field(self) -> Self:
        if not self.model_fields_set:
            raise ValueError("send at least one field to change")
        return self


class _TaskOutput(BaseModel):
    # Every field is in every response (the computed ones null where not computed).
    model_config = ConfigDict(
        from_attributes=True, json_schema_serialization_defaults_required=True
    )

    if TYPE_CHECKING:

        def __getattr__(self, name: str) -> Any: ...

    @classmethod
    def from_stored(cls, task: dict[str, Any]) -> Self:
        """A task as a change event stored it; a column added since reads its default."""
        return cls.model_validate({**event_defaults(), **task})

    @model_validator(mode="after")
    def _as_shown(self) -> Self:
        # A day is stored as its start on the task's clock and shown as the day.
        if self.all_day and isinstance(self.due_date, datetime):
            self.__dict__["due_date"] = due_value(self.due_date, True, self.time_zone)
        self.__dict__["is_overdue"] = is_overdue(
            self.completed, self.due_date, datetime.now(UTC), self.time_zone
        )
        return self


def _field(doc: Doc, **kwargs: Any) -> Any:
    """A pydantic `Field` with the declared text; what is not declared is left out."""
    if doc.description is not None:
        kwargs["description"] = doc.description
    if doc.examples is not None:
        kwargs["examples"] = doc.examples
    return Field(**kwargs)


def create_field(w: Writable, doc: Doc, type_: Any) -> tuple[Any, Any]:
    """A writable field as create and PUT take it: its default when omitted."""
    kwargs: dict[str, Any] = {}
    if w.default_factory is not None:
        kwargs["default_factory"] = w.default_factory
    elif w.default is not REQUIRED:
        kwargs["default"] = w.default
    if w.validate_default:
        kwargs["validate_default"] = True
    return (type_ | None if w.nullable else type_), _field(doc, **kwargs)


def patch_field(w: Writable, doc: Doc, type_: Any) -> tuple[Any, Any]:
    """A writable field as PATCH and PUT take it: `None` is "not sent"; null only clears."""
    if w.nullable:
        return type_ | None, _field(doc, default=None)
    not_null, kwargs = omittable(type_)
    return not_null, _field(doc, **kwargs)


def _writable() -> list[tuple[str, Writable]]:
    return [(f.name, f.writable) for f in FIELDS if f.writable is not None]


if TYPE_CHECKING:

    class TaskCreate(_TaskInput): ...

    class TaskUpdate(_TaskPatch): ...

    class TaskReplace(TaskUpdate): ...

    class TaskPublic(_TaskOutput): ...

    class TaskPreview(_TaskOutput): ...

else:
    TaskCreate = create_model(
        "TaskCreate",
        __base__=_TaskInput,
        __doc__="A new task. Only `title` is required.",
        __module__=__name__,
        **{name: create_field(w, w.create, w.type) for name, w in _writable()},
    )
    TaskUpdate = create_model(
        "TaskUpdate",
        __base__=_TaskPatch,
        __doc__="PATCH body: only the fields sent change. `description: null` clears it.",
        __module__=__name__,
        **{name: patch_field(w, w.patch, w.type) for name, w in _writable()},
    )
    # Front ends PUT the fields their form knows: a field not named keeps its value.
    TaskReplace = create_model(
        "TaskReplace",
        __base__=(TaskUpdate, _TaskMerge),
        __doc__="PUT body: only the fields sent change, as in PATCH; at least one field. "
        "`null` clears a nullable field. To replace the task whole, send every field.",
        __module__=__name__,
    )
    TaskPublic = create_model(
        "TaskPublic",
        __base__=_TaskOutput,
        __module__=__name__,
        # A derived field (the subtask counts) is null in a task as a change recorded it.
        **{
            f.name: (f.public, _field(f.doc, default=None) if f.derived else _field(f.doc))
            for f in FIELDS
        },
        # Computed by `_as_shown`, whatever is sent; last in every response.
        is_overdue=(
            bool,
            Field(
                default=False,
                description="Not completed and past its due date (a day: once that day has "
                "ended in the task's time_zone).",
                json_schema_extra={"readOnly": True},
            ),
        ),
    )

# What an import's dry run cannot know before the task is written: null in its preview.
UNKNOWN_BEFORE_WRITING = ("series_id", "previous_task_id", "position", "created_at", "updated_at")


def _previewed(name: str, info: Any) -> tuple[Any, Any]:
    """TaskPublic's field `name` as a preview shows it (unknown before writing: null)."""
    if name not in UNKNOWN_BEFORE_WRITING:
        return info.annotation, info
    return info.annotation | None, Field(
        default=None, description=f"Null: set when the task is written. {info.description or ''}"
    )


if not TYPE_CHECKING:
    TaskPreview = create_model(
        "TaskPreview",
        __base__=_TaskOutput,
        __doc__="A task as an import would create it (`POST /api/imports`, `dry_run=true`): "
        "the task object's fields but `id`, with what is set only when it is written "
        "(`position`, `series_id`, `previous_task_id`, `created_at`, `updated_at`) null; "
        "then where it sits in the file.",
        __module__=__name__,
        **{
            name: _previewed(name, info)
            for name, info in TaskPublic.model_fields.items()
            if name not in ("id", "is_overdue")
        },
        list_name=(
            str | None,
            Field(
                default=None,
                description="The name of the file's list it goes into (a list the import "
                "creates, or yours of that name); null: none of the file's (`list_id` says "
                "where, if anywhere). A subtask: its top-level task's.",
                examples=["Groceries"],
            ),
        ),
        file_key=(
            str,
            Field(description="Its id in the file (or what its row says).", examples=["1001"]),
        ),
        parent_file_key=(
            str | None,
            Field(
                default=None,
                description="Its parent's `file_key` (null: top level); `parent_id` is set "
                "only when that parent exists already (an earlier import's).",
                examples=[None],
            ),
        ),
        is_overdue=(
            bool,
            Field(
                default=False,
                description=TaskPublic.model_fields["is_overdue"].description,
                json_schema_extra={"readOnly": True},
            ),
        ),
    )


class TaskCompletion(BaseModel):
    """Optional body of `/complete`: sets the state instead of toggling it."""

    model_config = ConfigDict(extra="forbid")

    completed: StrictBool = Field(examples=[True])
