"""A collection's objects (issue 62; specs/caldav.md, "Objects"): a task as the VTODO one
reader gets, found by its resource name, and written through the task service.

An object's name is the last segment of the href its client PUT it to (kept with the object:
`task_dav_objects.name`), or `task-<id>@task-api.ics` for a task no client wrote. Its ETag is
`vtodo.object_tag` everywhere (GET, PROPFIND, REPORT, If-Match): a hash of everything the
reader's body is made of, so a listing renders nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any
from urllib.parse import quote

from backend.dav import resources
from backend.dav.recurrence_forms import Applied, apply, classify, follow_up
from backend.dav.vtodo import derived_uid, object_tag, parse, render
from backend.dav.xml import CALDAV, PreconditionRefused, clark
from backend.errors import Forbidden, NotFound, PreconditionFailed
from backend.models import TaskCreate
from backend.models.dav_object import UID_MAX_LENGTH
from backend.models.references import Action
from backend.recurrence import DEFAULT_TIME_ZONE
from backend.services.access import permitted
from backend.services.dav_objects import DavObjectService
from backend.services.registry import UnitOfWork

NOT_FOUND = "Not found"
CONTENT_TYPE = "text/calendar; charset=utf-8; component=VTODO"
_DERIVED = re.compile(r"^task-([1-9][0-9]{0,17})@task-api\.ics$")
_READ_ONLY = "Your role in this list does not allow this"
_UID_TAKEN = "Another object of this collection has this UID"
_UID_CHANGED = "An object's UID does not change"


@dataclass(frozen=True)
class Served:
    """One task as a reader gets it: its row, the object kept beside it (None: no client's,
    or a newer object holds its name), its name and its parent's UID."""

    row: Any
    kept: bytes | None
    name: str
    parent_uid: str | None

    @property
    def uid(self) -> str:
        return str(self.row.kept_uid) if self.kept is not None else derived_uid(self.row.id)

    @property
    def tag(self) -> str:
        return object_tag(self.row, self.kept, self.row.reminders, parent_uid=self.parent_uid)

    def body(self) -> bytes:
        return render(self.row, self.kept, self.row.reminders, parent_uid=self.parent_uid)

    def href(self, list_id: int | None) -> str:
        return href(list_id, self.name)


def href(list_id: int | None, name: str) -> str:
    """An object's href: its collection's path and its name, percent-encoded one way
    everywhere (vdirsyncer compares hrefs as strings)."""
    return resources.collection_path(list_id) + quote_name(name)


def quote_name(name: str) -> str:
    return quote(name, safe="@+-._~")


def served(row: Any) -> Served:
    kept = None
    if row.kept_body is not None and not row.shadowed:
        kept = str(row.kept_body).encode()
    name = str(row.kept_name) if kept is not None else f"{derived_uid(row.id)}.ics"
    parent_uid = row.parent_uid
    if parent_uid is None and row.parent_id is not None:
        parent_uid = derived_uid(row.parent_id)
    return Served(row, kept, name, parent_uid)


def objects(work: UnitOfWork, list_id: int | None) -> list[Served]:
    return [served(row) for row in work.service(DavObjectService).all(list_id)]


def listed(work: UnitOfWork, list_id: int | None) -> tuple[Any | None, list[Served]]:
    """A collection's list as the caller sees it (None: the tasks in no list) and its
    objects, in one statement; a list the caller cannot read is the missing one's 404."""
    if list_id is None:
        return None, objects(work, None)
    seen, rows = work.service(DavObjectService).listed(list_id)
    if seen is None:
        raise NotFound(NOT_FOUND)
    the_list = SimpleNamespace(
        id=seen.list_id_seen, name=seen.list_name, color=seen.list_color, role=seen.list_role
    )
    return the_list, [served(row) for row in rows]


def collection(
    work: UnitOfWork, list_id: int, depth: int
) -> tuple[SimpleNamespace, list[Served], int]:
    """A list's collection, its objects at Depth 1 and the caller's feed position (its sync
    token's), in one statement; a list the caller cannot read is the missing one's 404."""
    seen, rows = work.service(DavObjectService).listed(list_id, position=True, depth=depth)
    if seen is None:
        raise NotFound(NOT_FOUND)
    the_list = SimpleNamespace(
        id=seen.list_id_seen, name=seen.list_name, color=seen.list_color, role=seen.list_role
    )
    return the_list, [served(row) for row in rows], int(seen.position)


def find(work: UnitOfWork, list_id: int | None, name: str) -> Served | None:
    """The object served under `name` in the collection, if the caller may read it: the
    newest kept object with that name, else the task a derived name names (one statement)."""
    derived = _DERIVED.fullmatch(name)
    task_id = int(derived.group(1)) if derived is not None else 0
    rows = work.service(DavObjectService).named(list_id, name, task_id)
    for row in rows:
        found = served(row)
        if found.name == name:
            return found
    return None


