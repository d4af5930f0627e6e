"""`/api/tasks/{task_id}/<path>`: the routes of every declared child with a `path` (`CHILDREN`),
each built by `task_child_router` and tagged by its `about`: a new child needs no line here."""

from backend.api.child_routes import task_child_router
from backend.models.task_children import CHILDREN

_ROUTED = tuple(child for child in CHILDREN if child.path is not None)
ROUTERS = tuple(task_child_router(child) for child in _ROUTED)
TAGS = {child.tag or str(child.path): child.about for child in _ROUTED if child.about}
