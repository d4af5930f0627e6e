"""`/api/tasks/{task_id}/comments`: a task's comments (issue 39, "Shared lists"), a declared
child of its task (backend/models/task_children.py): its routes are every child's
(backend/api/child_routes.py), their actions, paths and errors from the declaration."""

from backend.api.child_routes import task_child_router
from backend.models.sharing import CommentCreate, CommentPublic, CommentUpdate
from backend.services.comments import CommentService

router = task_child_router(
    CommentService, tag="comments", public=CommentPublic, create=CommentCreate, update=CommentUpdate
)