def check_preconditions(found: Served | None, if_match: str | None, if_none: str | None) -> None:
    """`If-Match` (one of the tags, or `*`: it exists) and `If-None-Match: *` (it does not)."""
    if if_none is not None and if_none.strip() == "*" and found is not None:
        raise PreconditionFailed("An object exists under this name")
    if if_match is None:
        return
    tags = {tag.strip() for tag in if_match.split(",")}
    if found is None or ("*" not in tags and found.tag not in tags):
        raise PreconditionFailed()


def get(work: UnitOfWork, list_id: int | None, name: str) -> Served:
    found = find(work, list_id, name)
    if found is None:
        raise NotFound(NOT_FOUND)
    return found


def put(
    work: UnitOfWork,
    list_id: int | None,
    name: str,
    body: bytes,
    if_match: str | None,
    if_none: str | None,
) -> bool | Handover:
    """Write the object: a new task (True) or the named one's update (False, or a `Handover`
    when it completed an occurrence), through the task service, the kept object with the
    write's COMMIT."""
    found = find(work, list_id, name)
    if found is None and list_id is not None:
        # A list the caller cannot read is the missing one's 404; one it only reads, 403.
        try:
            role = work.lists.get(list_id).role
        except NotFound:
            raise NotFound(NOT_FOUND) from None
        if Action.TASK_WRITE not in permitted(role, Action.TASK_WRITE):
            raise Forbidden(_READ_ONLY)
    check_preconditions(found, if_match, if_none)
    zone = DEFAULT_TIME_ZONE if found is None else str(found.row.time_zone)
    parsed = parse(body, zone=zone)
    if len(parsed.uid) > UID_MAX_LENGTH or len(name) > UID_MAX_LENGTH:
        raise PreconditionRefused(clark(CALDAV, "valid-calendar-object-resource"), "UID too long")
    dav = work.service(DavObjectService)
    if found is not None and parsed.uid != found.uid:
        raise PreconditionRefused(clark(CALDAV, "no-uid-conflict"), _UID_CHANGED)
    if found is None and dav.holding_uid(list_id, parsed.uid) is not None:
        raise PreconditionRefused(clark(CALDAV, "no-uid-conflict"), _UID_TAKEN)
    kept = parsed.keep.decode()
    work.hold_commit()
    if found is None:
        fields: dict[str, Any] = parsed.create_fields()
        if list_id is not None:
            fields["list_id"] = list_id
        parent = _parent(work, list_id, parsed.parent_uid)
        if parent is not None:
            fields["parent_id"] = parent
            fields.pop("list_id", None)  # a subtask is in its parent's list
        task = work.tasks.create(TaskCreate.model_validate(fields))
        dav.keep(task.id, parsed.uid, name, kept)
        return True
    resolution = classify(found.row, parsed)
    applied = apply(work, found.row, resolution, frozenset({found.row.version}))
    dav.keep(applied.task.id, parsed.uid, name, kept)
    if resolution.keep_on == "successor" and applied.completed_occurrence:
        return Handover(applied, parsed.uid, name, kept)
    return False


@dataclass(frozen=True)
class Handover:
    """A PUT that completed an occurrence of a series: the client's object goes on to the
    next occurrence, which the service inserts with the PUT's COMMIT (`hand_over`, in the
    next unit of work)."""

    applied: Applied
    uid: str
    name: str
    kept: str


def hand_over(work: UnitOfWork, handover: Handover) -> None:
    """Give the client's object to the next occurrence (`follow_up` writes on it what the PUT
    said of it): a newer object with the same name, so the name serves the open occurrence
    and the completed one is served under its derived name (its object shadowed)."""
    work.hold_commit()
    successor = follow_up(work, handover.applied)
    if successor is not None:
        work.service(DavObjectService).keep(
            successor.id, handover.uid, handover.name, handover.kept
        )


def delete(work: UnitOfWork, list_id: int | None, name: str, if_match: str | None) -> None:
    """Put the task in the trash (restorable), as `DELETE /api/tasks/{id}` does."""
    found = find(work, list_id, name)
    if found is None:
        raise NotFound(NOT_FOUND)
    check_preconditions(found, if_match, None)
    work.tasks.delete(found.row.id, frozenset({found.row.version}))


def _parent(work: UnitOfWork, list_id: int | None, uid: str | None) -> int | None:
    """The task a `RELATED-TO;RELTYPE=PARENT` names in the collection, if any (else the new
    task is top-level: a relation to an object we do not hold is kept in the object only)."""
    if uid is None:
        return None
    holder = work.service(DavObjectService).holding_uid(list_id, uid)
    if holder is not None:
        return int(holder.id)
    found = find(work, list_id, f"{uid}.ics") if _DERIVED.fullmatch(f"{uid}.ics") else None
    return None if found is None else int(found.row.id)
