"""A collection's own writes through `ListService`, as REST's list routes (no rule of lists is
written here): PROPPATCH renames and recolours its list, atomically (RFC 4918 9.2), DELETE
trashes it, MKCALENDAR and extended MKCOL make one (specs/caldav.md, "Making a collection").
A new list's other properties (a time zone, Apple's order) are not kept: a list has nowhere
to keep them, and refusing them would refuse the list the person made.
"""

from __future__ import annotations

import re

from pydantic import ValidationError

from backend.dav.xml import (
    APPLE,
    CALDAV,
    DAV,
    MakeCollection,
    PreconditionRefused,
    PropertyUpdate,
    clark,
)
from backend.errors import Forbidden, InvalidRequest
from backend.models.names import NAME_MAX_LENGTH
from backend.models.task_list import ListCreate, ListRow, ListUpdate
from backend.services.sharing.lists import ListService
from backend.services.unit_of_work import UnitOfWork

DISPLAYNAME = clark(DAV, "displayname")
CALENDAR_COLOR = clark(APPLE, "calendar-color")
NO_LIST_IS_NO_LIST = "The tasks in no list are not a list: they cannot be renamed or deleted"
OK = "200 OK"
_FORBIDDEN = "403 Forbidden"
_CONFLICT = "409 Conflict"
_FAILED = "424 Failed Dependency"
NOT_TASKS = "A collection here holds tasks (VTODO) only"
NOT_A_CALENDAR = "A collection here is a calendar of tasks: ask for DAV:collection and C:calendar"
# What a refused field of a new list was in the request (never its value).
_TOLD = {
    "name": "The list's name (D:displayname, or the URL's last segment without one)",
    "color": "The list's colour (A:calendar-color)",
}
REFUSED = (
    f"the list rules refuse it (a name is 1-{NAME_MAX_LENGTH} characters on one line, "
    "a colour #RRGGBB)"
)
_CALENDAR_TYPE = frozenset({clark(DAV, "collection"), clark(CALDAV, "calendar")})
_APPLE_COLOR = re.compile(r"^(#[0-9A-Fa-f]{6})(?:[0-9A-Fa-f]{2})?$")


def _value(name: str, value: str | None) -> tuple[str, str | None] | None:
    """The `ListUpdate` field and value a property's change is (None: one we do not write)."""
    if name == DISPLAYNAME and value is not None:
        return "name", value
    if name == CALENDAR_COLOR:
        if value is None:
            return "color", None
        matched = _APPLE_COLOR.fullmatch(value.strip())
        return "color", matched.group(1) if matched else value
    return None


def update_of(asked: PropertyUpdate) -> tuple[ListUpdate | None, dict[str, str]]:
    """The list update a PROPPATCH asks for, or None and each property's status (`403` or
    `409` for the one refused, `424` for the rest) when any is refused."""
    values: dict[str, str | None] = {}
    statuses: dict[str, str] = {}
    for name, value in asked.changes:
        field = _value(name, value)
        if field is None:
            statuses[name] = _FORBIDDEN
        else:
            values[field[0]] = field[1]
    if not statuses:
        try:
            return ListUpdate(**values), {name: OK for name, _ in asked.changes}
        except ValidationError as error:
            refused = {str(each["loc"][0]) for each in error.errors() if each["loc"]}
            for name, value in asked.changes:
                field = _value(name, value)
                if field is not None and field[0] in refused:
                    statuses[name] = _CONFLICT
    for name, _ in asked.changes:
        statuses.setdefault(name, _FAILED)
    return None, {name: statuses[name] for name, _ in asked.changes}


def proppatch(work: UnitOfWork, list_id: int | None, asked: PropertyUpdate) -> dict[str, str]:
    """Apply `asked` to the list (`ListService.update`), each property's status."""
    if list_id is None:
        raise Forbidden(NO_LIST_IS_NO_LIST)
    data, statuses = update_of(asked)
    if data is not None:
        lists: ListService = work.service(ListService)
        lists.update(list_id, data)
    return statuses


def delete(work: UnitOfWork, list_id: int | None) -> None:
    """Trash the list and its tasks (`ListService.delete`: the owner's alone, restorable)."""
    if list_id is None:
        raise Forbidden(NO_LIST_IS_NO_LIST)
    lists: ListService = work.service(ListService)
    lists.delete(list_id)


def create(work: UnitOfWork, segment: str, asked: MakeCollection, *, mkcol: bool) -> ListRow:
    """A new list from an MKCALENDAR's or extended MKCOL's body (as `POST /api/lists`),
    named `segment` when the body names no `displayname`."""
    if mkcol and (asked.resourcetype is None or not set(asked.resourcetype) >= _CALENDAR_TYPE):
        raise PreconditionRefused(clark(DAV, "valid-resourcetype"), NOT_A_CALENDAR)
    if asked.components is not None and "VTODO" not in asked.components:
        raise PreconditionRefused(clark(CALDAV, "supported-calendar-component"), NOT_TASKS)
    values: dict[str, str | None] = {"name": segment}
    for name, value in asked.changes:
        field = _value(name, value)
        if field is not None:
            values[field[0]] = field[1]
    try:
        data = ListCreate(**values)
    except ValidationError as error:
        refused = {str(each["loc"][0]) for each in error.errors() if each["loc"]}
        told = [_TOLD[field] for field in sorted(refused) if field in _TOLD]
        raise InvalidRequest(f"{' and '.join(told) or 'The list'}: {REFUSED}") from None
    lists: ListService = work.service(ListService)
    return lists.create(data)
