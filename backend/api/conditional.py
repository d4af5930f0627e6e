"""Entity tags of tasks and the conditional request headers (RFC 9110, section 13).

A task's ETag is strong and opaque to clients: `"<id>-<version>"`, where `version` is
incremented by every UPDATE of the row (migration 0006), and `"<id>-<version>-<subtasks>-<open>"`
for a task with subtasks. Its counts are part of what GET answers but not of its version (the
database keeps them, migration 0024), so they are in the tag for If-None-Match; If-Match
compares the version only: a writer is not refused because a subtask changed. Only parsing
lives here; If-Match is enforced by the service inside the UPDATE/DELETE's WHERE, so checking
and writing are one atomic statement.
"""

from __future__ import annotations

import re
from typing import Annotated, Protocol

from fastapi import Header

from backend.models.task_table import TaskRow

# One list member: an optional weak prefix and a quoted opaque tag (which may hold commas).
_MEMBER = re.compile(r'[ \t,]*(W/)?"([^"]*)"[ \t]*(?:,|$)')
# What follows `<id>-` in a tag: the version (18 digits fit BIGINT), then, in a task's tag
# only, its subtask counts.
_VERSION = re.compile(r"([0-9]{1,18})")
_TASK_VERSION = re.compile(r"([0-9]{1,18})(?:-[0-9]{1,18}-[0-9]{1,18})?")


class Versioned(Protocol):
    @property
    def id(self) -> int | None: ...
    @property
    def version(self) -> int: ...


def etag(row: Versioned) -> str:
    """A list's tag (of its own fields: its counts change with its tasks, and GET /lists/{id}
    has no If-None-Match)."""
    return f'"{row.id}-{row.version}"'


def task_etag(task: TaskRow) -> str:
    """A task's tag: its version, and its subtask counts as answered, when it has any."""
    if not task.subtask_count:
        return f'"{task.id}-{task.version}"'
    return f'"{task.id}-{task.version}-{task.subtask_count}-{task.open_subtask_count}"'


def _entity_tags(header: str) -> list[tuple[bool, str]]:
    """(weak, opaque-tag) for each well-formed member; parsing stops at a malformed one,
    which (like everything after it) then matches nothing."""
    tags: list[tuple[bool, str]] = []
    position = 0
    while header[position:].strip(" \t,"):
        member = _MEMBER.match(header, position)
        if member is None:
            break
        tags.append((member.group(1) is not None, member.group(2)))
        position = member.end()
    return tags


def if_match_versions(
    header: str | None, row_id: int, *, task: bool = True
) -> frozenset[int] | None:
    """The versions of this task (or, `task=False`, list) that If-Match accepts; None for none
    (or `*`: every statement requires the row anyway). Weak, malformed and other rows' tags
    never match (strong comparison): an empty set, a 412 when the row exists. A task tag's
    subtask counts are not compared: If-Match guards the task's own fields."""
    if header is None or header.strip() == "*":
        return None
    prefix, pattern = f"{row_id}-", _TASK_VERSION if task else _VERSION
    versions = set()
    for weak, tag in _entity_tags(header):
        version = pattern.fullmatch(tag.removeprefix(prefix))
        if not weak and tag.startswith(prefix) and version is not None:
            versions.add(int(version.group(1)))
    return frozenset(versions)


# A task's tag anywhere in an If-Match: `<id>-<version>`, maybe with its counts.
_ANY_TASK = re.compile(r"([0-9]{1,18})-([0-9]{1,18})(?:-[0-9]{1,18}-[0-9]{1,18})?")


def if_match_tasks(header: str | None) -> frozenset[tuple[int, int]] | None:
    """The (task id, version) pairs If-Match accepts where the route names no task (an undo
    names an activity entry): None means no condition, as for `if_match_versions`."""
    if header is None or header.strip() == "*":
        return None
    pairs = set()
    for weak, tag in _entity_tags(header):
        found = _ANY_TASK.fullmatch(tag)
        if not weak and found is not None:
            pairs.add((int(found.group(1)), int(found.group(2))))
    return frozenset(pairs)


def none_match(header: str | None, current: str) -> bool:
    """True when If-None-Match names the current ETag (weak comparison) or is `*`: a GET
    then answers 304 Not Modified."""
    if header is None:
        return False
    if header.strip() == "*":
        return True
    opaque = current.strip('"')
    return any(tag == opaque for _, tag in _entity_tags(header))


IfMatch = Annotated[
    str | None,
    Header(
        alias="If-Match",
        description="Change the task only if its current `ETag` is one of these (or `*`); "
        "otherwise 412 `PRECONDITION_FAILED` and nothing changes. Weak tags never match.",
        examples=['"42-3"'],
    ),
]
IfNoneMatch = Annotated[
    str | None,
    Header(
        alias="If-None-Match",
        description="ETags the client already has: if one is current, 304 Not Modified "
        "without a body.",
        examples=['"42-3"'],
    ),
]
