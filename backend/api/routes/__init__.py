"""One router per resource; `api_router` collects them.

Order matters for speed: a request is matched against the routes in order, so the task
routes (the bulk of the traffic) come first, and the published contract's
`/api/{user_id}/tasks` paths last (no `/api/tasks` request ever tries them)."""

from fastapi import APIRouter

from backend.api.routes import (
    activity,
    auth,
    calendar,
    changes,
    chat,
    chatkit,
    comments,
    health,
    invitations,
    lists,
    members,
    tasks,
    user_tasks,
)

api_router = APIRouter()
api_router.include_router(tasks.router)
api_router.include_router(comments.router)
api_router.include_router(changes.router)
api_router.include_router(lists.router)
api_router.include_router(members.router)
api_router.include_router(invitations.router)
api_router.include_router(activity.router)
api_router.include_router(calendar.router)
api_router.include_router(auth.router)
api_router.include_router(health.router)
api_router.include_router(chat.router)
api_router.include_router(chatkit.router)
api_router.include_router(user_tasks.router)
api_router.include_router(user_tasks.lists_router)

__all__ = ["api_router"]
