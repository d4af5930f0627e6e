"""Every id-carrying field of every request, found from the declarations (the path parameters
and pydantic models the routes and MCP tools validate with), with the marker it carries
(backend/models/references.py). tests/sharing/test_declared.py fails on an id without one;
tests/sharing/test_reference_matrix.py generates its cases from the `Reference` fields."""

from __future__ import annotations

import re
import types
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any, Union, get_args, get_origin

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from backend.api.actions import BY_METHOD, FEED, declared
from backend.config import Settings
from backend.main import create_app
from backend.mcp.tools import TOOLS as MCP_TOOLS
from backend.models.references import LISTS, MEMBERS, Action, NotAReference, Reference, Subject
from tests.conftest import TEST_SECRET, api_routes
from tests.resources import LIST, TASK, body_model, fill_sample, placeholders_in, samples, unique

# A field that carries an id by its name: `id`, `*_id`, `*_ids`, `assignee(s)`.
ID_NAME = re.compile(r"(^|_)ids?$|^assignees?$")
MARKERS = (Reference, Subject, NotAReference)
# The `/api/{user_id}/...` twins answer as their `/api/...` routes do (one implementation).
TWINS = "/api/{user_id}/"


@dataclass(frozen=True)
class Field:
    """One field of one request: `target` is `("PATCH", "/api/tasks/{task_id}")` or
    `("tool", "update_task")`; `where` is `path`, `body`, `query` or `arguments`; `path` the field's
    place in it (`operations[].list_id`)."""

    target: tuple[str, str]
    where: str
    path: str
    markers: tuple[Any, ...]

    @property
    def name(self) -> str:
        return self.path.rsplit(".", 1)[-1]

    @property
    def reference(self) -> Reference | None:
        found = [m for m in self.markers if isinstance(m, Reference)]
        return found[0] if found else None

    @property
    def id(self) -> str:
        return f"{self.target[0]} {self.target[1]} {self.where}.{self.path}"


def _markers(annotation: Any) -> Iterator[Any]:
    """The markers anywhere in a type (through `Annotated`, unions, lists), not inside a
    model's own fields."""
    if get_origin(annotation) is Annotated:
        yield from (m for m in annotation.__metadata__ if isinstance(m, MARKERS))
        yield from _markers(get_args(annotation)[0])
        return
    for arg in get_args(annotation):
        yield from _markers(arg)


def _models(annotation: Any, suffix: str = "") -> Iterator[tuple[type[BaseModel], str]]:
    """The models a type holds, with how a path reaches each (`[]` for a list's items)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation, suffix
        return
    origin = get_origin(annotation)
    if origin is Annotated:
        yield from _models(get_args(annotation)[0], suffix)
    elif origin in (Union, types.UnionType):
        for arg in get_args(annotation):
            yield from _models(arg, suffix)
    elif origin in (list, tuple, set, frozenset):
        for arg in get_args(annotation):
            yield from _models(arg, suffix + "[]")


def _fields(info: FieldInfo, key: str) -> Iterator[tuple[str, tuple[Any, ...]]]:
    markers = tuple(m for m in info.metadata if isinstance(m, MARKERS))
    yield key, markers + tuple(_markers(info.annotation))
    for model, suffix in _models(info.annotation):
        yield from model_fields(model, f"{key}{suffix}.")


def model_fields(model: type[BaseModel], prefix: str = "") -> Iterator[tuple[str, tuple[Any, ...]]]:
    for name, info in model.model_fields.items():
        yield from _fields(info, prefix + (info.alias or name))


def _dependants(dependant: Dependant) -> Iterator[Dependant]:
    yield dependant
    for sub in dependant.dependencies:
        yield from _dependants(sub)


def _param_fields(info: FieldInfo, alias: str, where: str) -> Iterator[tuple[str, tuple[Any, ...]]]:
    """A body that is one model is its fields; a query parameter (or a form field) is
    itself."""
    model = info.annotation
    if isinstance(model, type) and issubclass(model, BaseModel):
        return model_fields(model)
    return _fields(info, alias)


def request_fields(app: FastAPI) -> list[Field]:
    """Every field of every route's path, body and query and every tool's arguments."""
    found: dict[tuple[Any, ...], Field] = {}
    for route in api_routes(app):
        if route.path.startswith(TWINS):
            continue
        for method in sorted((route.methods or set()) - {"HEAD"}):
            target = (method, route.path)
            for dependant in _dependants(route.dependant):
                for where, params in (
                    ("path", dependant.path_params),
                    ("query", dependant.query_params),
                    ("body", dependant.body_params),
                ):
                    for param in params:
                        for path, markers in _param_fields(param.field_info, param.alias, where):
                            found[(target, where, path)] = Field(target, where, path, markers)
    fields = list(found.values()) + tool_fields()
    return sorted(fields, key=lambda f: f.id)


def tool_fields() -> list[Field]:
    """Every field of every MCP tool's arguments."""
    return [
        Field(("tool", tool.name), "arguments", path, markers)
        for tool in MCP_TOOLS
        for path, markers in model_fields(tool.arguments)
    ]


