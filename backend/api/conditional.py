"""Entity tags of tasks and the conditional request headers (RFC 9110, section 13).

A task's ETag is strong and opaque to clients: `"<id>-<version>"`, where `version` is
incremented by every UPDATE of the row (migration 0006). Only parsing lives here; If-Match is
enforced by the service inside the UPDATE/DELETE's WHERE, so checking and writing are one
atomic statement.
"""

from __future__ import annotations

import re
from typing import Annotated, Protocol

from fastapi import Header

# One list member: an optional weak prefix and a quoted opaque tag (which may hold commas).
_MEMBER = re.compile(r'[ \t,]*(W/)?"([^"]*)"[ \t]*(?:,|$)')
_VERSION_MAX_DIGITS = 18  # fits BIGINT; longer numbers cannot be any task's version


class Versioned(Protocol):
    @property
    def id(self) -> int | None: ...
    @property
    def version(self) -> int: ...


def etag(task: Versioned) -> str:
    return f'"{task.id}-{task.version}"'


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


def if_match_versions(header: str | None, task_id: int) -> frozenset[int] | None:
    """The versions of this task that If-Match accepts; None means no condition.

    `*` asks only that the task exists, which every task statement requires anyway. Weak
    tags never match (strong comparison), nor do tags of other tasks or malformed members:
    an empty set, which fails with 412 when the task exists.
    """
    if header is None or header.strip() == "*":
        return None
    prefix = f"{task_id}-"
    versions = set()
    for weak, tag in _entity_tags(header):
        number = tag.removeprefix(prefix)
        if (
            not weak
            and tag.startswith(prefix)
            and number.isascii()
            and number.isdigit()
            and len(number) <= _VERSION_MAX_DIGITS
        ):
            versions.add(int(number))
    return frozenset(versions)


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
