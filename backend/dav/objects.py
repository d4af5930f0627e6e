"""A collection's objects (specs/caldav.md, "Objects"): a task as the VTODO one reader gets,
found by its resource name. Its ETag is the one the database computes with every object it
reads (services/calendar/dav_tags.py), so a listing renders nothing. Writes: object_writes.py.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any
from urllib.parse import quote

from backend.dav import resources
from backend.errors import Forbidden, NotFound, PreconditionFailed
from backend.ical.vtodo import render
from backend.models.references import Action
from backend.models.task_calendar import DERIVED_UID, derived_uid
from backend.services.calendar.dav_objects import DavObjectService
from backend.services.statements.access import permitted
from backend.services.unit_of_work import UnitOfWork

NOT_FOUND = "Not found"
CONTENT_TYPE = "text/calendar; charset=utf-8; component=VTODO"
DERIVED = re.compile(DERIVED_UID.pattern + r"\.ics")  # a derived UID's object name
READ_ONLY = "Your role in this list does not allow this"
NAME_TAKEN = "An object exists under this name"


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
        return str(self.row.tag)

    def body(self) -> bytes:
        row, fresh = self.row, bool(self.row.kept_fresh)
        return render(row, self.kept, row.reminders, parent_uid=self.parent_uid, fresh=fresh)

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
    dav: DavObjectService = work.service(DavObjectService)
    return [served(row) for row in dav.all(list_id)]


def listed(work: UnitOfWork, list_id: int | None) -> tuple[Any | None, list[Served]]:
    """A collection's list as the caller sees it (None: the tasks in no list) and its
    objects, in one statement; a list the caller cannot read is the missing one's 404."""
    if list_id is None:
        return None, objects(work, None)
    the_list, members, _ = collection(work, list_id, 1, position=False)
    return the_list, members


def collection(
    work: UnitOfWork, list_id: int, depth: int, *, position: bool = True
) -> tuple[SimpleNamespace, list[Served], int]:
    """A list's collection, its objects at Depth 1 and the caller's feed position (its sync
    token's; 0 unless `position`), in one statement; another user's list is the 404."""
    dav: DavObjectService = work.service(DavObjectService)
    seen, rows = dav.listed(list_id, position=position, depth=depth)
    if seen is None:
        raise NotFound(NOT_FOUND)
    the_list = SimpleNamespace(
        id=seen.list_id_seen, name=seen.list_name, color=seen.list_color, role=seen.list_role
    )
    return the_list, [served(row) for row in rows], int(seen.position) if position else 0


def get(work: UnitOfWork, list_id: int | None, name: str) -> Served:
    """The object served under `name` in the collection, if the caller may read it: the
    newest kept object with that name, else the task a derived name names (one statement)."""
    dav: DavObjectService = work.service(DavObjectService)
    rows = dav.named(list_id, name, derived_id(name))
    found = next((each for each in map(served, rows) if each.name == name), None)
    if found is None:
        raise NotFound(NOT_FOUND)
    return found


def check_preconditions(found: Served | None, if_match: str | None, if_none: str | None) -> None:
    """`If-Match` (one of the tags, or `*`: it exists) and `If-None-Match: *` (it does not)."""
    if if_none is not None and if_none.strip() == "*" and found is not None:
        raise PreconditionFailed(NAME_TAKEN)
    if if_match is None:
        return
    tags = {tag.strip() for tag in if_match.split(",")}
    if found is None or ("*" not in tags and found.tag not in tags):
        raise PreconditionFailed()


def may_write(seen: Any) -> None:
    """A collection the caller only reads (a viewer's, a commenter's): 403 before any write."""
    if Action.TASK_WRITE not in permitted(seen.list_role, Action.TASK_WRITE):
        raise Forbidden(READ_ONLY)


def derived_id(name: str) -> int:
    """The task a derived name (`task-<id>@task-api.ics`) names; 0: none."""
    derived = DERIVED.fullmatch(name)
    return int(derived.group(1)) if derived is not None else 0
