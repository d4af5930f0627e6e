"""Our own export (`GET /api/export`, issue 89): a zip of `manifest.json`, `lists.jsonl`,
`tasks.jsonl`, `comments.jsonl`, `attachments.jsonl`, `filters.jsonl` (each line the `data`
its own GET answers) and `attachments/<id>/<name>`. Lossless: every task field a client may
write is taken as it is; what the server sets (ids, owners, times, order) is set again, the
order from `position`. Keys are our ids: an archive imported twice creates nothing the
second time."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from backend.models.task_fields import READ_ONLY
from backend.models.task_list import ListCreate
from backend.transfer.plan import (
    NotThisSource,
    Plan,
    PlannedAttachment,
    PlannedComment,
    PlannedList,
    PlannedTask,
)
from backend.transfer.sources.common import arrange
from backend.transfer.sources.zips import is_zip, members

FORMAT = "task-api-export"
VERSIONS = (1,)
MANIFEST = "manifest.json"
# A task line's placement is read into keys; what the server sets is dropped.
_PLACEMENT = frozenset({"list_id", "parent_id"})
_DROPPED = READ_ONLY | _PLACEMENT | {"assignees"}
# A list line's fields a client writes besides its name.
LIST_FIELDS = tuple(name for name in ListCreate.model_fields if name != "name")


def looks_like(data: bytes, file_name: str) -> bool:
    if not is_zip(data):
        return False
    try:
        manifest = _manifest(members(data))
    except NotThisSource:
        return False
    return manifest is not None


def _manifest(files: dict[str, bytes]) -> dict[str, Any] | None:
    raw = files.get(MANIFEST)
    if raw is None:
        return None
    try:
        manifest = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        return None
    return manifest


def _lines(files: dict[str, bytes], name: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Each line's object of member `name` (absent: none), with where it is (`name:line`)."""
    raw = files.get(name)
    if raw is None:
        return
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise NotThisSource(name, "not UTF-8 text") from None
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{name}:{number}"
        try:
            value = json.loads(line)
        except (ValueError, RecursionError):  # RecursionError: nested thousands deep
            raise NotThisSource(where, "not a JSON object") from None
        if not isinstance(value, dict):
            raise NotThisSource(where, "not a JSON object")
        yield where, value


def _instant(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _order(value: Any) -> float | None:
    """`position` as a sort key: a number (a bool, or an int past a float's range: none)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        return float(value)
    except OverflowError:
        return None


def _key(value: Any) -> str | None:
    return None if value is None else str(value)


def read(data: bytes, file_name: str, zone: str) -> Plan:
    if not data:
        raise NotThisSource("file", "The file is empty")
    if not is_zip(data):
        raise NotThisSource("file", "Not a zip: a task-api export is the zip GET /api/export gives")
    files = members(data)
    manifest = _manifest(files)
    if manifest is None:
        raise NotThisSource(MANIFEST, f"No {MANIFEST} of format {FORMAT!r} in the zip")
    if manifest.get("version") not in VERSIONS:
        raise NotThisSource(MANIFEST, f"Unknown export version {manifest.get('version')!r}")
    plan = Plan(source="task-api")
    for where, line in _lines(files, "lists.jsonl"):
        key, name = _key(line.get("id")), line.get("name")
        if key is None or not isinstance(name, str):
            plan.warn(where, "name" if key else "id", "invalid", "A list needs an id and a name")
            plan.skipped += 1
            continue
        # Every other field `POST /api/lists` takes (its colour) as it is.
        fields = {field: line[field] for field in LIST_FIELDS if field in line}
        plan.lists.append(PlannedList(key=key, name=name, fields=fields, item=where))
    tasks: dict[str, PlannedTask] = {}
    read_tasks: list[PlannedTask] = []
    for where, line in _lines(files, "tasks.jsonl"):
        key = _key(line.get("id"))
        if key is None:
            plan.warn(where, "id", "invalid", "A task needs its id")
            plan.skipped += 1
            continue
        fields = {name: value for name, value in line.items() if name not in _DROPPED}
        assignees = line.get("assignees")
        if assignees:
            first = assignees[0] if isinstance(assignees, list) else assignees
            plan.lose("assignee (a user of the exporting server)", str(first))
        completed_at = _instant(line.get("completed_at")) if line.get("completed") else None
        position = _order(line.get("position"))
        task = PlannedTask(
            key=key,
            item=where,
            fields=fields,
            list_key=_key(line.get("list_id")),
            parent_key=_key(line.get("parent_id")),
            order=position,
            completed_at=completed_at,
        )
        tasks.setdefault(key, task)  # a second line of the same id: `arrange` skips it
        read_tasks.append(task)
    # Parents before their subtasks, a duplicate id skipped, a loop or a chain past the tree's
    # depth cut, as every reader's: written as read, in time linear in the lines.
    arrange(plan, read_tasks)
    for where, line in _lines(files, "comments.jsonl"):
        owner = tasks.get(str(line.get("task_id")))
        body = line.get("body")
        if owner is None or not isinstance(body, str) or line.get("id") is None:
            plan.warn(where, "task_id", "orphan", "A comment on no task of the archive")
            plan.skipped += 1
            continue
        created = _instant(line.get("created_at"))
        plan.lose("comment author (the importing account)", body[:80])
        owner.comments.append(PlannedComment(key=str(line["id"]), body=body, created_at=created))
    for where, line in _lines(files, "attachments.jsonl"):
        holder = tasks.get(str(line.get("task_id")))
        name = line.get("filename")
        member = f"attachments/{line.get('id')}/{name}"
        if holder is None or not isinstance(name, str) or member not in files:
            plan.warn(where, "task_id", "orphan", "An attachment with no task or bytes")
            plan.skipped += 1
            continue
        holder.attachments.append(
            PlannedAttachment(
                key=str(line["id"]),
                file_name=name,
                content_type=line.get("content_type"),
                data=files[member],
            )
        )
    for where, line in _lines(files, "filters.jsonl"):
        if line.get("id") is None or not isinstance(line.get("name"), str):
            plan.warn(where, "name", "invalid", "A saved filter needs an id and a name")
            plan.skipped += 1
            continue
        plan.filters.append(
            {
                "key": str(line["id"]),
                "item": where,
                "name": line["name"],
                "query": line.get("query") or {},
            }
        )
    return plan
