"""The MCP tools: names, arguments, results and annotations, and the service call each makes.

The five tools of the published contract (`add_task`, `list_tasks`, `complete_task`,
`delete_task`, `update_task`) keep its names, parameters and result shapes; the rest
(`get_task`, `reopen_task`, `task_stats`, and the optional arguments) let an agent do what the
REST API does. Arguments are validated with the REST schemas' own field types (`Title`,
`Description`, `Instant`, `Tags`, `Priority`) and with `backend.contracts` (the task and user
id bounds; `list_tasks` with the listing contract REST's query string uses), so the same input
gets the same answer on both. Every tool runs inside the caller's `UnitOfWork` and calls
`work.tasks`, the service behind the REST routes.

`user_id` is accepted because agents written for the contract send it. It never selects whose
tasks are touched: `backend.mcp.server` refuses a `user_id` other than the caller's with the
answer a missing task gets.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Annotated, Any, Generic, Literal, Self, TypeVar

import mcp_types
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    StrictBool,
    StrictInt,
    StringConstraints,
    create_model,
    model_validator,
)

from backend.contracts.saved_filters import (
    FilterCreate,
    FilterPublic,
    FilterUpdate,
    SavedQuery,
    filtered,
)
from backend.contracts.task_listing import (
    LIST_NAME_DESCRIPTION,
    FilterValuesBound,
    listing_fields,
    query_of,
)
from backend.contracts.tasks import (
    TASK_ID_MAX,
    TASK_ID_MIN,
    USER_ID_MAX_LENGTH,
    USER_ID_MIN_LENGTH,
    stats_public,
)
from backend.models import (
    Priority,
    TaskCreate,
    TaskEvent,
    TaskPublic,
    TaskUpdate,
)
from backend.models.attachment import TASK_ATTACHMENTS, AttachmentPublic
from backend.models.calendar_feed import CalendarFeedCreate, FeedKind, FeedScope, feed_url
from backend.models.common import StorableText
from backend.models.names import Name
from backend.models.quick_add import QuickAddRequest
from backend.models.references import (
    MEMBERS,
    SUBJECT,
    USERS,
    Action,
    NotAReference,
    Reference,
)
from backend.models.saved_filter import FILTER_ID_MAX, FILTERS_PER_USER, SavedFilter
from backend.models.task import (
    create_field,
    due_value,
    patch_field,
)
from backend.models.task_children import CHILDREN, TaskChild
from backend.models.task_fields import FIELDS as TASK_FIELDS
from backend.models.task_fields import (
    MCP_EDITABLE,
    Doc,
    Writable,
)
from backend.models.task_list import (
    LISTS_PER_USER,
    Color,
    ListCreate,
    ListId,
    ListName,
    ListUpdate,
)
from backend.models.task_ops import TaskStatsPublic
from backend.models.trash import TrashedTaskPublic
from backend.models.types import Assignees, TimeZoneName
from backend.services.access import least_role
from backend.services.quick_add import QuickAddService
from backend.services.registry import UnitOfWork
from backend.services.saved_filters import SavedFilterService
from backend.services.task_listing import TaskListQuery
from backend.services.trash import TRASH_NOT_FOUND, TrashService
from backend.services.undo import UndoService
from backend.storage.app import storage_for

USER_ID_DESCRIPTION = (
    "Optional. The signed-in user's id; the tasks are always the bearer token's user's. "
    "Any other id is refused as not found."
)
UserId = Annotated[
    str,
    StringConstraints(min_length=USER_ID_MIN_LENGTH, max_length=USER_ID_MAX_LENGTH),
    StorableText,
]
# Strict: JSON integers only (no "42", 42.0 or true), within the REST path parameter's bounds.
TaskId = Annotated[
    StrictInt,
    Field(
        ge=TASK_ID_MIN,
        le=TASK_ID_MAX,
        description="The task's id, as add_task or list_tasks gave it.",
    ),
]


def _as_list(value: Any) -> Any:
    """One filter value may be sent bare ("high") instead of as a list (["high"])."""
    return [value] if isinstance(value, str) else value


class _Arguments(BaseModel):
    """Every tool's arguments: `user_id` (optional), nothing unknown."""

    model_config = ConfigDict(extra="forbid")

    user_id: Annotated[UserId, Reference(USERS, None)] | None = Field(
        default=None, description=USER_ID_DESCRIPTION
    )


class _OneTask(_Arguments):
    task_id: Annotated[TaskId, SUBJECT]


def one_list(id_sent: bool, name: str | None, *, required: bool = False) -> None:
    """A list is named by its id or by its name (`list`), not both; `required`: one of them."""
    if required and id_sent == (name is not None):
        raise ValueError("give the list's list_id or its name (list), one of them")
    if id_sent and name is not None:
        raise ValueError("give list_id or list (a name), not both")


class _NamedList(BaseModel):
    """A list by id (`list_id`, from the task fields) or by name (`list`), not both."""

    # `list` in the tool's schema (an attribute named `list` would shadow the built-in here).
    list_name: ListName | None = Field(
        default=None, alias="list", description=LIST_NAME_DESCRIPTION
    )

    @model_validator(mode="after")
    def _one_way(self) -> Self:
        one_list("list_id" in self.model_fields_set, self.list_name)
        return self


class _AddTask(_Arguments, _NamedList):
    def task(self) -> TaskCreate:
        # Only what the agent sent: a `list_id` it did not send is not "no list" (a subtask
        # is in its parent's list).
        sent = self.model_dump(exclude={"user_id", "list_name"}, exclude_unset=True)
        return TaskCreate.model_validate(sent)


class _UpdateTask(_OneTask, _NamedList):
    # As in the REST PATCH body: omitted fields stay as they are; a nullable field is cleared
    # by null; the others cannot be null (refused by their type, `patch_field`).
    def changes(self) -> TaskUpdate:
        return TaskUpdate.model_validate(self.model_dump(include=_EDITABLE, exclude_unset=True))


