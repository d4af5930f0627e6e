"""The REST routes of a private resource of named, limited rows (`NamedRowService`), written
once: `GET /x` (every row, by name), `POST /x` 201 + `Location`, `GET`/`PATCH`/`DELETE
/x/{x_id}`. Operation ids, summaries, the path parameter, error examples and envelope names
derive from the service's `NamedRows` (`noun`, `plural`, `limit`). No `from __future__ import
annotations`: FastAPI reads the endpoints' annotations.
"""

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request, Response, status
from pydantic import BaseModel, create_model

from backend.api.deps import DoorRoute, uses
from backend.api.responses import VALIDATION, ErrorExample, errors, ok, rate_limited
from backend.models.common import DataEnvelope, DecimalDigits
from backend.models.envelopes import CountMeta
from backend.models.references import Reference
from backend.models.types import TASK_ID_MAX
from backend.services.statements.named_rows import NamedRows, NamedRowService


@dataclass(frozen=True)
class NamedResource:
    """A resource built here: what the tests of every such resource's rules need
    (tests/api/test_named_resources.py)."""

    prefix: str
    rows: NamedRows
    create: type[BaseModel]
    not_found: ErrorExample
    taken: ErrorExample
    full: ErrorExample


NAMED_RESOURCES: list[NamedResource] = []


def camel(words: str) -> str:
    return "".join(word.capitalize() for word in words.split())


def named_rows_router(
    service: type[NamedRowService],
    *,
    prefix: str,
    tag: str,
    public: type[BaseModel],
    create: type[BaseModel],
    update: type[BaseModel],
) -> APIRouter:
    """The five routes of `service`'s resource under `prefix` (`/api/x`), tagged `tag`."""
    rows = service.rows
    noun, plural, one, many = rows.noun, rows.plural, camel(rows.noun), camel(rows.plural)
    snake = "_".join(noun.split())
    one_envelope: Any = create_model(f"{one}Envelope", __base__=DataEnvelope[public])  # type: ignore[valid-type]
    one_envelope.__doc__ = f"One {noun}."
    all_envelope: Any = create_model(
        f"{many}Envelope",
        __base__=BaseModel,
        data=(list[public], ...),  # type: ignore[valid-type]
        meta=(CountMeta, ...),
    )
    all_envelope.__doc__ = f"Every {noun} of yours, by name (at most {rows.limit}: one page)."
    not_found = ErrorExample.of(f"{snake}_not_found", f"No such {noun}", rows.not_found())
    sample_name = create.model_json_schema()["examples"][0]["name"]
    taken = ErrorExample.of(f"{snake}_name_taken", "Name taken", rows.name_taken(sample_name))
    full = ErrorExample.of(f"too_many_{snake}s", "The most", rows.too_many(rows.limit))
    row_id = Annotated[
        int,
        Path(
            alias=f"{snake}_id", ge=1, le=TASK_ID_MAX, description=f"The {noun}'s id.", examples=[3]
        ),
        DecimalDigits,
        Reference(rows.table.name, None),  # the caller's own row
    ]
    router = APIRouter(
        prefix=prefix, tags=[tag], responses=errors(401, 422, 503), route_class=DoorRoute
    )
    by_id = f"/{{{snake}_id}}"

    def _one(row: Any) -> Any:
        return one_envelope(data=public.model_validate(row))

    @router.get(
        "", operation_id=f"list{many}", response_model=all_envelope, summary=f"List your {plural}"
    )
    def list_rows(named: Annotated[NamedRowService, uses(service)]) -> Any:
        data = [public.model_validate(row) for row in named.all()]
        return all_envelope(data=data, meta=CountMeta(count=len(data)))

    @router.post(
        "",
        operation_id=f"create{one}",
        status_code=status.HTTP_201_CREATED,
        response_model=one_envelope,
        summary=f"Create a {noun}",
        description=f"At most {rows.limit}; names are unique among yours, ignoring case.",
        responses=rate_limited(201, "Created; `Location` is its path.", "Location")
        | errors(400, 409, 413, 422, 429, examples=(taken, VALIDATION, full)),
    )
    def create_row(
        named: Annotated[NamedRowService, uses(service)],
        data: create,  # type: ignore[valid-type]
        request: Request,
        response: Response,
    ) -> Any:
        created = _one(named.create(data))
        root = request.scope.get("root_path", "")
        response.headers["Location"] = f"{root}{prefix}/{created.data.id}"
        return created

    @router.get(
        by_id,
        operation_id=f"get{one}",
        response_model=one_envelope,
        summary=f"Get a {noun}",
        responses=ok(200, f"The {noun}.") | errors(404, examples=(not_found,)),
    )
    def get_row(named: Annotated[NamedRowService, uses(service)], row: row_id) -> Any:
        return _one(named.get(row))

    @router.patch(
        by_id,
        operation_id=f"update{one}",
        response_model=one_envelope,
        summary=f"Change a {noun}: the fields sent",
        responses=rate_limited(200, f"The {noun} as changed.")
        | errors(400, 404, 409, 413, 429, examples=(not_found, taken, VALIDATION)),
    )
    def update_row(
        named: Annotated[NamedRowService, uses(service)],
        row: row_id,
        data: update,  # type: ignore[valid-type]
    ) -> Any:
        return _one(named.update(row, data))

    @router.delete(
        by_id,
        operation_id=f"delete{one}",
        status_code=status.HTTP_204_NO_CONTENT,
        summary=f"Delete a {noun}",
        responses=rate_limited(204, "Deleted.") | errors(404, 429, examples=(not_found,)),
    )
    def delete_row(named: Annotated[NamedRowService, uses(service)], row: row_id) -> None:
        named.delete(row)

    NAMED_RESOURCES.append(NamedResource(prefix, rows, create, not_found, taken, full))
    return router
