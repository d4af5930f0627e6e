"""One router per resource, found by module name (a new one needs no line here): each module's
`ROUTERS` or `router`, and its `TAGS` (descriptions of tags `backend/api/openapi.py` lacks).
Routes are matched in order, so for speed the task routes come first (`FIRST`), the others by
name, and the published contract's `/api/{user_id}/...` twins last (`LAST`)."""

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
    return [importlib.import_module(f"{__name__}.{name}") for name in [*FIRST, *middle, *LAST]]


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