def _tool_fields(
    make: Callable[[Writable, Doc, Any], tuple[Any, Any]], update: bool
) -> dict[str, Any]:
    """The task fields of add_task / update_task, from the declaration (`task_fields.py`):
    the REST field rules with the tools' own (shorter) descriptions."""
    fields: dict[str, Any] = {}
    for field in TASK_FIELDS:
        w = field.writable
        if w is None or not w.mcp:
            continue
        rest = w.patch if update else w.create
        description = (w.mcp_update if update else w.mcp_add) or rest.description
        fields[field.name] = make(w, Doc(description), w.mcp_type or w.type)
    return fields


_EDITABLE = set(MCP_EDITABLE)
if TYPE_CHECKING:

    class AddTaskArguments(_AddTask): ...

    class UpdateTaskArguments(_UpdateTask): ...

else:
    AddTaskArguments = create_model(
        "AddTaskArguments",
        __base__=_AddTask,
        __module__=__name__,
        **_tool_fields(create_field, update=False),
    )
    UpdateTaskArguments = create_model(
        "UpdateTaskArguments",
        __base__=_UpdateTask,
        __module__=__name__,
        **_tool_fields(patch_field, update=True),
    )


class _JsonArguments:
    """How a listing value arrives in a tool call: strict JSON, a bare value for a one-item
    list (the bound after `_as_list`, so it counts the list a bare value became)."""

    integer = Strict()
    flag = StrictBool

    def values(self, item: Any) -> Any:
        return Annotated[list[item], BeforeValidator(_as_list), FilterValuesBound]

    def names(self, reference: Reference) -> Any:
        return reference


# A saved filter named by its id (the caller's own: private).
_FilterId = Annotated[
    StrictInt, Field(ge=1, le=FILTER_ID_MAX), Reference(SavedFilter.__tablename__, None)
]


class _ListTasks(_Arguments):
    """list_tasks' arguments: `contracts/task_listing.LISTING_PARAMS`' (REST's listing takes
    the same)."""

    if TYPE_CHECKING:
        list_id: int | str | None
        list_name: str | None

    filter: _FilterId | Name | None = Field(
        default=None,
        description="A saved filter of the user's (list_filters), by id or by name (case "
        "ignored): its parameters apply, and the ones given here replace its own.",
    )

    def query(self) -> TaskListQuery:
        return query_of(self, "mcp")

    @model_validator(mode="after")
    def _one_list(self) -> Self:
        one_list(self.list_id is not None, self.list_name)
        return self


if TYPE_CHECKING:

    class ListTasksArguments(_ListTasks): ...

else:
    ListTasksArguments = create_model(
        "ListTasksArguments",
        __base__=_ListTasks,
        __module__=__name__,
        **listing_fields("mcp", _JsonArguments()),
    )


class TaskChange(BaseModel):
    """The contract's result of a write: which task, what happened, its title."""

    model_config = ConfigDict(json_schema_serialization_defaults_required=True)

    task_id: int
    status: str
    title: str


class TaskCreated(TaskChange):
    status: Literal["created"] = "created"


class TaskCompleted(TaskChange):
    status: Literal["completed"] = "completed"


class TaskReopened(TaskChange):
    status: Literal["reopened"] = "reopened"


class TaskUpdated(TaskChange):
    status: Literal["updated"] = "updated"


class TaskDeleted(TaskChange):
    status: Literal["deleted"] = "deleted"


class TaskUndone(TaskChange):
    status: Literal["undone"] = "undone"


class TaskAssigned(TaskChange):
    status: Literal["assigned"] = "assigned"
    assignees: list[str]


class AssignTaskArguments(_OneTask):
    assignees: Annotated[Assignees, Reference(MEMBERS, Action.TASK_WRITE)] = Field(
        description="Who the task is for, replacing whoever it was for: user ids, each the "
        "task's owner or a member of its list (list_members of a shared list); [] for nobody."
    )


