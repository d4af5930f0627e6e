"""The REST routes of a task's child (`TaskChildService`; backend/models/task_children.py),
written once for every declared child with a `path`: `GET`/`POST /api/tasks/{task_id}/<path>`
(a keyset-paged page, oldest first; 201 + `Location`), `GET`/`PATCH` (where it `edits`)/`DELETE
.../{<noun>_id}`, each declaring the child's `read` or `write` action. Operation ids,
summaries, the path parameter, error examples and envelope names derive from its `noun` and
`path`. No `from __future__ import annotations`: FastAPI reads the endpoints' annotations.
"""

from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Path, Request, Response, status
from pydantic import BaseModel, create_model

from backend.api.actions import acts
from backend.api.deps import Door, DoorRoute, uses
from backend.api.named_routes import camel
from backend.api.pagination import Cursor, PageSize, row_page
from backend.api.responses import (
    FORBIDDEN,
    INVALID_CURSOR,
    TASK_NOT_FOUND,
    VALIDATION,
    ErrorExample,
    errors,
    ok,
    rate_limited,
)
from backend.api.routes.tasks import TaskId
from backend.errors import LimitReached
from backend.models.common import DataEnvelope, DecimalDigits, ListEnvelope
from backend.models.references import Reference
from backend.models.task_children import TaskChild
from backend.models.types import TASK_ID_MAX
from backend.services.statements.access import least_role
from backend.services.tasks.child_rows import TaskChildService
from backend.services.tasks.task_children import child_service
from backend.storage.app import delete_objects