def declared_app() -> FastAPI:
    """The app, only to read its routes' declarations at collection (nothing connects)."""
    settings = Settings(
        environment="test",
        database_url="postgresql://collect@localhost/collect",
        jwt_secret=TEST_SECRET,
        auto_migrate=False,
    )
    return create_app(settings)


# What each route and tool declares it does to a list's rows (backend/api/actions.py; a
# tool's `action`), read from the app once: the matrices' routes and tools.
_DECLARED = declared_app()
ROUTES: dict[tuple[str, str], Action] = declared(_DECLARED)
FEEDS: dict[tuple[str, str], Action] = declared(_DECLARED, FEED)
# The DAV routes' methods (backend/dav/routes.py `acts_by_method`).
DAV_ROUTES: dict[tuple[str, str], Action] = declared(_DECLARED, BY_METHOD)
TOOLS: dict[str, Action] = {tool.name: tool.action for tool in MCP_TOOLS if tool.action}


# -- what the matrices send: from the body schemas' samples and the tools' arguments ----------

_BY_TARGET: dict[tuple[str, str], APIRoute] = {
    (method, route.path): route
    for route in api_routes(_DECLARED)
    for method in (route.methods or set()) - {"HEAD"}
}


def _ids(value: Any) -> bool:
    """Whether a body names a row by id anywhere (a key named as an id carries one)."""
    if isinstance(value, dict):
        return any(ID_NAME.search(k) or _ids(v) for k, v in value.items())
    return isinstance(value, list) and any(map(_ids, value))


def _member_keys(model: type[BaseModel]) -> set[str]:
    """The body's fields that name a member of the route's list (a transfer's heir), not an
    assignee (a task write's)."""
    return {
        path
        for path, markers in model_fields(model)
        for m in markers
        if isinstance(m, Reference) and m.table == MEMBERS and m.action is not Action.TASK_WRITE
    }


def sample_body(target: tuple[str, str], task_id: int, list_id: int) -> Any:
    """A body the route accepts from a caller allowed to send it (None: it takes none): the
    first of its body schema's OpenAPI `examples` that names no row, else of its samples
    (tests/resources.py `samples`: the isolation guards') that names no row but the route's
    own task and list, those filled in; its free text made unique. A member it names is
    `names_a_member`'s to fill."""
    model = body_model(_BY_TARGET[target])
    if model is None:
        return None
    # The schema's own examples first, those that name no row by id (a row's id is the
    # world's: only the isolation samples' placeholders name one).
    examples = [e for e in model.model_json_schema().get("examples", []) if not _ids(e)]
    own = [s for s in examples + samples(model) if placeholders_in(s) <= {TASK, LIST}]
    assert own, f"{target}: no sample of {model.__name__} names only its own task or list"
    return fill_sample(unique(own[0], model), {TASK: task_id, LIST: list_id})


def names_a_member(target: tuple[str, str]) -> set[str]:
    """The body fields of the route's sample that name a member of its list."""
    model = body_model(_BY_TARGET[target])
    if model is None:
        return set()
    return _member_keys(model) & set(sample_body(target, 0, 0) or {})


def tool_subject(tool: Any) -> str:
    """The argument that names the row a tool acts on: its `Subject`, else the list it names
    with the tool's own action (add_task's, list_tasks' `list_id`)."""
    for path, markers in model_fields(tool.arguments):
        for m in markers:
            if isinstance(m, Subject) or (
                isinstance(m, Reference) and m.table == LISTS and m.action is tool.action
            ):
                return path
    raise AssertionError(f"{tool.name}: no argument names its row (a Subject)")


def id_fields(app: FastAPI) -> list[Field]:
    """The fields that carry an id, by name, or that declare a marker."""
    return [f for f in request_fields(app) if ID_NAME.search(f.name) or f.markers]


def failure(
    case: str, want: str, got: tuple[int, bytes], changed: bool, missing: tuple[int, bytes] | None
) -> str:
    """A generated matrix's line for a case that answered otherwise: what it wanted, what it
    got (and whether rows changed), and what the same request naming a missing id got."""
    line = f"{case}: wanted {want}, got {got[0]} {got[1][:160]!r}"
    line += " (rows changed)" if changed else ""
    if missing is not None:
        line += f"; a missing one's: {missing[0]} {missing[1][:160]!r}"
    return line