class TaskSummary(BaseModel):
    """A listed task: the contract's id, title and completed, and what a listing filters by."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    title: str
    completed: bool
    priority: Priority
    due_date: datetime | date | None = Field(
        description="A day (YYYY-MM-DD: due on that day in the task's time zone) or an instant "
        "(UTC); null: no due date."
    )
    all_day: bool = Field(description="True when due on a day (due_date is YYYY-MM-DD).")
    tags: list[str]
    recurrence: str | None = Field(description="The task's RRULE; null if it does not recur.")
    next_due_date: datetime | None = Field(
        description="When the next occurrence is due, once this one is completed."
    )
    list_id: int | None = Field(description="Its list; null: in no list.")
    parent_id: int | None = Field(description="The task it is a subtask of; null: top level.")
    subtask_count: int | None = Field(description="How many subtasks it has.")

    @classmethod
    def of(cls, task: Any) -> TaskSummary:
        """From a task row: a day (stored as its start on the task's clock) shown as the day."""
        summary = cls.model_validate(task)
        summary.due_date = due_value(task.due_date, task.all_day, task.time_zone)
        return summary


# A page of the caller's tasks: list_tasks' result (a docstring would enter its output schema).
class TaskSummaries(BaseModel):
    tasks: list[TaskSummary]
    has_more: bool = Field(description="More tasks match than `limit` returned.")


class ListSummary(BaseModel):
    """A list: its id and name (what tools take), colour, task counts, and the user's role."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    color: str | None
    task_count: int = Field(description="Tasks in it, subtasks included.")
    open_task_count: int = Field(description="Of those, not completed.")
    role: str = Field(
        description="owner for the user's own lists; for a list shared with the user: viewer, "
        "commenter, editor or admin (editor or above changes its tasks)."
    )


# The caller's lists: list_lists' result.
class ListSummaries(BaseModel):
    lists: list[ListSummary]


class ListChange(BaseModel):
    """What a list tool did: which list, what happened, its name."""

    model_config = ConfigDict(json_schema_serialization_defaults_required=True)

    list_id: int
    status: str
    name: str


class ListCreated(ListChange):
    status: Literal["created"] = "created"


class ListRenamed(ListChange):
    status: Literal["renamed"] = "renamed"


class ListDeleted(ListChange):
    status: Literal["deleted"] = "deleted"
    deleted_tasks: int = Field(description="How many tasks were deleted with it.")


class CreateListArguments(_Arguments):
    name: ListName = Field(description="1-100 characters; unique among the user's lists.")
    color: Color | None = Field(default=None, description="#rrggbb, optional.")


class _OneList(_Arguments):
    """A list by id or by name (one of them)."""

    list_id: Annotated[ListId, SUBJECT] | None = Field(
        default=None, description="The list's id (list_lists)."
    )
    # `list` in the tool's schema (an attribute named `list` would shadow the built-in here).
    list_name: ListName | None = Field(
        default=None, alias="list", description=LIST_NAME_DESCRIPTION
    )

    @model_validator(mode="after")
    def _one_way(self) -> Self:
        one_list(self.list_id is not None, self.list_name, required=True)
        return self


class RenameListArguments(_OneList):
    name: ListName = Field(description="The new name (unique among the user's lists).")
    color: Color | None = Field(default=None, description="A new colour, #rrggbb (optional).")


@dataclass(frozen=True)
class Credential:
    """A result field that holds a credential the API issues (a calendar feed's URL; the next
    ones: app passwords, download links), as `Annotated[str, Credential(where=...)]`. MCP's
    answer goes to the caller's own client and holds it; a chat never does (issue 61): its
    turn keeps and sends the model `Tool.withheld`'s result, the field replaced by
    `<field>_withheld`, `where` (formatted with the result's fields) telling where the user
    gets it instead."""

    where: str


def _withheld(model: type[BaseModel], structured: dict[str, Any]) -> dict[str, Any]:
    """`structured` (a `model`'s dump) with each `Credential` field replaced by
    `<field>_withheld`, `where` formatted with its own object's fields; in the objects of
    nested models and lists of them too (each attachment of a page holds a download link)."""
    kept = dict(structured)
    for name, info in model.model_fields.items():
        for credential in (m for m in info.metadata if isinstance(m, Credential)):
            if kept.pop(name, None) is not None:
                kept[f"{name}_withheld"] = credential.where.format(**structured)
        inner = _nested_model(info.annotation)
        value = kept.get(name)
        if inner is None or value is None:
            continue
        if isinstance(value, list):
            kept[name] = [_withheld(inner, v) if isinstance(v, dict) else v for v in value]
        elif isinstance(value, dict):
            kept[name] = _withheld(inner, value)
    return kept


def _nested_model(annotation: Any) -> type[BaseModel] | None:
    """The model a field holds, alone or in a list (`X`, `list[X]`, `X | None`), if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _nested_model(arg)
        if found is not None:
            return found
    return None


class CreateCalendarFeedArguments(_Arguments):
    kind: FeedKind = Field(
        default=FeedKind.events,
        description="events (shown by every calendar app; the default) or todos (VTODO).",
    )
    list_id: Annotated[ListId, SUBJECT] | None = Field(
        default=None,
        description="One list's tasks only (list_lists; one the user can read); none: every "
        "task of the user's with a due date, shared lists included.",
    )


class CalendarFeedMade(BaseModel):
    feed_id: int
    status: Literal["created"] = "created"
    kind: FeedKind
    list_id: int | None
    url: Annotated[
        str,
        Credential(
            where="The feed's URL holds a secret token: a chat never shows it. The user gets "
            "it in their own client, which asks for a new one (POST "
            "/api/calendar-feeds/{feed_id}/rotate) and shows it only to them, once."
        ),
    ] = Field(
        description="The feed's address, with its secret token, for the caller's own client "
        "only: give it to the user to subscribe to in a calendar app. It is shown only now "
        "(the path alone when the server has no PUBLIC_URL: prefix the API's address)."
    )


CHILD_PAGE_MAX = 100


class FilterSummaries(BaseModel):
    """The caller's saved filters: list_filters' result."""

    filters: list[FilterPublic]


class SaveFilterArguments(_Arguments):
    name: Name = Field(
        description="1-100 characters; unique among the user's filters.", examples=["Urgent"]
    )
    query: SavedQuery = Field(
        default_factory=SavedQuery,
        description="GET /api/tasks parameters by their REST names, as JSON values: status, "
        "priority (array), tag (array), due_before, due_after, overdue, q (text search), "
        "updated_since, recurring, list_id, parent_id, assignee, sort, order, limit.",
    )


class _OneFilter(_Arguments):
    filter_id: _FilterId = Field(description="The filter's id (list_filters).", examples=[3])


class UpdateFilterArguments(_OneFilter):
    name: Name | None = Field(default=None, description="Its new name.")
    query: SavedQuery | None = Field(
        default=None, description="Its new query (replaces the whole query): as save_filter's."
    )


class FilterChange(BaseModel):
    """What a filter tool did: which filter, what happened, its name."""

    model_config = ConfigDict(json_schema_serialization_defaults_required=True)

    filter_id: int
    status: Literal["saved", "updated"]
    name: str


class FilterDeleted(BaseModel):
    model_config = ConfigDict(json_schema_serialization_defaults_required=True)

    filter_id: int
    status: Literal["deleted"] = "deleted"


ERRORS = (
    'On failure the result is a tool error whose text is {"error": {"code", "message", '
    '"details"}}, as in the REST API.'
)

A = TypeVar("A", bound=_Arguments)


@dataclass(frozen=True)
class Tool(Generic[A]):
    name: str
    title: str
    description: str
    arguments: type[A]
    result: type[BaseModel]
    run: Callable[[UnitOfWork, A], BaseModel]
    read_only: bool = False
    destructive: bool = False
    idempotent: bool = False
    # The text content's JSON when it is not the structured result itself.
    text: Callable[[dict[str, Any]], Any] | None = None
    # What a user_id other than the caller's gets: the answer for a missing task (a list
    # tool: a missing list), as the REST twins answer.
    not_found: str = "Task not found"
    # What it does to the list's rows it names by id (`task_id`, `list_id`, `trash_id`): the
    # role matrix reads it (tests/sharing/test_declared.py: a tool taking one without it fails).
    action: Action | None = None

    @property
    def writes(self) -> bool:
        """Counted against the caller's per-user write limit, as REST writes are."""
        return not self.read_only

    def definition(self) -> mcp_types.Tool:
        return mcp_types.Tool(
            name=self.name,
            title=self.title,
            description=f"{self.description} {ERRORS}",
            input_schema=_flat_schema(self.arguments.model_json_schema()),
            output_schema=_flat_schema(self.result.model_json_schema(mode="serialization")),
            annotations=mcp_types.ToolAnnotations(
                title=self.title,
                read_only_hint=self.read_only,
                destructive_hint=None if self.read_only else self.destructive,
                idempotent_hint=self.idempotent,
                open_world_hint=False,
            ),
        )

    def withheld(self, structured: dict[str, Any]) -> dict[str, Any]:
        """`structured` (this tool's result) as a chat keeps it and sends it to its model:
        each `Credential` field replaced by `<field>_withheld`, where to get it instead."""
        return _withheld(self.result, structured)

    def result_of(self, result: BaseModel) -> mcp_types.CallToolResult:
        structured = result.model_dump(mode="json")
        text = json.dumps(self.text(structured) if self.text else structured, ensure_ascii=False)
        return mcp_types.CallToolResult(
            content=[mcp_types.TextContent(type="text", text=text)],
            structured_content=structured,
        )


def _flat_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """A pydantic JSON Schema as a model reads it best: `$defs` references replaced by their
    definitions (enums and small objects, never recursive; their docstrings, written for
    developers, dropped) and no generated `title`s. Every client's tool converter reads it."""
    definitions = schema.pop("$defs", {})

    def node(value: dict[str, Any]) -> dict[str, Any]:
        reference = value.get("$ref")
        if isinstance(reference, str) and reference.startswith("#/$defs/"):
            target = dict(definitions[reference.removeprefix("#/$defs/")])
            target.pop("description", None)
            value = {**target, **{k: v for k, v in value.items() if k != "$ref"}}
        flat: dict[str, Any] = {}
        for key, item in value.items():
            if key == "title":
                continue
            if key == "properties":
                flat[key] = {name: node(sub) for name, sub in item.items()}
            else:
                flat[key] = walk(item)
        return flat

    def walk(value: Any) -> Any:
        if isinstance(value, dict):
            return node(value)
        if isinstance(value, list):
            return [walk(item) for item in value]
        return value

    return node(schema)


def _add_task(work: UnitOfWork, arguments: AddTaskArguments) -> TaskCreated:
    task = work.tasks.create(arguments.task(), list_name=arguments.list_name)
    return TaskCreated(task_id=task.id, title=task.title)


class QuickAddArguments(_Arguments, QuickAddRequest):
    """REST's quick-add body, the zone a plain name (the tools' `TimeZoneName`)."""

    time_zone: TimeZoneName | None = Field(
        default=None,
        description="IANA zone the text's dates and times are read in (Europe/Berlin); "
        "default the user's notification settings' zone, else UTC.",
    )


def _quick_add_task(work: UnitOfWork, arguments: QuickAddArguments) -> TaskCreated:
    body = QuickAddRequest.model_validate(
        arguments.model_dump(exclude={"user_id"}, exclude_unset=True)
    )
    task = work.tasks.create(work.service(QuickAddService).read(body).task)
    return TaskCreated(task_id=task.id, title=task.title)


def _list_tasks(work: UnitOfWork, arguments: ListTasksArguments) -> TaskSummaries:
    saved = arguments.filter
    if saved is None:
        page = work.tasks.list_page(arguments.query())
    else:
        page = filtered(work, saved, arguments, "mcp", work.tasks.list_page)
    if arguments.list_name is not None and not page.items:
        # Empty: is it the list's, or is there no such list? (Only an empty page asks.)
        work.lists.named(arguments.list_name, field="list")
    return TaskSummaries(
        tasks=[TaskSummary.of(task) for task in page.items],
        has_more=page.next is not None,
    )


def _get_task(work: UnitOfWork, arguments: _OneTask) -> TaskPublic:
    return TaskPublic.model_validate(work.tasks.get(arguments.task_id))


def _complete_task(work: UnitOfWork, arguments: _OneTask) -> TaskCompleted:
    task = work.tasks.set_completed(arguments.task_id, True)
    return TaskCompleted(task_id=task.id, title=task.title)


def _reopen_task(work: UnitOfWork, arguments: _OneTask) -> TaskReopened:
    task = work.tasks.set_completed(arguments.task_id, False)
    return TaskReopened(task_id=task.id, title=task.title)


def _update_task(work: UnitOfWork, arguments: UpdateTaskArguments) -> TaskUpdated:
    task = work.tasks.update(arguments.task_id, arguments.changes(), list_name=arguments.list_name)
    return TaskUpdated(task_id=task.id, title=task.title)


def _assign_task(work: UnitOfWork, arguments: AssignTaskArguments) -> TaskAssigned:
    changes = TaskUpdate.model_validate({"assignees": arguments.assignees})
    task = work.tasks.update(arguments.task_id, changes)
    return TaskAssigned(task_id=task.id, title=task.title, assignees=task.assignees)


def _delete_task(work: UnitOfWork, arguments: _OneTask) -> TaskDeleted:
    # The contract's result names the deleted task's title: the delete returns it.
    title = work.tasks.delete(arguments.task_id)
    return TaskDeleted(task_id=arguments.task_id, title=title)


TRASH_PAGE_MAX = 100


class ListTrashArguments(_Arguments):
    limit: Annotated[StrictInt, Field(ge=1, le=TRASH_PAGE_MAX)] = Field(
        default=50, description=f"At most this many deleted tasks (1-{TRASH_PAGE_MAX})."
    )


class TrashPage(BaseModel):
    """The deleted tasks the caller may restore, most recently deleted first: list_trash's
    result."""

    tasks: list[TrashedTaskPublic]
    has_more: bool = Field(description="Older deleted tasks follow (GET /api/trash pages them).")


class RestoreTaskArguments(_Arguments):
    trash_id: Annotated[TaskId, SUBJECT] = Field(
        description="The deleted task's id (its id before the delete; list_trash gives it)."
    )


class TaskRestored(TaskChange):
    status: Literal["restored"] = "restored"


def _list_trash(work: UnitOfWork, arguments: ListTrashArguments) -> TrashPage:
    rows, more = work.service(TrashService).page(None, arguments.limit)
    return TrashPage(tasks=[TrashedTaskPublic.model_validate(row) for row in rows], has_more=more)


def _restore_task(work: UnitOfWork, arguments: RestoreTaskArguments) -> TaskRestored:
    task = work.service(TrashService).restore(arguments.trash_id)
    return TaskRestored(task_id=task.id, title=task.title)


class UndoArguments(_Arguments):
    activity_id: (
        Annotated[
            StrictInt,
            Field(ge=TASK_ID_MIN, le=TASK_ID_MAX, examples=[1042]),
            Reference(TaskEvent.__tablename__, Action.TASK_WRITE),
        ]
        | None
    ) = Field(
        default=None,
        description="The activity entry to undo (`id` in GET /api/activity). Omitted: your own "
        "newest change of a task.",
    )


def _undo(work: UnitOfWork, arguments: UndoArguments) -> TaskUndone:
    task = work.service(UndoService).undo(arguments.activity_id)
    return TaskUndone(task_id=task.id, title=task.title)


def _task_stats(work: UnitOfWork, arguments: _Arguments) -> TaskStatsPublic:
    return stats_public(work.tasks.stats())


def _list_lists(work: UnitOfWork, arguments: _Arguments) -> ListSummaries:
    return ListSummaries(lists=[ListSummary.model_validate(row) for row in work.lists.all()])


def _create_list(work: UnitOfWork, arguments: CreateListArguments) -> ListCreated:
    row = work.lists.create(ListCreate(name=arguments.name, color=arguments.color))
    return ListCreated(list_id=row.id, name=row.name)


def _rename_list(work: UnitOfWork, arguments: RenameListArguments) -> ListRenamed:
    changes: dict[str, Any] = {"name": arguments.name}
    if "color" in arguments.model_fields_set:
        changes["color"] = arguments.color
    row = work.lists.update(
        arguments.list_id, ListUpdate.model_validate(changes), named=arguments.list_name or ""
    )
    return ListRenamed(list_id=row.id, name=row.name)


def _delete_list(work: UnitOfWork, arguments: _OneList) -> ListDeleted:
    # The result names the list and how many tasks went with it (the delete returns them).
    row = work.lists.delete(arguments.list_id, named=arguments.list_name or "")
    return ListDeleted(list_id=row.id, name=row.name, deleted_tasks=row.task_count)


def _list_filters(work: UnitOfWork, arguments: _Arguments) -> FilterSummaries:
    rows = work.service(SavedFilterService).all()
    return FilterSummaries(filters=[FilterPublic.model_validate(row) for row in rows])


def _save_filter(work: UnitOfWork, arguments: SaveFilterArguments) -> FilterChange:
    data = FilterCreate(name=arguments.name, query=arguments.query)
    row = work.service(SavedFilterService).create(data)
    return FilterChange(filter_id=row.id, status="saved", name=row.name)


def _update_filter(work: UnitOfWork, arguments: UpdateFilterArguments) -> FilterChange:
    sent = {k: getattr(arguments, k) for k in ("name", "query") if getattr(arguments, k)}
    row = work.service(SavedFilterService).update(arguments.filter_id, FilterUpdate(**sent))
    return FilterChange(filter_id=row.id, status="updated", name=row.name)


def _delete_filter(work: UnitOfWork, arguments: _OneFilter) -> FilterDeleted:
    work.service(SavedFilterService).delete(arguments.filter_id)
    return FilterDeleted(filter_id=arguments.filter_id)


def _create_calendar_feed(
    work: UnitOfWork, arguments: CreateCalendarFeedArguments
) -> CalendarFeedMade:
    scope = FeedScope.all if arguments.list_id is None else FeedScope.list
    data = CalendarFeedCreate(kind=arguments.kind, scope=scope, list_id=arguments.list_id)
    new = work.calendar_feeds.create(data)
    public = work.settings.public_url
    url = feed_url(new.token, str(public) if public else "")
    return CalendarFeedMade(
        feed_id=new.feed.id, kind=new.feed.kind, list_id=new.feed.list_id, url=url
    )


class ListAttachmentsArguments(_OneTask):
    limit: Annotated[StrictInt, Field(ge=1, le=CHILD_PAGE_MAX)] = Field(
        default=50, description=f"At most this many attachments (1-{CHILD_PAGE_MAX})."
    )
    after_id: (
        Annotated[
            StrictInt,
            Field(ge=1, le=TASK_ID_MAX),
            NotAReference("a position in the task's attachments: those after this id"),
        ]
        | None
    ) = Field(
        default=None,
        description="Only the attachments after this one (the last id of the previous call).",
    )


class AttachmentLink(AttachmentPublic):
    download_url: Annotated[
        str | None,
        Credential(
            where="A download link is a credential while it lives: a chat never shows it. "
            "The user downloads the file in their own client (GET {download_path}), which "
            "follows the API's redirect to a fresh link."
        ),
    ] = Field(
        description="A presigned URL good for `expires_in_seconds` (S3 storage): give it to "
        "the user, never store it. Null with filesystem storage: download through the API's "
        "`download_path` with the bearer token."
    )
    download_path: str = Field(examples=["/api/tasks/42/attachments/11/download"])
    expires_in_seconds: int | None = Field(examples=[300])


class AttachmentsPage(BaseModel):
    attachments: list[AttachmentLink]
    has_more: bool = Field(description="More attachments follow: call again with after_id.")


def _list_attachments(work: UnitOfWork, given: ListAttachmentsArguments) -> AttachmentsPage:
    found, more = work.child(TASK_ATTACHMENTS).page(given.task_id, given.limit, given.after_id)
    storage, ttl = storage_for(work.settings), work.settings.attachments_url_seconds
    links = []
    for row in found:
        url = storage.presigned_get(
            row.storage_key, filename=row.filename, content_type=row.content_type, ttl_seconds=ttl
        )
        links.append(
            AttachmentLink(
                **AttachmentPublic.model_validate(row).model_dump(),
                download_url=url,
                download_path=f"/api/tasks/{row.task_id}/attachments/{row.id}/download",
                expires_in_seconds=ttl if url else None,
            )
        )
    return AttachmentsPage(attachments=links, has_more=more)


def child_tools(child: TaskChild) -> tuple[Tool[Any], ...]:
    """The MCP tools `child` declares (backend/models/task_children.py `tools`), acting as its
    routes do: `add_<noun>` takes its `create` body's fields and returns the new row's id and
    its task's, `list_<path>` a page of `public` rows oldest first, after `after_id`."""
    if not child.tools:
        return ()
    noun, snake, path, public = child.noun, child.snake, str(child.path), child.public
    create = child.create
    if public is None or create is None or child.path is None:
        raise ValueError(f"{child.name}: a child with tools declares its path and schemas")
    many = "".join(word.capitalize() for word in path.split("_"))
    one = "".join(word.capitalize() for word in noun.split())
    who = least_role(child.action(writes=True))
    ids: dict[str, Any] = {f"{snake}_id": (int, ...), "task_id": (int, ...)}
    added: Any = create_model(
        f"{one}Added",
        __config__=ConfigDict(json_schema_serialization_defaults_required=True),
        __doc__=f"What add_{snake} did: which {noun}, on which task.",
        **ids,
        status=(Literal["created"], "created"),
    )
    body: dict[str, Any] = {n: (f.annotation, f) for n, f in create.model_fields.items()}
    arguments: Any = create_model(f"Add{one}Arguments", __base__=_OneTask, **body)
    # A position in the task's rows (those with a greater id follow), read only among the
    # task's own: it reaches no row, so any id answers as a position would.
    after = NotAReference(f"a position in the task's {path}: those after this id")
    paging: Any = create_model(
        f"List{many}Arguments",
        __base__=_OneTask,
        limit=(
            Annotated[StrictInt, Field(ge=1, le=CHILD_PAGE_MAX)],
            Field(default=50, description=f"At most this many {path} (1-{CHILD_PAGE_MAX})."),
        ),
        after_id=(
            Annotated[StrictInt, Field(ge=1, le=TASK_ID_MAX), after] | None,
            Field(
                default=None,
                description=f"Only the {path} after this one (the last id of the previous call).",
            ),
        ),
    )
    # No docstring: it would enter the output schema.
    rows: dict[str, Any] = {path: (list[public], ...)}  # type: ignore[valid-type]
    page: Any = create_model(
        f"{many}Page",
        **rows,
        has_more=(bool, Field(description=f"More {path} follow: call again with after_id.")),
    )

    def add(work: UnitOfWork, given: Any) -> BaseModel:
        # Through the create schema, as the route's body is (its own validators too).
        data = create.model_validate(given.model_dump(include=set(create.model_fields)))
        row = work.child(child).add(given.task_id, data.model_dump())
        return added(**{f"{snake}_id": row.id, "task_id": row.task_id})

    def listing(work: UnitOfWork, given: Any) -> BaseModel:
        found, more = work.child(child).page(given.task_id, given.limit, given.after_id)
        return page(**{path: [public.model_validate(row) for row in found], "has_more": more})

    author = f" (each with its {child.author})" if child.author else ""
    tools: dict[str, Tool[Any]] = {
        "add": Tool(
            name=f"add_{snake}",
            action=child.action(writes=True),
            title=f"Add a {noun} to a task",
            description=f"Add a {noun} to a task of the signed-in user's, or of a list shared "
            f"with them as {who} or more.{' The user is its author.' if child.author else ''} "
            f'Returns its {snake}_id, its task_id and "status": "created".',
            arguments=arguments,
            result=added,
            run=add,
        ),
        "list": Tool(
            name=f"list_{path}",
            action=child.action(writes=False),
            title=f"List a task's {path}",
            description=f"A task's {path}, oldest first{author}, at most limit at a time; "
            f"has_more: call again with after_id, the last {noun}'s id.",
            arguments=paging,
            result=page,
            run=listing,
            read_only=True,
            idempotent=True,
        ),
    }
    return tuple(tools[kind] for kind in child.tools)


TOOLS: tuple[Tool[Any], ...] = (
    Tool(
        name="add_task",
        action=Action.TASK_WRITE,
        title="Add a task",
        description="Create a task for the signed-in user. Returns its task_id, "
        '"status": "created" and its title. Only title is required.',
        arguments=AddTaskArguments,
        result=TaskCreated,
        run=_add_task,
    ),
    Tool(
        name="quick_add_task",
        action=Action.TASK_WRITE,
        title="Add a task from a line of text",
        description="Create a task from a line as a person types it, read by the server as "
        "POST /api/tasks/quick reads it: 'Buy milk tomorrow 5pm #Home @errands !high', "
        "'Water plants every other monday'. #list, @tag, !high|!medium|!low, +member, dates, "
        "times and 'every ...'; double-quoted text is kept as typed. Pass the user's words "
        "as they wrote them. Returns its task_id and title.",
        arguments=QuickAddArguments,
        result=TaskCreated,
        run=_quick_add_task,
    ),
    Tool(
        name="list_tasks",
        action=Action.LIST_READ,
        title="List tasks",
        description="List the signed-in user's tasks, newest first unless sorted otherwise. "
        "status picks all (default), pending or completed tasks; the other arguments filter "
        "(combined with AND), sort and limit. The text result is the list of tasks; the "
        "structured result also says whether more tasks match than the limit returned.",
        arguments=ListTasksArguments,
        result=TaskSummaries,
        run=_list_tasks,
        read_only=True,
        idempotent=True,
        text=lambda structured: structured["tasks"],
    ),
    Tool(
        name="get_task",
        action=Action.LIST_READ,
        title="Get a task",
        description="One task with every field: description, priority, due date, tags, "
        "completion and timestamps (UTC).",
        arguments=_OneTask,
        result=TaskPublic,
        run=_get_task,
        read_only=True,
        idempotent=True,
    ),
    Tool(
        name="complete_task",
        action=Action.TASK_WRITE,
        title="Complete a task",
        description="Mark a task as completed. Sets, never toggles: completing a completed "
        'task keeps it completed. Returns its task_id, "status": "completed" and its title.',
        arguments=_OneTask,
        result=TaskCompleted,
        run=_complete_task,
        idempotent=True,
    ),
    Tool(
        name="reopen_task",
        action=Action.TASK_WRITE,
        title="Reopen a task",
        description="Mark a completed task as pending again. Returns its task_id, "
        '"status": "reopened" and its title.',
        arguments=_OneTask,
        result=TaskReopened,
        run=_reopen_task,
        idempotent=True,
    ),
    Tool(
        name="update_task",
        action=Action.TASK_WRITE,
        title="Update a task",
        description="Change some fields of a task: only the fields sent change. Returns its "
        'task_id, "status": "updated" and its (new) title.',
        arguments=UpdateTaskArguments,
        result=TaskUpdated,
        run=_update_task,
        destructive=True,
        idempotent=True,
    ),
    Tool(
        name="assign_task",
        action=Action.TASK_WRITE,
        title="Assign a task",
        description="Set who a task is for (replacing whoever it was for): its owner or "
        "members of its list; editor or above in a shared list. Returns its task_id, "
        '"status": "assigned", its title and its assignees.',
        arguments=AssignTaskArguments,
        result=TaskAssigned,
        run=_assign_task,
        idempotent=True,
    ),
    Tool(
        name="delete_task",
        action=Action.TASK_WRITE,
        title="Delete a task",
        description="Delete a task, with its subtasks and comments, into the trash: it can "
        "be restored for 30 days (POST /api/trash/{task_id}/restore). Returns its task_id, "
        '"status": "deleted" and the title it had.',
        arguments=_OneTask,
        result=TaskDeleted,
        run=_delete_task,
        destructive=True,
        idempotent=True,
    ),
    Tool(
        name="list_trash",
        title="List deleted tasks",
        description="The deleted tasks the user may restore, most recently deleted first: "
        "its own, and those of lists shared with it as editor or more, each kept 30 days "
        "(purge_at) with its subtasks and comments. restore_task brings one back.",
        arguments=ListTrashArguments,
        result=TrashPage,
        run=_list_trash,
        read_only=True,
        idempotent=True,
    ),
    Tool(
        name="restore_task",
        action=Action.TASK_WRITE,
        not_found=TRASH_NOT_FOUND,
        title="Restore a deleted task",
        description="Bring a deleted task back from the trash (trash_id: its id, from "
        "list_trash) with its subtasks, comments, the assignees still allowed and its "
        "reminders: to its list and parent if they still exist and the user may still edit "
        'there, else to the top level. Returns its task_id, "status": "restored" and its '
        "title.",
        arguments=RestoreTaskArguments,
        result=TaskRestored,
        run=_restore_task,
    ),
    Tool(
        name="list_lists",
        not_found="List not found",
        title="List the lists",
        description="The signed-in user's lists (at most "
        f"{LISTS_PER_USER}), in their order, then the lists shared with the user: id, name, "
        "colour, task counts and the user's role. Tasks go into a list with "
        "add_task/update_task (list or list_id); list_tasks filters by one.",
        arguments=_Arguments,
        result=ListSummaries,
        run=_list_lists,
        read_only=True,
        idempotent=True,
        text=lambda structured: structured["lists"],
    ),
    Tool(
        name="create_list",
        not_found="List not found",
        title="Create a list",
        description="Create a list (it goes last). Names are unique among the user's lists, "
        'ignoring case. Returns its list_id, "status": "created" and its name.',
        arguments=CreateListArguments,
        result=ListCreated,
        run=_create_list,
    ),
    Tool(
        name="rename_list",
        action=Action.LIST_RENAME,
        not_found="List not found",
        title="Rename a list",
        description="Rename a list (by list_id or by its current name, list), optionally "
        'recolour it. Returns its list_id, "status": "renamed" and its new name.',
        arguments=RenameListArguments,
        result=ListRenamed,
        run=_rename_list,
        destructive=True,
        idempotent=True,
    ),
    Tool(
        name="delete_list",
        action=Action.LIST_DELETE,
        not_found="List not found",
        title="Delete a list",
        description="Delete a list (by list_id or by name, list) and every task in it, "
        "subtasks included: its tasks go to the trash for 30 days, restorable to the top "
        'level. Returns its list_id, "status": "deleted", its name and how many tasks were '
        "deleted with it.",
        arguments=_OneList,
        result=ListDeleted,
        run=_delete_list,
        destructive=True,
        idempotent=True,
    ),
    Tool(
        name="list_filters",
        not_found=SavedFilterService.rows.not_found().message,
        title="List saved filters",
        description=f"The user's saved filters (at most {FILTERS_PER_USER}), by name: id, name "
        "and query (GET /api/tasks parameters). list_tasks applies one (filter: id or name).",
        arguments=_Arguments,
        result=FilterSummaries,
        run=_list_filters,
        read_only=True,
        idempotent=True,
        text=lambda structured: structured["filters"],
    ),
    Tool(
        name="save_filter",
        not_found=SavedFilterService.rows.not_found().message,
        title="Save a filter",
        description="Save a task query under a name, to list its tasks again later "
        "(list_tasks with filter). The query is checked as list_tasks/GET /api/tasks check "
        "it. Names are unique among the user's filters, ignoring case. Returns its filter_id, "
        '"status": "saved" and its name.',
        arguments=SaveFilterArguments,
        result=FilterChange,
        run=_save_filter,
    ),
    Tool(
        name="update_filter",
        not_found=SavedFilterService.rows.not_found().message,
        title="Rename or change a saved filter",
        description="Rename a saved filter (name) and/or replace its query. Returns its "
        'filter_id, "status": "updated" and its name.',
        arguments=UpdateFilterArguments,
        result=FilterChange,
        run=_update_filter,
        destructive=True,
        idempotent=True,
    ),
    Tool(
        name="delete_filter",
        not_found=SavedFilterService.rows.not_found().message,
        title="Delete a saved filter",
        description='Delete a saved filter; its tasks stay. Returns its filter_id and "status": '
        '"deleted".',
        arguments=_OneFilter,
        result=FilterDeleted,
        run=_delete_filter,
        destructive=True,
        idempotent=True,
    ),
    Tool(
        name="create_calendar_feed",
        action=Action.LIST_READ,
        not_found="List not found",
        title="Create a calendar feed",
        description="Create an iCalendar feed URL of the user's tasks with a due date (or of "
        "one list, list_id) to subscribe to in Google Calendar, Outlook or Apple Calendar. "
        "The url holds a secret token and goes only to the caller's own client, in this "
        "answer only: give it to the user there. A chat never sees it: its result has "
        "url_withheld instead, saying where the user gets the URL. "
        'Returns its feed_id, "status": "created", its kind, list_id and url.',
        arguments=CreateCalendarFeedArguments,
        result=CalendarFeedMade,
        run=_create_calendar_feed,
    ),
    # Every declared child's (backend/models/task_children.py): comments' add and list.
    *(tool for child in CHILDREN for tool in child_tools(child)),
    Tool(
        name="list_attachments",
        action=TASK_ATTACHMENTS.action(writes=False),
        title="List a task's attachments",
        description="A task's files, oldest first (after after_id), each with its name, "
        "detected type, size, sha256 and a download link that lives minutes "
        "(download_url, with S3 storage; else download_path through the API). Anyone who may "
        "read the task. Returns attachments and has_more.",
        arguments=ListAttachmentsArguments,
        result=AttachmentsPage,
        run=_list_attachments,
        read_only=True,
        idempotent=True,
    ),
    Tool(
        name="undo",
        title="Undo a change",
        description='Undo one change of a task from the activity ("undo that"): its fields '
        "back to their old values, a completion back to open, a reopening back to completed, "
        "a move back, a deleted task restored from the trash. Without activity_id, your own "
        "newest change (a deletion included; a list's deletion is refused, naming the trash). "
        "Refused (409, nothing changed) when a "
        "later change touched the same fields; another member's change only as the list's "
        'admin or owner. Returns its task_id, "status": "undone" and its title.',
        arguments=UndoArguments,
        result=TaskUndone,
        run=_undo,
        destructive=True,
    ),
    Tool(
        name="task_stats",
        title="Task statistics",
        description="Counts of the signed-in user's tasks: total, pending, completed, overdue "
        "(pending and past due) and by priority.",
        arguments=_Arguments,
        result=TaskStatsPublic,
        run=_task_stats,
        read_only=True,
        idempotent=True,
    ),
)


_BY_NAME = {tool.name: tool for tool in TOOLS}


def withheld_call(call: dict[str, Any]) -> dict[str, Any]:
    """A chat's tool call (as `ToolCallPublic` fields) as it is read: its result
    `Tool.withheld`, wherever a stored call is read (the model's history, a retry's earlier
    calls, the message listing, a replayed answer). A call stored before a chat withheld
    credentials (issue 61) then holds none either; one stored since is unchanged."""
    tool = _BY_NAME.get(call.get("name"))  # type: ignore[arg-type]
    result = call.get("result")
    if tool is None or call.get("outcome") != "ok" or not isinstance(result, dict):
        return call
    kept = tool.withheld(result)
    return call if kept == result else {**call, "result": kept}


def tools_document() -> dict[str, Any]:
    """Every tool as `tools/list` returns it: the committed snapshot, specs/mcp-tools.json."""
    return {
        "tools": [
            tool.definition().model_dump(mode="json", by_alias=True, exclude_none=True)
            for tool in TOOLS
        ]
    }
