"""The DAV resources and their properties. Paths are the caller's own: `/dav/principal/` is
whoever signed in, `/dav/calendars/` its home, `/dav/calendars/{list_id}/` a list it may read
and `/dav/calendars/no-list/` its tasks in no list. A collection's `sync-token` and `getctag`
are read only when a PROPFIND names them (not for `allprop`, RFC 6578 §4).
"""

from __future__ import annotations

import re
from typing import Any
from xml.etree.ElementTree import Element

from backend.dav.xml import APPLE, CALDAV, CS, DAV, Found, Value, clark, element, href
from backend.models.app_password import DAV_ROOT
from backend.models.references import Action
from backend.services.statements.access import owns, permitted

PRINCIPAL = f"{DAV_ROOT}principal/"
HOME = f"{DAV_ROOT}calendars/"
NO_LIST = "no-list"
NO_LIST_NAME = "Tasks without a list"
_LIST_SEGMENT = re.compile(r"^[1-9][0-9]{0,17}$")


def collection_path(list_id: int | None) -> str:
    """A collection's path: a list's, or the tasks in no list's (`None`)."""
    return f"{HOME}{NO_LIST if list_id is None else list_id}/"


def list_of(segment: str) -> int | str | None:
    """The list a collection's path segment names: its id, None (no list), or the segment."""
    if segment == NO_LIST:
        return None
    if _LIST_SEGMENT.fullmatch(segment):
        return int(segment)
    return segment


def _collection(*types: str) -> list[Element]:
    """`resourcetype`'s value: a collection, and what else it is, straight inside
    `D:resourcetype` (wrapped in a second one, a client listed no calendar)."""
    return [element(t) for t in (clark(DAV, "collection"), *types)]


def _privileges(role: str, writes: bool) -> list[Any]:
    """`current-user-privilege-set` by role (statements/access.py) and the password's scope."""
    may = permitted(role, Action.TASK_WRITE, Action.LIST_RENAME) if writes else frozenset()
    names = ["read"]
    if Action.TASK_WRITE in may:
        names += ["write-content", "bind", "unbind"]
    if Action.LIST_RENAME in may:
        names.append("write-properties")
    return [element(clark(DAV, "privilege"), None, element(clark(DAV, n))) for n in names]


def _common() -> dict[str, Value]:
    return {
        clark(DAV, "current-user-principal"): href(PRINCIPAL),
        clark(DAV, "principal-URL"): href(PRINCIPAL),
    }


def root() -> Found:
    return Found(DAV_ROOT, {clark(DAV, "resourcetype"): _collection(), **_common()})


def principal(display_name: str) -> Found:
    properties: dict[str, Value] = {
        clark(DAV, "resourcetype"): _collection(clark(DAV, "principal")),
        clark(DAV, "displayname"): display_name,
        clark(CALDAV, "calendar-home-set"): href(HOME),
        **_common(),
    }
    return Found(PRINCIPAL, properties)


def home() -> Found:
    return Found(
        HOME,
        {
            clark(DAV, "resourcetype"): _collection(),
            clark(CALDAV, "calendar-home-set"): href(HOME),
            **_common(),
        },
    )


SYNC_TOKEN = clark(DAV, "sync-token")
GETCTAG = clark(CS, "getctag")
# RFC 3253 §3.1.5: the REPORTs a collection answers (Thunderbird syncs only when it is listed).
_REPORTS = (clark(CALDAV, "calendar-multiget"), clark(CALDAV, "calendar-query"))


def _supported_reports() -> list[Element]:
    reports = (*_REPORTS, clark(DAV, "sync-collection"))
    return [
        element(
            clark(DAV, "supported-report"), None, element(clark(DAV, "report"), None, element(r))
        )
        for r in reports
    ]


def wants_token(names: tuple[str, ...]) -> bool:
    """Whether a PROPFIND names a collection's `sync-token` or `getctag`."""
    return SYNC_TOKEN in names or GETCTAG in names


def collection(row: Any | None, writes: bool, token: str | None = None) -> Found:
    """A list's collection (`row`: a `ListRow`, with the caller's `role`), or the tasks in no
    list's (None: the caller's own); `token`, its sync token, when the PROPFIND names it
    (`sync-token` and CalendarServer's `getctag` alike)."""
    role = "owner" if row is None else row.role
    properties: dict[str, Value] = {
        clark(DAV, "resourcetype"): _collection(clark(CALDAV, "calendar")),
        clark(DAV, "displayname"): NO_LIST_NAME if row is None else row.name,
        clark(CALDAV, "supported-calendar-component-set"): [_component("VTODO")],
        clark(DAV, "current-user-privilege-set"): _privileges(role, writes),
        clark(DAV, "owner"): href(PRINCIPAL) if owns(role) else None,
        clark(DAV, "supported-report-set"): _supported_reports(),
        **_common(),
    }
    if token is not None:
        properties[SYNC_TOKEN] = token
        properties[GETCTAG] = token
    if row is not None and row.color:
        # Apple's colour property: `#RRGGBB` (ours is stored lower-case).
        properties[clark(APPLE, "calendar-color")] = row.color.upper()
    if row is None or not owns(role):
        properties.pop(clark(DAV, "owner"))
    return Found(collection_path(None if row is None else row.id), properties)


def _component(name: str) -> Element:
    node = element(clark(CALDAV, "comp"))
    node.set("name", name)
    return node
