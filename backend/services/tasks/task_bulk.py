"""Bulk operations (`POST /api/tasks/bulk`): each operation as one statement on its task, all
sent in one message (`TaskSending._steps`), and why a step that wrote nothing was refused."""

from __future__ import annotations

from functools import lru_cache
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
    null,
    or_,
    select,
)

from backend.db.scope import spaces_locked
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
from backend.services.statements.access import Action, denied, role_in, role_may
from backend.services.statements.task_tree import Placement, Refusal, Sent
from backend.services.tasks.task_sending import Step, decoded
from backend.services.tasks.task_statements import (
    DELETE,
    TASK_ID,
    TASK_VIEW,
    completion,
    move_statements,
    owned_task,
    updating,
)

_TASKS = Task.__table__  # type: ignore[attr-defined]
_T = _TASKS.c

# Why a step wrote nothing, permission first: NULL unseen (404), `role:<role>` below a write's
# (403), then the values' reason.
_ROLE = role_in(_TASKS)
_BELOW = "role:"


def _permission_first(reason: Any) -> Any:
    """The reason of a step on `:task_id`: the caller's role first, then `reason`."""
    why = case((role_may(_ROLE, Action.TASK_WRITE), reason), else_=literal(_BELOW).concat(_ROLE))
    return owned_task(select(why).where(_T.id == TASK_ID))


_WRITABLE = _permission_first(null())


# Both spaces' change locks taken together ahead of the steps, else a deadlock.
LOCK_TASKS = spaces_locked(
    owned_task(
        select(func.array_agg(distinct(_T.user_id))).where(
            _T.id == any_(bindparam("task_ids", type_=ARRAY(BigInteger)))
        )
    ).scalar_subquery()
)

_TOO_MANY_TAGS = "tags"
_TAGS_FULL = _permission_first(literal(_TOO_MANY_TAGS))
# The tag steps, built once; the count bound is in the statement (no concurrent excess).
_TAG = bindparam("tag", type_=Text)
_HAS_TAG = _TAG.op("=")(func.any(_T.tags))
_ADD_TAG = updating(
    {"tags": case((_HAS_TAG, _T.tags), else_=func.array_append(_T.tags, _TAG))},
    or_(_HAS_TAG, func.cardinality(_T.tags) < TAGS_MAX_COUNT),
)
_REMOVE_TAG = updating({"tags": func.array_remove(_T.tags, _TAG)})


def step(operation: BulkOperation) -> Step:
    """A bulk operation as one statement on its task (`TaskSending._steps`)."""
    at = {"task_id": operation.id}
    match operation:
        case CompleteOp():
            return Step(updating(completion(True)), at, operation.id, reason=_WRITABLE)
        case ReopenOp():
            return Step(updating(completion(False)), at, operation.id, reason=_WRITABLE)
        case DeleteOp():
            return Step(DELETE, at, operation.id, reason=_WRITABLE)
        case SetPriorityOp(priority=priority):
            statement = updating({"priority": priority})
            return Step(statement, at, operation.id, reason=_WRITABLE)
        case AddTagOp(tag=tag):
            return Step(_ADD_TAG, {**at, "tag": tag}, operation.id, reason=_TAGS_FULL)
        case RemoveTagOp(tag=tag):
            return Step(_REMOVE_TAG, {**at, "tag": tag}, operation.id, reason=_WRITABLE)
        case MoveOp():
            # To the list's top level, last; a task already there stays; the placement says why not.
            placement = bulk_placement(operation)
            statement, reason = _moving(placement.shape)
            binds = {**at, **placement.values()}
            return Step(statement, binds, operation.id, reason=reason)
    raise AssertionError(f"unhandled operation {operation!r}")  # pragma: no cover


@lru_cache(maxsize=8)
def _moving(shape: Any) -> tuple[Any, Any]:
    """A bulk move's statement and its reason (role, then placement), built once."""
    statement, refusal = move_statements(shape, False)
    return statement, _permission_first(refusal.scalar_subquery())


def bulk_placement(operation: MoveOp) -> Placement:
    choice = Sent.null if operation.list_id is None else Sent.id
    return Placement(list=choice, parent=Sent.null, stay=True, list_id=operation.list_id)


def task_of(row: dict[str, Any]) -> TaskRow:
    """A task row that a step returned as JSON (`to_jsonb`), typed as the driver types it."""
    return cast(TaskRow, decoded(TASK_VIEW, row))


def step_error(operation: BulkOperation, reason: str | None) -> AppError | Refusal:
    """Why a bulk operation wrote nothing (a placement's refusal: as a PATCH's)."""
    if reason is None:
        return NotFound("Task not found")
    if reason.startswith(_BELOW):
        # The statement read a role below a write's: `denied` is its 403 (never None here).
        role, missing = reason.removeprefix(_BELOW), NotFound("Task not found")
        return denied(role, Action.TASK_WRITE, missing) or missing
    if reason == _TOO_MANY_TAGS:
        return InvalidRequest(f"A task has at most {TAGS_MAX_COUNT} tags")
    if not isinstance(operation, MoveOp):  # pragma: no cover - only moves give reasons
        raise AssertionError(reason)
    return Refusal(reason)
