"""Business logic. One class per resource, built with `(session, user_id)` where data is owned.

Services run queries and raise `backend.errors.AppError`s; they never read HTTP objects and
never commit (the request's session dependency does that once).
"""

from backend.services.tasks import TaskService
from backend.services.users import UserService

__all__ = ["TaskService", "UserService"]
