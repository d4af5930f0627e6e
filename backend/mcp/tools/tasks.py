"""The task tools. The contract's five (`add_task`, `list_tasks`, `complete_task`, `delete_task`,
`update_task`) keep its names and result shapes; arguments are validated with the REST schemas'
field types and `backend.contracts`, so the same input gets the same answer on both."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal, Self

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    StrictBool,
    create_model,
    model_validator,
)

from backend.contracts.saved_filters import filtered
from backend.contracts.task_listing import (
    LIST_NAME_DESCRIPTION,
    FilterValuesBound,
    listing_fields,
    query_of,
)
from backend.contracts.tasks import stats_public
from backend.mcp.tools.common import Arguments, OneTask, TaskChange, Tool, as_list, change, one_list
from backend.mcp.tools.filters import FilterId
from backend.models import Priority, TaskCreate, TaskPublic, TaskUpdate
from backend.models.names import Name
from backend.models.references import MEMBERS, Action, Reference
from backend.models.task import create_field, due_value, patch_field
from backend.models.task_fields import FIELDS as TASK_FIELDS
from backend.models.task_fields import MCP_EDITABLE, Doc, Writable
from backend.models.task_list import ListName
from backend.models.task_ops import TaskStatsPublic
from backend.models.types import Assignees
from backend.services.sharing.lists import ListService
from backend.services.tasks.service import TaskService
from backend.services.tasks.task_listing import TaskListQuery
from backend.services.tasks.task_update import InList
from backend.services.unit_of_work import UnitOfWork


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


class _AddTask(Arguments, _NamedList):
    def task(self) -> TaskCreate:
        # Only what was sent: a `list_id` not sent is not "no list" (a subtask is in its parent's).
        sent = self.model_dump(exclude={"user_id", "list_name"}, exclude_unset=True)
        return TaskCreate.model_validate(sent)


class _UpdateTask(OneTask, _NamedList):
    # As REST's PATCH: omitted fields stay; null clears a nullable one (`patch_field`).
    def changes(self) -> TaskUpdate:
        return TaskUpdate.model_validate(self.model_dump(include=_EDITABLE, exclude_unset=True))


def _tool_fields(
    make: Callable[[Writable, Doc, Any], tuple[Any, Any]], update: bool
) -> dict[str, Any]:
    """add_task's / update_task's task fields: REST's rules, the tools' (shorter) descriptions."""
    fields: dict[str, Any] = {}
    for field in TASK_FIELDS:
        w = field.writable
        if w is None or not w.mcp:
            continue
        rest = w.patch if update else w.create
        description = (w.mcp_update if update else w.mcp_add) or rest.description
        fields[field.name] = make(w, Doc(description), w.mcp_type or w.type)
    return fields


def _arguments(name: str, base: type[BaseModel], fields: dict[str, Any]) -> Any:
    return create_model(name, __base__=base, __module__=__name__, **fields)


_EDITABLE = set(MCP_EDITABLE)
if TYPE_CHECKING:

    class AddTaskArguments(_AddTask): ...

    class UpdateTaskArguments(_UpdateTask): ...

else:
    AddTaskArguments = _arguments("AddTaskArguments", _AddTask, _tool_fields(create_field, False))
    UpdateTaskArguments = _arguments(
        "UpdateTaskArguments", _UpdateTask, _tool_fields(patch_field, True)
    )


class _JsonArguments:
    """A listing value in a tool call: strict JSON, a bare value for a one-item list."""

    integer = Strict()
    flag = StrictBool

    def values(self, item: Any) -> Any:
        return Annotated[list[item], BeforeValidator(as_list), FilterValuesBound]

    def names(self, reference: Reference) -> Any:
        return reference


class _ListTasks(Arguments):
    """list_tasks' arguments: `LISTING_PARAMS`' (REST's listing takes the same)."""

    if TYPE_CHECKING:
        list_id: int | str | None
        list_name: str | None

    filter: FilterId | Name | None = Field(
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
    ListTasksArguments = _arguments(
        "ListTasksArguments", _ListTasks, listing_fields("mcp", _JsonArguments())
    )


TaskCreated = change("TaskCreated", "created", TaskChange)
TaskCompleted = change("TaskCompleted", "completed", TaskChange)
TaskReopened = change("TaskReopened", "reopened", TaskChange)
TaskUpdated = change("TaskUpdated", "updated", TaskChange)
TaskDeleted = change("TaskDeleted", "deleted", TaskChange)


class TaskAssigned(TaskChange):
    status: Literal["assigned"] = "assigned"
    assignees: list[str]


class AssignTaskArguments(OneTask):
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


def _add_task(work: UnitOfWork, arguments: AddTaskArguments) -> TaskChange:
    tasks: TaskService = work.service(TaskService)
    task = tasks.create(arguments.task(), list_name=arguments.list_name)
    return TaskCreated(task_id=task.id, title=task.title)


def _list_tasks(work: UnitOfWork, arguments: ListTasksArguments) -> TaskSummaries:
    tasks: TaskService = work.service(TaskService)
    lists: ListService = work.service(ListService)
    saved = arguments.filter
    if saved is None:
        page = tasks.list_page(arguments.query())
    else:
        page = filtered(work, saved, arguments, "mcp", tasks.list_page)
    if arguments.list_name is not None and not page.items:
        # Empty: is it the list's, or is there no such list? (Only an empty page asks.)
        lists.named(arguments.list_name, field="list")
    return TaskSummaries(
        tasks=[TaskSummary.of(task) for task in page.items], has_more=page.next is not None
    )


def _get_task(work: UnitOfWork, arguments: OneTask) -> TaskPublic:
    tasks: TaskService = work.service(TaskService)
    return TaskPublic.model_validate(tasks.get(arguments.task_id))


def _completing(
    done: bool, result: type[TaskChange]
) -> Callable[[UnitOfWork, OneTask], TaskChange]:
    def run(work: UnitOfWork, arguments: OneTask) -> TaskChange:
        tasks: TaskService = work.service(TaskService)
        task = tasks.set_completed(arguments.task_id, done)
        return result(task_id=task.id, title=task.title)

    return run


def _update_task(work: UnitOfWork, arguments: UpdateTaskArguments) -> TaskChange:
    tasks: TaskService = work.service(TaskService)
    changes: TaskUpdate | InList = arguments.changes()
    if arguments.list_name is not None:
        changes = InList(arguments.changes(), arguments.list_name)
    task = tasks.update(arguments.task_id, changes)
    return TaskUpdated(task_id=task.id, title=task.title)


def _assign_task(work: UnitOfWork, arguments: AssignTaskArguments) -> TaskAssigned:
    tasks: TaskService = work.service(TaskService)
    changes = TaskUpdate.model_validate({"assignees": arguments.assignees})
    task = tasks.update(arguments.task_id, changes)
    return TaskAssigned(task_id=task.id, title=task.title, assignees=task.assignees)


def _delete_task(work: UnitOfWork, arguments: OneTask) -> TaskChange:
    tasks: TaskService = work.service(TaskService)
    title = tasks.delete(arguments.task_id)
    return TaskDeleted(task_id=arguments.task_id, title=title)


def _task_stats(work: UnitOfWork, arguments: Arguments) -> TaskStatsPublic:
    tasks: TaskService = work.service(TaskService)
    return stats_public(tasks.stats())


ADD_TASK = Tool(
    name="add_task",
    action=Action.TASK_WRITE,
    title="Add a task",
    description="Create a task for the signed-in user. Returns its task_id, "
    '"status": "created" and its title. Only title is required.',
    arguments=AddTaskArguments,
    result=TaskCreated,
    run=_add_task,
)


# After add_task and quick_add_task (backend/mcp/tools/__init__.py).
TOOLS: tuple[Tool[Any], ...] = (
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
        text=lambda structured: structured["tasks"],
    ),
    Tool(
        name="get_task",
        action=Action.LIST_READ,
        title="Get a task",
        description="One task with every field: description, priority, due date, tags, "
        "completion and timestamps (UTC).",
        arguments=OneTask,
        result=TaskPublic,
        run=_get_task,
        read_only=True,
    ),
    Tool(
        name="complete_task",
        action=Action.TASK_WRITE,
        title="Complete a task",
        description="Mark a task as completed. Sets, never toggles: completing a completed "
        'task keeps it completed. Returns its task_id, "status": "completed" and its title.',
        arguments=OneTask,
        result=TaskCompleted,
        run=_completing(True, TaskCompleted),
        idempotent=True,
    ),
    Tool(
        name="reopen_task",
        action=Action.TASK_WRITE,
        title="Reopen a task",
        description="Mark a completed task as pending again. Returns its task_id, "
        '"status": "reopened" and its title.',
        arguments=OneTask,
        result=TaskReopened,
        run=_completing(False, TaskReopened),
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
        arguments=OneTask,
        result=TaskDeleted,
        run=_delete_task,
        destructive=True,
        idempotent=True,
    ),
)


# The last tool listed.
TASK_STATS = Tool(
    name="task_stats",
    title="Task statistics",
    description="Counts of the signed-in user's tasks: total, pending, completed, overdue "
    "(pending and past due) and by priority.",
    arguments=Arguments,
    result=TaskStatsPublic,
    run=_task_stats,
    read_only=True,
    idempotent=True,
)
