"""One router per resource; `api_router` collects them.

Order matters for speed only: a request is matched against the routes in order, so the
task routes (the bulk of the traffic) come first."""

from fastapi import APIRouter

from backend.api.routes import auth, health, tasks

api_router = APIRouter()
api_router.include_router(tasks.router)
api_router.include_router(auth.router)
api_router.include_router(health.router)

__all__ = ["api_router"]
