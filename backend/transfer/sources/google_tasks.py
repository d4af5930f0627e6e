"""Google Tasks: Takeout's `Tasks.json`, alone or in the Takeout zip. A task list is a list;
`due` is a day (Google keeps no time); `position` orders a list's tasks (a string compared as
text); `parent` makes a subtask."""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import Any

from backend.transfer.plan import NotThisSource, Plan, PlannedList, PlannedTask
from backend.transfer.sources import zips
from backend.transfer.sources.common import arrange, head_text, text_of

MEMBER = "Takeout/Tasks/Tasks.json"
KIND = "tasks#taskLists"

LOST_LINKS = "Google Tasks links (an email or document a task came from)"
LOST_ASSIGNMENT = "Google Tasks assignment (from Docs or Chat)"
LOST_HIDDEN = "Google Tasks hidden state (hidden completed tasks are imported as completed)"


def _is_member(name: str) -> bool:
    return name.endswith("Tasks.json")


def looks_like(data: bytes, file_name: str) -> bool:
    if zips.is_zip(data):
        try:
            return any(_is_member(name) for name in zips.names(data))
        except NotThisSource:
            return False
    head = head_text(data)
    return head.lstrip().startswith("{") and KIND in head


def read(data: bytes, file_name: str, zone: str) -> Plan:
    where = "file"
    if zips.is_zip(data):
        found = [name for name in zips.names(data) if _is_member(name)]
        if not found:
            raise NotThisSource("file", f"The zip holds no {MEMBER}")
        where = MEMBER if MEMBER in found else found[0]
        data = zips.members(data, wanted=lambda name: name == where)[where]
    text = text_of(data, where)
    try:
        document = json.loads(text)
    except ValueError as error:
        at = f"line {error.lineno}" if hasattr(error, "lineno") else "file"
        raise NotThisSource(at if where == "file" else f"{where}: {at}", "Not valid JSON") from None
    except RecursionError:  # arrays or objects nested thousands deep
        raise NotThisSource(where, "JSON nested too deep: not a Google Tasks export") from None
    if not isinstance(document, dict) or document.get("kind") != KIND:
        raise NotThisSource(where, f'Not a Google Tasks export (no "kind": "{KIND}")')
    lists = document.get("items")
    if not isinstance(lists, list):
        raise NotThisSource(where, 'No "items": not a Google Tasks export')
    plan = Plan(source="google-tasks")
    tasks: list[PlannedTask] = []
    for index, entry in enumerate(lists):
        path = f"items[{index}]"
        if not isinstance(entry, dict):
            plan.warn(path, None, "invalid_list", "A task list that is not an object")
            continue
        list_key = str(entry.get("id") or "").strip() or path
        name = str(entry.get("title") or "").strip()
        plan.lists.append(PlannedList(key=list_key, name=name))
        items = entry.get("items") or []
        if not isinstance(items, list):
            plan.warn(path, "items", "invalid_list", "Its tasks are not a list")
            continue
        read_tasks: list[tuple[str, int, PlannedTask]] = []
        for number, raw in enumerate(items):
            task = _task(plan, f"{path}.items[{number}]", raw, list_key, zone)
            if task is not None:
                read_tasks.append((str(raw.get("position") or ""), len(read_tasks), task))
        read_tasks.sort(key=lambda one: (one[0], one[1]))
        for place, (_, _, task) in enumerate(read_tasks):
            task.order = float(place)
            tasks.append(task)
    arrange(plan, tasks)
    return plan


def _task(plan: Plan, item: str, raw: Any, list_key: str, zone: str) -> PlannedTask | None:
    if not isinstance(raw, dict):
        plan.warn(item, None, "invalid_task", "A task that is not an object")
        plan.skipped += 1
        return None
    if raw.get("deleted") is True:
        plan.skipped += 1
        return None
    key = str(raw.get("id") or "").strip()
    if not key:
        plan.warn(item, "id", "no_id", "A task with no id: keyed by where it is")
        key = item
    fields: dict[str, Any] = {"title": str(raw.get("title") or "").strip(), "time_zone": zone}
    notes = raw.get("notes")
    if isinstance(notes, str) and notes.strip():
        fields["description"] = notes
    due = raw.get("due")
    if due:
        day = _day(str(due))
        if day is None:
            plan.warn(item, "due", "invalid_date", f"due {due!r} not read")
        else:
            fields["due_date"] = day
    completed_at = None
    if raw.get("status") == "completed":
        fields["completed"] = True
        if raw.get("completed"):
            completed_at = _instant(str(raw["completed"]))
            if completed_at is None:
                plan.warn(item, "completed", "invalid_date", "completed time not read")
    if raw.get("links"):
        plan.lose(LOST_LINKS, _example(raw["links"]))
    if raw.get("assignmentInfo"):
        plan.lose(LOST_ASSIGNMENT, _example(raw["assignmentInfo"]))
    if raw.get("hidden") is True:
        plan.lose(LOST_HIDDEN, fields["title"])
    parent = raw.get("parent")
    return PlannedTask(
        key=key,
        item=item,
        fields=fields,
        list_key=list_key,
        parent_key=str(parent) if parent else None,
        completed_at=completed_at,
    )


def _day(text: str) -> date | None:
    """The date part of `2026-10-05T00:00:00.000Z` (or `2026-10-05`)."""
    try:
        return date.fromisoformat(text[:10])
    except ValueError:
        return None


def _instant(text: str) -> datetime | None:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        return None
    return value if value.tzinfo is not None else None


def _example(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)[:200]
