"""A task's child's tools, generated from its declaration (backend/models/task_children.py
`tools`): comments' add_comment and list_comments.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from backend.mcp.tools.common import OneTask, Tool, child_page
from backend.models.task_children import CHILDREN, TaskChild
from backend.services.statements.access import least_role
from backend.services.tasks.child_rows import TaskChildService
from backend.services.tasks.task_children import child_service
from backend.services.unit_of_work import UnitOfWork


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
    arguments: Any = create_model(f"Add{one}Arguments", __base__=OneTask, **body)
    paging: Any = create_model(f"List{many}Arguments", __base__=OneTask, **child_page(path))
    # No docstring: it would enter the output schema.
    rows: dict[str, Any] = {path: (list[public], ...)}  # type: ignore[valid-type]
    page: Any = create_model(
        f"{many}Page",
        **rows,
        has_more=(bool, Field(description=f"More {path} follow: call again with after_id.")),
    )

    service = child_service(child)

    def add(work: UnitOfWork, given: Any) -> BaseModel:
        # Through the create schema, as the route's body is (its own validators too).
        data = create.model_validate(given.model_dump(include=set(create.model_fields)))
        children: TaskChildService = work.service(service)
        row = children.add(given.task_id, data.model_dump())
        return added(**{f"{snake}_id": row.id, "task_id": row.task_id})

    def listing(work: UnitOfWork, given: Any) -> BaseModel:
        children: TaskChildService = work.service(service)
        found, more = children.page(given.task_id, given.limit, given.after_id)
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
        ),
    }
    return tuple(tools[kind] for kind in child.tools)


# Every declared child's: comments' add and list.
TOOLS: tuple[Tool[Any], ...] = tuple(tool for child in CHILDREN for tool in child_tools(child))
