"""`sync-collection` (RFC 6578) and the collection's `sync-token` / `getctag` (specs/caldav.md,
"Sync"): a token is the position of the collection's latest event in the caller's change feed
(`CollectionFeed`), so a change elsewhere does not move it; a later sync reports every object
of an event after it as it is now (served, or a `404` under each name a client may hold it by).
"""

from __future__ import annotations

import re

from backend.dav import objects, resources
from backend.dav.objects import Served
from backend.dav.reports import listed
from backend.dav.xml import (
    DAV,
    PreconditionRefused,
    PropfindRequest,
    ReportRequest,
    clark,
    multistatus,
)
from backend.errors import NotFound
from backend.models.task_calendar import derived_uid
from backend.services.calendar.dav_objects import DavObjectService
from backend.services.history.changes import CollectionFeed
from backend.services.unit_of_work import UnitOfWork

_PREFIX = "urn:x-task-api:sync:"
_TOKEN = re.compile(r"^urn:x-task-api:sync:(no-list|[1-9][0-9]{0,17}):(0|[1-9][0-9]{0,17})$")
# The events a sync reads at most; past them the answer is partial (RFC 6578 §3.6: a `507`
# for the collection and a token to go on from), the next request reads on.
MAX_EVENTS = 5000
_STALE = "This sync token is not one of this collection's, too old, or unknown: sync from empty"
_TOO_MANY = "More objects than the limit asked for: sync without a limit, or a larger one"


class TooManyMatches(PreconditionRefused):
    """A `limit` the answer cannot keep to (RFC 6578 §3.7): `507`."""

    status_code = 507
    code = "NUMBER_OF_MATCHES_WITHIN_LIMITS"

    def __init__(self) -> None:
        super().__init__(clark(DAV, "number-of-matches-within-limits"), _TOO_MANY)


def token(list_id: int | None, position: int) -> str:
    """The collection's sync token (and `getctag`) at `position`."""
    return f"{_PREFIX}{_segment(list_id)}:{position}"


def _segment(list_id: int | None) -> str:
    return resources.NO_LIST if list_id is None else str(list_id)


def position_of(sent: str, list_id: int | None) -> int:
    """The position in a token of this collection; anything else is `valid-sync-token`."""
    matched = _TOKEN.fullmatch(sent)
    if matched is None or matched.group(1) != _segment(list_id):
        raise PreconditionRefused(clark(DAV, "valid-sync-token"), _STALE)
    return int(matched.group(2))


def heads(work: UnitOfWork, list_ids: list[int | None]) -> dict[int | None, int]:
    """Each collection's position now, for its `sync-token` and `getctag` (one statement)."""
    feed: CollectionFeed = work.service(CollectionFeed)
    return feed.heads(list_ids)


def answer(work: UnitOfWork, list_id: int | None, asked: ReportRequest) -> bytes:
    """The 207 body of the `sync-collection` `asked` on the collection of `list_id`."""
    wanted = PropfindRequest(allprop=False, names=asked.names)
    if not asked.sync_token:
        return _initial(work, list_id, asked, wanted)
    after = position_of(asked.sync_token, list_id)
    feed: CollectionFeed = work.service(CollectionFeed)
    changes = feed.since(after, list_id, MAX_EVENTS)
    if not changes.readable:  # before the token: a stranger learns nothing from it
        raise NotFound(objects.NOT_FOUND)
    if changes.expired or not changes.known:
        # Pruned past the token, or a token past the feed (a database restored from before
        # it): what changed since cannot be told, and "nothing" would be a lie.
        raise PreconditionRefused(clark(DAV, "valid-sync-token"), _STALE)
    # A position is never taken back: the head may be below it while a change is in flight
    # in one of the caller's spaces (the hold's horizon), or past a list it has left.
    now_at = max(after, changes.head)
    if not changes.rows:
        return multistatus([], wanted, sync_token=token(list_id, now_at))
    task_ids = sorted({int(row.task_id) for row in changes.rows})
    names = sorted({str(row.name) for row in changes.rows if row.name is not None})
    dav: DavObjectService = work.service(DavObjectService)
    now = dav.changed(list_id, task_ids, names)
    by_task = {int(row.id): objects.served(row) for row in now}
    by_href = {each.href(list_id): each for each in by_task.values()}
    served: dict[str, Served] = {}  # href -> object, in the order reported
    gone: dict[str, None] = {}  # hrefs, in order
    reached = after
    truncated = changes.has_more
    for row in changes.rows:
        hrefs = [_held(by_task, int(row.task_id), list_id)]
        if row.name is not None:
            hrefs.append(objects.href(list_id, str(row.name)))
        new = [h for h in dict.fromkeys(hrefs) if h not in served and h not in gone]
        size = len(served) + len(gone)
        if asked.limit is not None and size + len(new) > asked.limit:
            if size == 0:
                raise TooManyMatches()
            truncated = True
            break
        for each in new:
            if each in by_href:
                served[each] = by_href[each]
            else:
                gone[each] = None
        reached = int(row.id)
    else:
        if not changes.has_more:
            reached = now_at
    found = [listed(each, list_id, asked.names) for each in served.values()]
    return multistatus(
        found,
        wanted,
        gone,
        truncated=resources.collection_path(list_id) if truncated else None,
        sync_token=token(list_id, reached),
    )


def _held(by_task: dict[int, Served], task_id: int, list_id: int | None) -> str:
    """The href the task is served under in the collection now, else its derived one (a task
    no longer here that no client wrote was known by it)."""
    here = by_task.get(task_id)
    if here is not None:
        return here.href(list_id)
    return objects.href(list_id, f"{derived_uid(task_id)}.ics")


def _initial(
    work: UnitOfWork, list_id: int | None, asked: ReportRequest, wanted: PropfindRequest
) -> bytes:
    """Every object of the collection, and the token they are as of. The position is read
    first: a change between the two statements is in the listing and reported again by the
    next sync, never lost."""
    position = heads(work, [list_id])[list_id]
    _, every = objects.listed(work, list_id)  # a list the caller cannot read: the 404
    if asked.limit is not None and len(every) > asked.limit:
        raise TooManyMatches()
    found = [listed(each, list_id, asked.names) for each in every]
    return multistatus(found, wanted, sync_token=token(list_id, position))
