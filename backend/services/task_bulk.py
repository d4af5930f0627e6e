"""Bulk operations (`POST /api/tasks/bulk`): each operation as one statement on its task, all
sent in one message (`Scoped._steps`), and why a step that wrote nothing was refused."""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import (
    ARRAY,
    BigInteger,
    Text,
    any_,
    bindparam,
    case,
    distinct,
    func,
    literal,
    or_,
    select,
)

from backend.db.scope import Step, decoded, spaces_locked
from backend.errors import AppError, InvalidRequest, NotFound
from backend.models import Task, TaskRow
from backend.models.task import TAGS_MAX_COUNT
from backend.models.task_ops import (
    AddTagOp,
    BulkOperation,
    CompleteOp,
    DeleteOp,
    MoveOp,
    RemoveTagOp,
    ReopenOp,
    SetPriorityOp,
)
from backend.services.task_placement import refused
from backend.services.task_statements import (
    DELETE,
    TASK_ID,
    TASK_VIEW,
    completion,
    move_statements,
    owned_task,
    updating,
)
from backend.services.task_tree import Placement, Refusal, Sent

_T = Task.__table__.c  # type: ignore[attr-defined]

# A bulk request takes the caller's change lock and those of the spaces of the tasks it names
# (their owners', where the caller is a member of the task's list) together, ahead of its
# steps (`spaces_locked`): holding its own while a step waited for an owner's, it could
# deadlock with that owner's bulk request on the caller's tasks.
LOCK_TASKS = spaces_locked(
    owned_task(
        select(func.array_agg(distinct(_T.user_id))).where(
            _T.id == any_(bindparam("task_ids", type_=ARRAY(BigInteger)))
        )
    ).scalar_subquery()
)

# Whether the caller's task `:task_id` exists, as a step's reason: its tags are full.
_TOO_MANY_TAGS = "tags"
_TAGS_FULL = owned_task(select(literal(_TOO_MANY_TAGS)).where(_T.id == TASK_ID))
# The steps that take a tag, built once (`:tag`). The count bound is part of the statement: a
# concurrent add cannot exceed it.
_TAG = bindparam("tag", type_=Text)
_HAS_TAG = _TAG.op("=")(func.any(_T.tags))
_ADD_TAG = updating(
    {"tags": case((_HAS_TAG, _T.tags), else_=func.array_append(_T.tags, _TAG))},
    or_(_HAS_TAG, func.cardinality(_T.tags) < TAGS_MAX_COUNT),
)
_REMOVE_TAG = updating({"tags": func.array_remove(_T.tags, _TAG)})


def step(operation: BulkOperation) -> Step:
    """A bulk operation as one statement on its task (`Scoped._steps`)."""
    at = {"task_id": operation.id}
    match operation:
        case CompleteOp():
            return Step(updating(completion(True)), at, operation.id)
        case ReopenOp():
            return Step(updating(completion(False)), at, operation.id)
        case DeleteOp():
            return Step(DELETE, at, operation.id)
        case SetPriorityOp(priority=priority):
            return Step(updating({"priority": priority}), at, operation.id)
        case AddTagOp(tag=tag):
            return Step(_ADD_TAG, {**at, "tag": tag}, operation.id, reason=_TAGS_FULL)
        case RemoveTagOp(tag=tag):
            return Step(_REMOVE_TAG, {**at, "tag": tag}, operation.id)
        case MoveOp():
            # To the top level of the list (or of no list), last; a task already there stays
            # where it is. The placement's own refusal says why it wrote nothing.
            placement = bulk_placement(operation)
            statement, refusal = move_statements(placement.shape, False)
            binds = {**at, **placement.values()}
            return Step(statement, binds, operation.id, reason=refusal)
    raise AssertionError(f"unhandled operation {operation!r}")  # pragma: no cover


def bulk_placement(operation: MoveOp) -> Placement:
    choice = Sent.null if operation.list_id is None else Sent.id
    return Placement(list=choice, parent=Sent.null, stay=True, list_id=operation.list_id)


def task_of(row: dict[str, Any]) -> TaskRow:
    """A task row that a step returned as JSON (`to_jsonb`), typed as the driver types it."""
    return cast(TaskRow, decoded(TASK_VIEW, row))


def step_error(operation: BulkOperation, reason: str | None) -> AppError:
    """Why a bulk operation wrote nothing (`step`'s reasons)."""
    if reason is None:
        return NotFound("Task not found")
    if reason == _TOO_MANY_TAGS:
        return InvalidRequest(f"A task has at most {TAGS_MAX_COUNT} tags")
    if not isinstance(operation, MoveOp):  # pragma: no cover - only moves give reasons
        raise AssertionError(reason)
    return refused(Refusal(reason), bulk_placement(operation))