def task_child_router(child: TaskChild) -> APIRouter:
    """The routes of `child` under `/api/tasks/{task_id}/<path>`, tagged its `tag`."""
    service = child_service(child)
    rows = service.rows
    public: type[BaseModel] | None = child.public
    create: type[BaseModel] | None = child.create
    update, tag = child.update, child.tag or child.path
    if child.path is None or public is None or tag is None:
        raise ValueError(f"{child.name}: a child with routes declares its path and schemas")
    noun, path = child.noun, child.path
    snake, one, many = child.snake, camel(noun), camel(path.replace("_", " "))
    read, write = child.action(writes=False), child.action(writes=True)
    reader, writer = least_role(read), least_role(write)
    one_envelope: Any = create_model(f"{one}Envelope", __base__=DataEnvelope[public])  # type: ignore[valid-type]
    one_envelope.__doc__ = f"One {noun} of a task."
    page_envelope: Any = create_model(f"{many}Envelope", __base__=ListEnvelope[public])  # type: ignore[valid-type]
    page_envelope.__doc__ = f"A page of a task's {path}, oldest first."
    missing = ErrorExample.of(
        f"{snake}_not_found", f"No such {noun} of this task", rows.not_found()
    )
    found = (TASK_NOT_FOUND, missing)
    # Named by the child: each child's examples are its own. Another's row is refused a
    # deletion only where deleting any needs more than writing.
    changing: tuple[ErrorExample, ...] = ()
    deleting: tuple[ErrorExample, ...] = ()
    full: tuple[ErrorExample, ...] = ()
    if child.author and child.edits:
        changing = (
            ErrorExample.of(
                f"not_the_{snake}_author",
                f"{child.a_noun.capitalize()} only its author may change",
                rows.not_the_author(deleting=False),
            ),
        )
    if child.author and child.delete_any is not write:
        deleting = (
            ErrorExample.of(
                f"not_the_{snake}_author_or_{least_role(child.delete_any or write)}",
                f"Another's {noun}, deleted by a member below the role to delete any",
                rows.not_the_author(deleting=True),
            ),
        )
    if child.per_task:
        limited = f"This task has {child.per_task} {path}, the most there can be ({child.per_task})"
        full = (
            ErrorExample.of(
                f"too_many_{path}",
                f"The task has as many {path} as there can be",
                LimitReached(limited),
            ),
        )
    creating = (FORBIDDEN, TASK_NOT_FOUND, VALIDATION, *full)
    editing = (FORBIDDEN, *changing, *found, VALIDATION)
    row_id = Annotated[
        int,
        Path(
            alias=f"{snake}_id",
            ge=1,
            le=TASK_ID_MAX,
            description=f"The {noun}'s id.",
            examples=[11],
        ),
        DecimalDigits,
    ]
    read_id = Annotated[row_id, Reference(child.name, read)]
    write_id = Annotated[row_id, Reference(child.name, write)]
    router = APIRouter(
        prefix="/api/tasks", tags=[tag], responses=errors(401, 422, 503), route_class=DoorRoute
    )
    collection, by_id = f"/{{task_id}}/{path}", f"/{{task_id}}/{path}/{{{snake}_id}}"
    who = f"the task's owner, or a member of its list with `{writer}` or more"
    own = f" Only its author changes it while still `{writer}`." if child.author else ""

    def _one(row: Any) -> Any:
        return one_envelope(data=public.model_validate(row))

    @router.get(
        collection,
        openapi_extra=acts(read),
        operation_id=f"listTask{many}",
        response_model=page_envelope,
        summary=f"List a task's {path}",
        description="Oldest first, keyset-paged: follow `meta.next_cursor` until it is null. "
        f"Anyone who may read the task may read its {path} (a shared list's {reader} and up).",
        responses=ok(200, f"One page of the task's {path}.")
        | errors(404, 422, examples=(TASK_NOT_FOUND, VALIDATION, INVALID_CURSOR)),
    )
    def list_rows(
        door: Door,
        children: Annotated[TaskChildService, uses(service)],
        task_id: TaskId,
        limit: PageSize = 50,
        cursor: Cursor = None,
    ) -> Any:
        def read(after: int | None) -> tuple[Sequence[Any], bool]:
            return children.page(task_id, limit, after)

        found, meta = row_page(door, f"{path}/{task_id}", limit, cursor, read)
        return page_envelope(data=[public.model_validate(row) for row in found], meta=meta)

    limit = f" At most {child.per_task} a task." if child.per_task else ""
    author = " The caller is its author." if child.author else ""

    if create is not None:

        @router.post(
            collection,
            openapi_extra=acts(write),
            operation_id=f"createTask{one}",
            status_code=status.HTTP_201_CREATED,
            response_model=one_envelope,
            summary=f"Add {child.a_noun} to a task",
            description=f"Needs {who} (a personal task: its owner).{author}{limit}",
            responses=rate_limited(
                201,
                f"Created; `Location` is the new {noun}'s path (PATCH, DELETE).",
                "Location",
            )
            | errors(400, 403, 404, 413, 422, 429, examples=creating),
        )
        def create_row(
            children: Annotated[TaskChildService, uses(service)],
            task_id: TaskId,
            data: create,  # type: ignore[valid-type]
            request: Request,
            response: Response,
        ) -> Any:
            row = children.add(task_id, data.model_dump())  # type: ignore[attr-defined]
            root = request.scope.get("root_path", "")
            response.headers["Location"] = f"{root}/api/tasks/{task_id}/{path}/{row.id}"
            return _one(row)

    @router.get(
        by_id,
        openapi_extra=acts(read),
        operation_id=f"getTask{one}",
        response_model=one_envelope,
        summary=f"Get one {noun}",
        description=f"Anyone who may read the task may read its {path} (a shared list's "
        f"{reader} and up).",
        responses=ok(200, f"The {noun}.") | errors(404, 422, examples=(*found, VALIDATION)),
    )
    def get_row(
        children: Annotated[TaskChildService, uses(service)], task_id: TaskId, row: read_id
    ) -> Any:
        return _one(children.get(task_id, row))

    if child.edits and update is not None:

        @router.patch(
            by_id,
            openapi_extra=acts(write),
            operation_id=f"updateTask{one}",
            response_model=one_envelope,
            summary=f"Change {child.a_noun}: the fields sent",
            description=f"Needs {who}.{own}",
            responses=rate_limited(200, f"The {noun} as changed.")
            | errors(400, 403, 404, 413, 422, 429, examples=editing),
        )
        def update_row(
            children: Annotated[TaskChildService, uses(service)],
            task_id: TaskId,
            row: write_id,
            data: update,  # type: ignore[valid-type]
        ) -> Any:
            fields = data.model_dump(exclude_unset=True)  # type: ignore[attr-defined]
            return _one(children.change(task_id, row, fields))

    # Who deletes a row (the declaration's `author` and `delete_any`).
    if not child.author or child.delete_any is write:
        deletes = f" Any {noun}, whoever added it."
    elif child.delete_any:
        deletes = (
            f" Its author deletes its own; another's: a member with "
            f"`{least_role(child.delete_any)}` or more, or the list's owner."
        )
    else:
        deletes = " Its author deletes its own, the list's owner any."

    @router.delete(
        by_id,
        openapi_extra=acts(write),
        operation_id=f"deleteTask{one}",
        status_code=status.HTTP_204_NO_CONTENT,
        summary=f"Delete {child.a_noun}",
        description=f"Needs {who}.{deletes}",
        responses=rate_limited(204, "Deleted.")
        | errors(403, 404, 429, examples=(FORBIDDEN, *deleting, *found)),
    )
    def delete_row(
        children: Annotated[TaskChildService, uses(service)],
        task_id: TaskId,
        row: write_id,
        request: Request,
        later: BackgroundTasks,
    ) -> None:
        removed = children.remove(task_id, row)
        if child.stored:
            # After the response, so after the commit (`DoorRoute` commits as the endpoint
            # returns): a rollback never loses the bytes of a row still there.
            later.add_task(delete_objects, request.app, [getattr(removed, child.stored.key)])

    return router
