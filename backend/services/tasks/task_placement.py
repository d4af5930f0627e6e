"""Where a task write puts a task (`placement_of`: what a create, PUT or PATCH sent of its list
and parent), and the error for a placement the database refused (`refused`: by the caller's role
in the row it named). The statements that place it are backend/services/statements/task_tree.py."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from backend.db.sender import Rows
from backend.errors import (
    AppError,
    Forbidden,
    InvalidRequest,
    LimitReached,
    NotFound,
    PreconditionFailed,
)
from backend.models import TaskCreate, TaskUpdate
from backend.models.names import name_key
from backend.models.task_list import MAX_DEPTH, SUBTASKS_PER_TASK, TASKS_PER_LIST
from backend.services.sharing.lists import LIST_ROLE, unknown_list
from backend.services.statements.access import Action, denied
from backend.services.statements.task_tree import Anchor, Placement, Refusal, Sent
from backend.services.tasks.task_schedule import not_recurring
from backend.services.tasks.task_statements import ACCESS

# What a refused placement named: the value bound, and the read of the caller's role in it.
_NAMED_BY: dict[Refusal, tuple[str, Any, str]] = {
    Refusal.task: ("task_id", ACCESS, "task_id"),
    Refusal.parent: ("parent_id", ACCESS, "task_id"),
    Refusal.anchor: ("anchor_id", ACCESS, "task_id"),
    Refusal.list: ("list_id", LIST_ROLE, "list_id"),
}


def refused(
    read: Callable[..., Rows], reason: Refusal, placement: Placement, binds: Mapping[str, Any]
) -> AppError:
    """Why a placement wrote nothing, as the request's error; `read`: the failure path's own."""
    if reason is Refusal.list and placement.list is Sent.name:
        return unknown_list(read, placement.list_name or "", field="body.list")
    # A row the placement named and could not write, by the caller's role in it: none is 404,
    # below editor 403, a writable one in another owner's space the 422 of another owner's list.
    sent, statement, by = _NAMED_BY.get(reason, ("", None, ""))
    if binds.get(sent) is not None:
        role = read(statement, **{by: binds[sent]}).first()
        missing = NotFound("Task not found")
        below = None if role is None else denied(role[-1], Action.TASK_WRITE, missing)
        if below is not None:
            return below
        if role is not None and reason in (Refusal.parent, Refusal.anchor):
            field = "body.parent_id" if reason is Refusal.parent else anchor_field(placement)
            return other_owner(field)
    return _error(reason, placement)


def _error(reason: Refusal, placement: Placement) -> AppError:
    list_field = "body.list" if placement.list is Sent.name else "body.list_id"
    match reason:
        case Refusal.task:
            return NotFound("Task not found")
        case Refusal.stale:
            return PreconditionFailed()
        case Refusal.list:
            return NotFound.at(list_field, "List not found")
        case Refusal.parent:
            return NotFound.at("body.parent_id", "Task not found")
        case Refusal.anchor:
            return NotFound.at(anchor_field(placement), "Task not found")
        case Refusal.personal:
            return Forbidden.at(
                list_field,
                "Only the list's owner may move its tasks to no list (a task in no list is its "
                "owner's personal task)",
            )
        case Refusal.list_mismatch:
            return InvalidRequest.at(
                list_field,
                "A subtask is in its parent's list: omit the list (or send the parent's)",
            )
        case Refusal.anchor_group:
            return InvalidRequest.at(
                anchor_field(placement),
                "That task is not in the list, or not under the parent, that was sent",
            )
        case Refusal.cycle:
            return InvalidRequest.at(
                "body.parent_id", "A task cannot be moved under itself or one of its subtasks"
            )
        case Refusal.recurring:
            return not_recurring()
        case Refusal.depth:
            return InvalidRequest.at(
                "body.parent_id",
                f"Subtasks nest at most {MAX_DEPTH} levels deep (a task and its subtasks "
                "would be deeper there)",
            )
        case Refusal.tree_full:
            return LimitReached.at(
                "body.parent_id",
                f"A top-level task has at most {SUBTASKS_PER_TASK} subtasks, at every depth",
            )
        case Refusal.other_owner:
            return other_owner(list_field)
        case Refusal.assignee:
            return unassignable()
        case Refusal.list_full:
            return LimitReached.at(list_field, f"A list holds at most {TASKS_PER_LIST} tasks")
    raise AssertionError(reason)  # pragma: no cover


def other_owner(field: str) -> InvalidRequest:
    """A list, parent or anchor the caller may write, in another space than the task's."""
    return InvalidRequest.at(
        field,
        "A task moves only between lists of the same owner (a list shared with you "
        "is its owner's): create it in that list instead",
    )


def unassignable() -> InvalidRequest:
    return InvalidRequest.at(
        "body.assignees",
        "Each assignee must be the task's owner or a member of its list (a task in no list: "
        "only its owner)",
    )


def anchor_field(placement: Placement) -> str:
    return "body.before_id" if placement.anchor is Anchor.before else "body.after_id"


def placement_of(
    data: TaskCreate | TaskUpdate, list_name: str | None, *, stay: bool = False
) -> Placement | None:
    """Where a create, PUT or PATCH puts the task (None: it says nothing about it)."""
    sent = data.model_fields_set
    list_sent = list_name is not None or "list_id" in sent
    if not list_sent and "parent_id" not in sent:
        return None
    if list_name is not None:
        list_choice = Sent.name
    elif not list_sent:
        list_choice = Sent.omitted
    else:
        list_choice = Sent.null if data.list_id is None else Sent.id
    if "parent_id" not in sent:
        parent_choice = Sent.omitted
    else:
        parent_choice = Sent.null if data.parent_id is None else Sent.id
    return Placement(
        list=list_choice,
        parent=parent_choice,
        stay=stay,
        list_id=data.list_id if list_choice is Sent.id else None,
        list_key=name_key(list_name) if list_name is not None else None,
        list_name=list_name,
        parent_id=data.parent_id if parent_choice is Sent.id else None,
    )
