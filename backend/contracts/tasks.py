"""What every task operation accepts and answers, on REST and MCP alike: the bounds of a task
id and of the caller's user id, and the statistics result. Each transport adds only how a value
arrives (a path segment of digits, or a strict JSON integer) and its own descriptions."""

from __future__ import annotations

from dataclasses import asdict

from backend.models.task import TASK_ID_MAX as TASK_ID_MAX
from backend.models.task_ops import TaskMove, TaskStatsPublic
from backend.models.user import USER_ID_MAX_LENGTH as USER_ID_MAX_LENGTH
from backend.services.statements.task_tree import Anchor, Placement, Sent
from backend.services.tasks.service import TaskStats

# Ids are positive and held exactly by a JSON number (TASK_ID_MAX = 2**53 - 1).
TASK_ID_MIN = 1
# A user id is the token's `sub`, as stored in `users.id`.
USER_ID_MIN_LENGTH = 1


def stats_public(stats: TaskStats) -> TaskStatsPublic:
    """The service's counts as both transports answer them."""
    return TaskStatsPublic.model_validate(asdict(stats))


def move_placement(data: TaskMove) -> Placement:
    """Where a move request puts the task (`POST /api/tasks/{task_id}/move`): what it sent of
    `list_id` and `parent_id` (null is a value), and its anchor."""
    sent = data.model_fields_set

    def choice(name: str, value: int | None) -> Sent:
        if name not in sent:
            return Sent.omitted
        return Sent.null if value is None else Sent.id

    if data.after_id is not None:
        anchor, anchor_id = Anchor.after, data.after_id
    elif data.before_id is not None:
        anchor, anchor_id = Anchor.before, data.before_id
    else:
        anchor, anchor_id = Anchor.last, None
    return Placement(
        list=choice("list_id", data.list_id),
        parent=choice("parent_id", data.parent_id),
        anchor=anchor,
        list_id=data.list_id,
        parent_id=data.parent_id,
        anchor_id=anchor_id,
    )
