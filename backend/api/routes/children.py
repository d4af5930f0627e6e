"""`/api/tasks/{task_id}/<path>`: the routes of every declared child of a task with a `path`
(backend/models/task_children.py `CHILDREN`; comments are one), each child's built by
`task_child_router` (backend/api/child_routes.py), its tag described by its `about`: a new
child needs no line here."""

from backend.api.child_routes import task_child_router
from backend.models.task_children import CHILDREN

_ROUTED = tuple(child for child in CHILDREN if child.path is not None)
ROUTERS = tuple(task_child_router(child) for child in _ROUTED)
TAGS = {child.tag or str(child.path): child.about for child in _ROUTED if child.about}
