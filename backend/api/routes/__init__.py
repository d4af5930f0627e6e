"""One router per resource; `api_router` collects them: every module of this package, found
by name (a new resource's module needs no line here), each one's `ROUTERS` or its `router`,
and its `TAGS` (tag name -> the OpenAPI description of a tag `backend/api/openapi.py` lacks).

Order matters for speed: a request is matched against the routes in order, so the task
routes (the bulk of the traffic) come first (`FIRST`), any module not named there after them
in name order, and the published contract's `/api/{user_id}/tasks` paths last (`LAST`: no
`/api/tasks` request ever tries them)."""

import importlib
import pkgutil
from types import ModuleType

from fastapi import APIRouter

FIRST = (
    "tasks",
    "children",
    "changes",
    "lists",
    "members",
    "invitations",
    "activity",
    "auth",
    "health",
)
LAST = ("user_tasks",)


def _modules() -> list[ModuleType]:
    names = sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))
    middle = [n for n in names if n not in FIRST and n not in LAST]
    ordered = [*FIRST, *middle, *LAST]
    return [importlib.import_module(f"{__name__}.{name}") for name in ordered]


def _routers(module: ModuleType) -> tuple[APIRouter, ...]:
    routers: tuple[APIRouter, ...] = getattr(module, "ROUTERS", None) or (module.router,)
    return routers


api_router = APIRouter()
tag_descriptions: dict[str, str] = {}
_built: list[APIRouter] = []
for _module in _modules():
    _built.extend(_routers(_module))
    tag_descriptions.update(getattr(_module, "TAGS", {}))
for _router in _built:
    api_router.include_router(_router)
# The names `/{task_id}` must not claim: every router's fixed paths under /api/tasks.
_tasks = importlib.import_module(f"{__name__}.tasks")
_tasks.TaskRoute.fixed = _tasks.fixed_paths(r for router in _built for r in router.routes)
