"""What every tool shares: the `Tool` record, `Arguments`, a result's `Credential` fields."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Generic, Literal, TypeVar

import mcp_types
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StringConstraints, create_model

from backend.contracts.tasks import TASK_ID_MAX, TASK_ID_MIN, USER_ID_MAX_LENGTH, USER_ID_MIN_LENGTH
from backend.models.common import StorableText
from backend.models.references import SUBJECT, USERS, Action, NotAReference, Reference
from backend.services.unit_of_work import UnitOfWork

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


def as_list(value: Any) -> Any:
    """One filter value may be sent bare ("high") instead of as a list (["high"])."""
    return [value] if isinstance(value, str) else value


class Arguments(BaseModel):
    """Every tool's arguments: `user_id` (optional), nothing unknown."""

    model_config = ConfigDict(extra="forbid")

    user_id: Annotated[UserId, Reference(USERS, None)] | None = Field(
        default=None, description=USER_ID_DESCRIPTION
    )


class OneTask(Arguments):
    task_id: Annotated[TaskId, SUBJECT]


def one_list(id_sent: bool, name: str | None, *, required: bool = False) -> None:
    """A list is named by its id or by its name (`list`), not both; `required`: one of them."""
    if required and id_sent == (name is not None):
        raise ValueError("give the list's list_id or its name (list), one of them")
    if id_sent and name is not None:
        raise ValueError("give list_id or list (a name), not both")


C = TypeVar("C", bound=BaseModel)


class TaskChange(BaseModel):
    """The contract's result of a write: which task, what happened, its title."""

    model_config = ConfigDict(json_schema_serialization_defaults_required=True)

    task_id: int
    status: str = ""  # each result's own (`change`)
    title: str


def change(name: str, status: str, base: type[C], **fields: Any) -> type[C]:
    """The result of a write (a `base`) whose `status` is always `status`, with `fields`."""
    return create_model(name, __base__=base, status=(Literal[status], status), **fields)


@dataclass(frozen=True)
class Credential:
    """A result field holding a credential (a feed's URL, a download link): MCP's caller gets it,
    a chat's model gets `<field>_withheld` instead, `where` (formatted with the result's fields)."""

    where: str


def _withheld(model: type[BaseModel], structured: dict[str, Any]) -> dict[str, Any]:
    """`structured` (a `model`'s dump) with each `Credential` field withheld, at any depth."""
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


CHILD_PAGE_MAX = 100


def child_page(path: str) -> dict[str, Any]:
    """`limit` and `after_id`, the arguments (`create_model`'s) of a page of a task's `path`."""
    # Read only among the task's own rows: it reaches no row, so any id answers as a position.
    after = NotAReference(f"a position in the task's {path}: those after this id")
    return {
        "limit": (
            Annotated[StrictInt, Field(ge=1, le=CHILD_PAGE_MAX)],
            Field(default=50, description=f"At most this many {path} (1-{CHILD_PAGE_MAX})."),
        ),
        "after_id": (
            Annotated[StrictInt, Field(ge=1, le=TASK_ID_MAX), after] | None,
            Field(
                default=None,
                description=f"Only the {path} after this one (the last id of the previous call).",
            ),
        ),
    }


ERRORS = (
    'On failure the result is a tool error whose text is {"error": {"code", "message", '
    '"details"}}, as in the REST API.'
)

A = TypeVar("A", bound=Arguments)


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
    idempotent: bool = False  # a read-only tool is, whatever this says
    text: Callable[[dict[str, Any]], Any] | None = None  # the text content, if not the result
    # What a user_id other than the caller's gets, as the REST twins answer.
    not_found: str = "Task not found"
    # What it does to the rows it names by id: the role matrix reads it (a tool without: fails).
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
                idempotent_hint=self.idempotent or self.read_only,
                open_world_hint=False,
            ),
        )

    def withheld(self, structured: dict[str, Any]) -> dict[str, Any]:
        """This tool's result as a chat keeps it and sends it to its model (`Credential`)."""
        return _withheld(self.result, structured)

    def result_of(self, result: BaseModel) -> mcp_types.CallToolResult:
        structured = result.model_dump(mode="json")
        text = json.dumps(self.text(structured) if self.text else structured, ensure_ascii=False)
        return mcp_types.CallToolResult(
            content=[mcp_types.TextContent(type="text", text=text)], structured_content=structured
        )


def _flat_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """A JSON Schema every client's tool converter reads: `$defs` inlined (never recursive; their
    docstrings, for developers, dropped), no generated `title`s."""
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
