"""The task widget ChatKit shows when the agent lists or changes tasks (specs/chat.md,
"ChatKit"): each task's title and due date, a Complete and a Delete button. Plain JSON dynamic
components (the SDK's named classes are deprecated), no I/O here."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from chatkit.widgets import DynamicWidgetRoot

from backend.models.task import due_value

COMPLETE = "task.complete"
DELETE = "task.delete"
ACTIONS = (COMPLETE, DELETE)
# The tools whose result names tasks: a list, or one task read or changed.
LISTING = "list_tasks"
CHANGES = ("add_task", "complete_task", "reopen_task", "update_task", "get_task")
DELETED = "delete_task"


@dataclass(frozen=True)
class TaskLine:
    """A task as its widget row shows it; `gone`: the row's task no longer exists."""

    id: int
    title: str
    due_date: datetime | date | str | None = None
    completed: bool = False
    gone: bool = False

    @classmethod
    def of(cls, task: Any) -> TaskLine:
        """From a task as a tool or a service returns it (a dict or a row)."""
        fields: dict[str, Any] = task if isinstance(task, dict) else dict(task._mapping)
        due = fields.get("due_date")
        if isinstance(due, datetime) and fields.get("all_day"):
            # A row's day is stored as its start on the task's clock: shown as the day.
            due = due_value(due, True, str(fields["time_zone"]))
        return cls(
            id=int(fields["id"]),
            title=str(fields["title"]),
            due_date=due,
            completed=bool(fields.get("completed")),
        )


def tasks_of_call(call: dict[str, Any]) -> list[TaskLine] | list[int] | None:
    """What a call's widget shows: the listed tasks, the id of a changed task to read, or None."""
    result = call.get("result")
    if call.get("outcome") != "ok" or not isinstance(result, dict):
        return None
    name = call.get("name")
    if name == LISTING:
        return [TaskLine.of(task) for task in result.get("tasks", [])]
    task_id = result.get("task_id", result.get("id"))
    if name in CHANGES and isinstance(task_id, int):
        return [task_id]
    if name == DELETED and isinstance(result.get("task_id"), int):
        return [TaskLine(id=result["task_id"], title=str(result.get("title", "")), gone=True)]
    return None


def task_widget(lines: list[TaskLine]) -> DynamicWidgetRoot:
    children = [_row(line) for line in lines] or [
        {"type": "ListViewItem", "children": [{"type": "Text", "value": "No tasks."}]}
    ]
    return DynamicWidgetRoot.model_validate({"type": "ListView", "children": children})


def redraw(widget: Any, task_id: int, line: TaskLine) -> DynamicWidgetRoot:
    """The widget with the row of `task_id` drawn from `line` (the rest as it was)."""
    tree = widget.model_dump(mode="json") if hasattr(widget, "model_dump") else dict(widget)
    key = _key(task_id)
    tree["children"] = [
        _row(line) if child.get("key") == key else child for child in tree.get("children") or []
    ]
    return DynamicWidgetRoot.model_validate(tree)


def shows(widget: Any, task_id: int) -> bool:
    """Whether the widget has a row for `task_id` (an action names a task of its widget)."""
    tree = widget.model_dump(mode="json") if hasattr(widget, "model_dump") else dict(widget)
    return any(child.get("key") == _key(task_id) for child in tree.get("children") or [])


def _key(task_id: int) -> str:
    return f"task-{task_id}"


def _row(line: TaskLine) -> dict[str, Any]:
    if line.gone:
        return {
            "type": "ListViewItem",
            "key": _key(line.id),
            "children": [
                {
                    "type": "Col",
                    "children": [
                        {"type": "Text", "value": line.title, "color": "tertiary"},
                        {"type": "Caption", "value": "This task no longer exists."},
                    ],
                }
            ],
        }
    buttons = [] if line.completed else [_button("Complete", COMPLETE, line.id, "primary")]
    buttons.append(_button("Delete", DELETE, line.id, "danger"))
    return {
        "type": "ListViewItem",
        "key": _key(line.id),
        "gap": 2,
        "children": [
            {
                "type": "Col",
                "flex": 1,
                "children": [
                    {"type": "Text", "value": line.title, "lineThrough": line.completed},
                    {"type": "Caption", "value": _due(line)},
                ],
            },
            *buttons,
        ],
    }


def _button(label: str, action: str, task_id: int, color: str) -> dict[str, Any]:
    return {
        "type": "Button",
        "label": label,
        "size": "sm",
        "variant": "outline",
        "color": color,
        "onClickAction": {"type": action, "payload": {"task_id": task_id}},
    }


def _due(line: TaskLine) -> str:
    """`Due 2030-12-01`: a day as the day, an instant as its date in UTC."""
    done = " · done" if line.completed else ""
    if line.due_date is None:
        return f"No due date{done}"
    due = line.due_date
    text = due.date().isoformat() if isinstance(due, datetime) else str(due)[:10]
    return f"Due {text}{done}"
