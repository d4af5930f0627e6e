"""Where a task write puts a task (`placement_of`: what a create, PUT or PATCH sent of its list
and parent), and the error for a placement the database refused (`refused`). The statements
that place it are backend/services/statements/task_tree.py."""

from __future__ import annotations

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
from backend.services.statements.task_tree import Anchor, Placement, Refusal, Sent
from backend.services.tasks.task_schedule import not_recurring


def refused(reason: Refusal, placement: Placement) -> AppError:
    """Why a placement wrote nothing, as the request's error."""
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
