"""What every task operation accepts and answers, on REST and MCP alike: the bounds of a task
id and of the caller's user id, and the statistics result. Each transport adds only how a value
arrives (a path segment of digits, or a strict JSON integer) and its own descriptions."""

from __future__ import annotations

from dataclasses import asdict

from backend.models.task import TASK_ID_MAX
from backend.models.task_ops import TaskStatsPublic
from backend.models.user import USER_ID_MAX_LENGTH
from backend.services.tasks import TaskStats

__all__ = [
    "TASK_ID_MAX",
    "TASK_ID_MIN",
    "USER_ID_MAX_LENGTH",
    "USER_ID_MIN_LENGTH",
    "stats_public",
]

# Ids are positive and held exactly by a JSON number (TASK_ID_MAX = 2**53 - 1).
TASK_ID_MIN = 1
# A user id is the token's `sub`, as stored in `users.id`.
USER_ID_MIN_LENGTH = 1


def stats_public(stats: TaskStats) -> TaskStatsPublic:
    """The service's counts as both transports answer them."""
    return TaskStatsPublic.model_validate(asdict(stats))
