"""One router per resource; `api_router` collects them."""

from fastapi import APIRouter

from backend.api.routes import auth, health, tasks

api_router = APIRouter()
api_router.include_router(health.router)
api_router.include_router(auth.router)
api_router.include_router(tasks.router)

__all__ = ["api_router"]
