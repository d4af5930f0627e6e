"""The list tools: list, create, rename, delete (a list by its id or by its name)."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from backend.contracts.task_listing import LIST_NAME_DESCRIPTION
from backend.mcp.tools.common import Arguments, Tool, change, one_list
from backend.models.references import SUBJECT, Action
from backend.models.task_list import LISTS_PER_USER, Color, ListCreate, ListId, ListName, ListUpdate
from backend.services.sharing.lists import ListService
from backend.services.unit_of_work import UnitOfWork


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
    status: str = ""  # each result's own (`change`)
    name: str


ListCreated = change("ListCreated", "created", ListChange)
ListRenamed = change("ListRenamed", "renamed", ListChange)


class ListDeleted(ListChange):
    status: Literal["deleted"] = "deleted"
    deleted_tasks: int = Field(description="How many tasks were deleted with it.")


class CreateListArguments(Arguments):
    name: ListName = Field(description="1-100 characters; unique among the user's lists.")
    color: Color | None = Field(default=None, description="#rrggbb, optional.")


class _OneList(Arguments):
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


def _list_lists(work: UnitOfWork, arguments: Arguments) -> ListSummaries:
    lists: ListService = work.service(ListService)
    return ListSummaries(lists=[ListSummary.model_validate(row) for row in lists.all()])


def _create_list(work: UnitOfWork, arguments: CreateListArguments) -> ListChange:
    lists: ListService = work.service(ListService)
    row = lists.create(ListCreate(name=arguments.name, color=arguments.color))
    return ListCreated(list_id=row.id, name=row.name)


def _rename_list(work: UnitOfWork, arguments: RenameListArguments) -> ListChange:
    lists: ListService = work.service(ListService)
    changes: dict[str, Any] = {"name": arguments.name}
    if "color" in arguments.model_fields_set:
        changes["color"] = arguments.color
    row = lists.update(
        arguments.list_id, ListUpdate.model_validate(changes), named=arguments.list_name or ""
    )
    return ListRenamed(list_id=row.id, name=row.name)


def _delete_list(work: UnitOfWork, arguments: _OneList) -> ListDeleted:
    # The result names the list and how many tasks went with it (the delete returns them).
    lists: ListService = work.service(ListService)
    row = lists.delete(arguments.list_id, named=arguments.list_name or "")
    return ListDeleted(list_id=row.id, name=row.name, deleted_tasks=row.task_count)


TOOLS: tuple[Tool[Any], ...] = (
    Tool(
        name="list_lists",
        not_found="List not found",
        title="List the lists",
        description="The signed-in user's lists (at most "
        f"{LISTS_PER_USER}), in their order, then the lists shared with the user: id, name, "
        "colour, task counts and the user's role. Tasks go into a list with "
        "add_task/update_task (list or list_id); list_tasks filters by one.",
        arguments=Arguments,
        result=ListSummaries,
        run=_list_lists,
        read_only=True,
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
)
