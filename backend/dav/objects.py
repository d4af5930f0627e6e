"""A collection's objects (issue 62; specs/caldav.md, "Objects"): a task as the VTODO one
reader gets, found by its resource name, and written through the task service.

An object's name is the last segment of the href its client PUT it to (kept with the object:
`task_dav_objects.name`), or `task-<id>@task-api.ics` for a task no client wrote. Its ETag is
the one the database computes with every object it reads (`DavObjectService`, `tag`) and
tests in a write's own message: a hash of everything the reader's body is made of, so a
listing renders nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from types import SimpleNamespace
from typing import Any, cast
from urllib.parse import quote

from backend.dav import resources
from backend.dav.recurrence_forms import (
    Form,
    Resolution,
    apply,
    classify,
    classify_copy,
    is_completed_copy,
    match_completed_copy,
    unruled,
)
from backend.dav.vtodo import ParsedTodo, parse, render
from backend.dav.xml import CALDAV, PreconditionRefused, clark
from backend.errors import Forbidden, NotFound, PreconditionFailed, Taken
from backend.models import TaskCreate, TaskUpdate
from backend.models.dav_object import UID_MAX_LENGTH
from backend.models.references import Action
from backend.models.task_calendar import DERIVED_UID, CalendarObjectRefused, derived_uid
from backend.models.task_table import TaskRow
from backend.recurrence import DEFAULT_TIME_ZONE, TIME_ZONES
from backend.services.access import permitted
from backend.services.dav_objects import DavObjectService, Looked, Sought
from backend.services.registry import UnitOfWork
from backend.services.task_schedule import goes_on

NOT_FOUND = "Not found"
CONTENT_TYPE = "text/calendar; charset=utf-8; component=VTODO"
_DERIVED = re.compile(DERIVED_UID.pattern + r"\.ics")  # a derived UID's object name
_READ_ONLY = "Your role in this list does not allow this"
_UID_TAKEN = "Another object of this collection has this UID"
_UID_CHANGED = "An object's UID does not change"
_NAME_TAKEN = "An object exists under this name"
# A tag that says what an update needs of its task (`DavObjectService`'s `_tag`).
_VOUCHING = re.compile(r'"([0-9]{1,18})-([0-9]{1,18})\.([A-Za-z0-9_+/-]{1,64})\.[0-9a-f]{32}"')
_ZONES = frozenset(TIME_ZONES)


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
        raise PreconditionFailed(_NAME_TAKEN)
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


# How often a write without If-Match whose task changed between its lookup and its write looks
# up and writes again before it looks up under the caller's change lock instead (the write in
# the lookup's transaction: nothing can change the task in between), as a PATCH's schedule
# change does (`TaskService._replan`).
_TRIES = 3


class _Changed(Exception):
    """The task changed between the lookup and the write, and the client named no version."""


def put(
    work: UnitOfWork,
    list_id: int | None,
    name: str,
    body: bytes,
    if_match: str | None,
    if_none: str | None,
) -> bool:
    """Write the object: a new task (True) or the named one's update (False), through the
    task service, in at most two messages after the sign-in's check (a password this
    process has not verified; specs/caldav.md, "Cost"). One where the write's own message
    tests what it assumes: a tag that vouches for its task (`_put_vouched`), a task as a
    PUT with no precondition assumes it (`_put_plain`), a create under `If-None-Match: *`
    that needs nothing looked up (its claim of the name and the UID says whether the object
    exists). Otherwise the lookup (`DavObjectService.lookup`, committing with the entry, or
    read in a refused guess's message), then the write naming the version read, the kept
    object in its message (a completion hands the series' object on in it). A task changed
    in between is `412` with If-Match, else looked up and written again; a create that lost
    its name to a concurrent one is that one's update, a third message (its lookup read in
    the refused create's)."""
    parsed = parse(body)  # UTC first: the UIDs do not depend on the zone
    if len(parsed.uid) > UID_MAX_LENGTH or len(name) > UID_MAX_LENGTH:
        raise PreconditionRefused(clark(CALDAV, "valid-calendar-object-resource"), "UID too long")
    dav = work.service(DavObjectService)
    vouched = _vouched(if_match, if_none)
    if vouched is not None:
        if _put_vouched(work, dav, (list_id, name, body, parsed), vouched):
            return False
        dav.begin_write()  # refused unwritten for a reason a lookup words: looked up
    looked = None
    if if_match is None and if_none is None and _writes_plainly(parsed):
        done = _put_plain(work, dav, (list_id, name, body, parsed))
        if done is not None:
            return done
        # Refused unwritten for a reason a lookup words: its message read that lookup too.
        looked = dav.looked(list_id)
        dav.begin_write()
    if _creates_only(name, parsed, if_match, if_none):
        try:
            return _create(work, dav, (list_id, name, body, parsed), (), if_none, locking=False)
        except NotFound:  # the create's refusal: the same 404 as the lookup's
            raise NotFound(NOT_FOUND) from None
        except Forbidden:
            raise Forbidden(_READ_ONLY) from None
    for attempt in range(_TRIES + 1):
        if attempt:
            dav.begin_write()
        try:
            sent = (list_id, name, body, parsed)
            return _put(work, dav, sent, if_match, if_none, attempt, looked)
        except _Changed:  # a lost create's refusal read the lookup in its message
            looked = dav.looked(list_id) if attempt + 1 < _TRIES else None  # the last locks
            continue
    raise AssertionError("the last try holds the lock")  # pragma: no cover


@dataclass(frozen=True)
class _Vouched:
    """What an object's tag `"<id>-<version>.<time zone>.<digest>"` says of its task, true
    where the update's own message finds that tag current (`DavObjectService.vouch`): the
    task, its version and its zone, and that it has no rule and no parent, so the service
    writes a PUT's fields over it without reading it first (`TaskService.update`'s
    `current`: with no rule, the schedule is the one sent)."""

    id: int
    version: int
    time_zone: str
    tag: str
    recurrence: None = None
    parent_id: None = None
    series_start: None = None
    series_id: None = None


def _vouched(if_match: str | None, if_none: str | None) -> _Vouched | None:
    """The task an `If-Match` of one tag vouches for (None: another tag, several, `*`)."""
    if if_match is None or if_none is not None:
        return None
    match = _VOUCHING.fullmatch(if_match.strip())
    if match is None or match.group(3) not in _ZONES:
        return None
    tag = match.group(0)
    return _Vouched(int(match.group(1)), int(match.group(2)), match.group(3), tag)


def _put_vouched(
    work: UnitOfWork,
    dav: DavObjectService,
    sent: tuple[int | None, str, bytes, ParsedTodo],
    vouched: _Vouched,
) -> bool:
    """An update naming a tag that vouches for its task, in one message, with no lookup
    (specs/caldav.md, "Cost"): the change locks of the caller's and the task's spaces, the
    tag tested where the object is served (`vouch`: under the locks), the kept object at
    the version, then the service's update naming it, committing. The body is read on the
    task's clock, as `_put` reads it. False: nothing written, and either the PUT says more
    than this path writes (a parent, a rule, an occurrence) or the database refused it for
    a reason the lookup words (a missing object, a role, a UID): `_put` then answers it. A
    stale tag on an object there to write is the `412` at once."""
    list_id, name, body, parsed = sent
    if vouched.time_zone != DEFAULT_TIME_ZONE:
        parsed = parse(body, zone=vouched.time_zone)
    if not _writes_plainly(parsed):
        return False
    resolution = unruled(parsed)
    sent_fields = cast(TaskUpdate, resolution.update).model_dump(exclude_unset=True)
    update = TaskUpdate.model_validate({"time_zone": vouched.time_zone, **sent_fields})
    uid_task = _uid_task(parsed)
    dav.lock_task(vouched.id)
    dav.vouch(list_id, name, _derived_id(name), vouched.tag, parsed.uid, uid_task)
    dav.keep_ahead(vouched.id, vouched.version, parsed.uid, name, parsed.keep.decode())
    try:
        work.tasks.update(
            vouched.id,
            update,
            frozenset({vouched.version}),
            current=cast(TaskRow, vouched),
            completed_at=resolution.completed_at,
        )
    except Taken as taken:
        if taken.what == "tag":
            raise PreconditionFailed() from None
        return False
    except (PreconditionFailed, NotFound, Forbidden):
        return False
    return True


@dataclass(frozen=True)
class _Assumed:
    """What a PUT with no precondition assumes of the task served under its name, true where
    its own message finds it so (`DavObjectService.name_plain`): no rule, its parent left
    where it is, the time zone its body is read on; so the service writes the PUT's fields
    over it without reading it first, as under a vouching tag (`_Vouched`). The task is the
    one named in that message (`task_statements.NAMED_TASK`), as found under its locks."""

    time_zone: str
    id: None = None
    version: None = None
    recurrence: None = None
    parent_id: None = None
    series_start: None = None
    series_id: None = None


def _writes_plainly(parsed: ParsedTodo) -> bool:
    """Whether a PUT's body is what an update of a task with no rule and no parent writes
    without reading the task (no parent named, no rule, no override): `_put_vouched`'s
    and `_put_plain`'s."""
    fields = parsed.fields
    return (
        parsed.parent_uid is None
        and fields.get("recurrence") is None
        and not parsed.overrides
        and {"due_date", "reminders", "recurrence"} <= fields.keys()
    )


def _put_plain(
    work: UnitOfWork, dav: DavObjectService, sent: tuple[int | None, str, bytes, ParsedTodo]
) -> bool | None:
    """A PUT with no precondition in one message where it is what it most often is: the
    update of a task with no rule whose parent it leaves, on the zone its DUE names (else
    UTC, every task's unless set otherwise); a task on another zone, in two (read again on
    the zone the refusal names). The collection's change locks, then the task served under
    the name, holding the PUT's UID, named to the write where it is as assumed
    (`name_plain`), the kept object on it, and the service's update of it, committing
    (specs/caldav.md, "Cost"). Nothing served under the name (the assumption's refusal says
    so): the create, with its claim, in the next message, when it needs nothing looked up.
    False: updated; True: created; None: nothing written, to be looked up (any other
    refusal, a create that lost its name to a concurrent one, or one that must look): a
    refusal's message read that lookup too (`DavObjectService.looked`)."""
    list_id, name, body, parsed = sent
    zone = str(parsed.fields.get("time_zone") or DEFAULT_TIME_ZONE)
    for attempt in range(2):
        if attempt:
            dav.begin_write()
            parsed = parse(body, zone=zone)
            if not _writes_plainly(parsed):  # pragma: no cover - the zone reads no rule
                return None
        try:
            _update_named(work, dav, (list_id, name, body, parsed), zone)
            return False
        except Taken as taken:
            refused = taken.what
        except (PreconditionFailed, NotFound, Forbidden):
            return None
        # Its task is as assumed but its zone: the body read on that zone, written again
        # (the second message; the zone's name is the database's, one of `_ZONES`).
        _, _, other = refused.partition("zone:")
        if attempt == 0 and other in _ZONES and other != zone:
            zone = other
            continue
        if refused != "free" or attempt or not _creates_only(name, parsed, None, "*"):
            return None
        break
    dav.begin_write()
    try:
        return _create(work, dav, sent, (), None, locking=False)
    except _Changed:  # a concurrent create took the name: this PUT is its update
        return None
    except NotFound:  # the create's refusal: the same 404 as the lookup's
        raise NotFound(NOT_FOUND) from None
    except Forbidden:
        raise Forbidden(_READ_ONLY) from None


def _update_named(
    work: UnitOfWork,
    dav: DavObjectService,
    sent: tuple[int | None, str, bytes, ParsedTodo],
    zone: str,
) -> None:
    """`_put_plain`'s message: the collection's locks, the task named where it is as
    assumed (read on `zone`), the kept object on it, the service's update of it."""
    list_id, name, _, parsed = sent
    resolution = unruled(parsed)
    sent_fields = cast(TaskUpdate, resolution.update).model_dump(exclude_unset=True)
    update = TaskUpdate.model_validate({"time_zone": zone, **sent_fields})
    # A completed copy is a new name (`free`) that then finds its occurrence among the
    # collection's tasks: those too, read in the refused message.
    dav.name_plain(
        list_id,
        name,
        _derived_id(name),
        parsed.uid,
        _uid_task(parsed),
        zone,
        every=is_completed_copy(parsed),
    )
    dav.keep_named(parsed.uid, name, parsed.keep.decode())
    work.tasks.update(
        None, update, current=cast(TaskRow, _Assumed(zone)), completed_at=resolution.completed_at
    )


def _sought(list_id: int | None, name: str, parsed: ParsedTodo) -> Sought:
    """What a PUT of `parsed` under `name` looks up: the name's task, the UID's holder and
    the parent's (a derived parent UID names its task)."""
    parent_task = _derived_id(f"{parsed.parent_uid}.ics") if parsed.parent_uid else 0
    return Sought(list_id, name, _derived_id(name), parsed.uid, parsed.parent_uid, parent_task)


def _uid_task(parsed: ParsedTodo) -> int:
    """The task a derived UID names (a task no client wrote); 0: none."""
    return _derived_id(f"{parsed.uid}.ics")


def _put(
    work: UnitOfWork,
    dav: DavObjectService,
    sent: tuple[int | None, str, bytes, ParsedTodo],
    if_match: str | None,
    if_none: str | None,
    attempt: int,
    looked: Looked | None = None,
) -> bool:
    """The PUT after its lookup (`looked`: read already, in a refused guess's message)."""
    list_id, name, body, parsed = sent
    locking = attempt == _TRIES
    seen, rows = (
        (looked.seen, looked.rows)
        if looked is not None
        else dav.lookup(_sought(list_id, name, parsed), commit=not locking)
    )
    if seen is None:
        raise NotFound(NOT_FOUND)  # a list the caller cannot read: the missing one's 404
    candidates = [served(row) for row in rows]
    # `find`'s rule: the newest kept object with the name, else a derived name's task.
    found = next((each for each in candidates if each.name == name), None)
    _may_write(seen)
    check_preconditions(found, if_match, if_none)
    if found is not None and str(found.row.time_zone) != DEFAULT_TIME_ZONE:
        parsed = parse(body, zone=str(found.row.time_zone))
    if found is not None and parsed.uid != found.uid:
        raise PreconditionRefused(clark(CALDAV, "no-uid-conflict"), _UID_CHANGED)
    holder = next((each for each in candidates if _holds(each, parsed.uid)), None)
    if found is None and holder is not None:
        raise PreconditionRefused(clark(CALDAV, "no-uid-conflict"), _UID_TAKEN)
    kept = parsed.keep.decode()
    dav.begin_write()
    if found is None:
        every = looked.every if looked is not None else None
        try:
            copied = _completed_copy(work, dav, (list_id, parsed, name, kept), every)
        except PreconditionFailed:  # its occurrence changed since it was read
            if if_match is None and not locking:
                raise _Changed from None
            raise
        if copied is not None:
            return copied
        return _create(work, dav, sent, rows, if_none, locking)
    row = found.row
    resolution = _reparented(classify(row, parsed), found, rows, parsed.parent_uid)
    within = resolution.form is Form.OVERRIDE_COMPLETED
    dav.lock_task(row.id)
    # The object goes on with its series in the completion's own message: given up by the
    # occurrence at the version read, kept on the next one the completion inserts (a
    # series with no next occurrence keeps it on its last).
    handing = resolution.keep_on == "successor" and goes_on(row)
    after = None
    if handing:
        dav.give_up_ahead(row.id, row.version, within=within)
        after = dav.hand_on(row.id, parsed.uid, name, kept)
    else:
        dav.keep_ahead(row.id, row.version, parsed.uid, name, kept)
    try:
        apply(work, row, resolution, frozenset({row.version}), after=after)
    except PreconditionFailed:
        if if_match is None and not locking:
            raise _Changed from None
        raise
    return False


def _create(
    work: UnitOfWork,
    dav: DavObjectService,
    sent: tuple[int | None, str, bytes, ParsedTodo],
    rows: Any,
    if_none: str | None,
    locking: bool,
) -> bool:
    """A new task with the client's object, in one message: the collection's change locks,
    the name and the UID claimed (a concurrent create that took either refuses this one,
    nothing written), then the create with the object from its row. Its name taken: `412`
    under `If-None-Match: *`, else the name's task is looked up and updated instead (a retry,
    a second device); its UID taken: `no-uid-conflict`."""
    list_id, name, _, parsed = sent
    kept = parsed.keep.decode()
    fields: dict[str, Any] = parsed.create_fields()
    if list_id is not None:
        fields["list_id"] = list_id
    parent = _parent(rows, parsed.parent_uid)
    if parent is not None:
        fields["parent_id"] = parent
        fields.pop("list_id", None)  # a subtask is in its parent's list
    # In the create's statement where it commits the request; under the lock (the
    # lookup's transaction goes on) or after a completed copy's read of its collection in a
    # transaction of ours, with the COMMIT.
    alone = not locking and dav.can_finish()
    then = dav.keep_with_create(parsed.uid, name, kept) if alone else None
    dav.claim(_sought(list_id, name, parsed))
    try:
        created = TaskCreate.model_validate(fields)
        task = work.tasks.create(created, then=then, completed_at=parsed.completed_at)
    except Taken as taken:
        if taken.what == "uid":
            raise PreconditionRefused(clark(CALDAV, "no-uid-conflict"), _UID_TAKEN) from None
        if (if_none is not None and if_none.strip() == "*") or locking:
            raise PreconditionFailed(_NAME_TAKEN) from None
        raise _Changed from None
    if then is None:
        dav.keep(task.id, parsed.uid, name, kept)
    return True


def _creates_only(name: str, parsed: ParsedTodo, if_match: str | None, if_none: str | None) -> bool:
    """Whether the PUT can only create (`If-None-Match: *`, no `If-Match`) and needs nothing
    read first: no parent to find, no derived name or UID (a task no client wrote holds those
    by its id, not by a kept object the claim sees)."""
    return (
        if_none is not None
        and if_none.strip() == "*"
        and if_match is None
        and not is_completed_copy(parsed)  # it may be an occurrence's: looked up
        and parsed.parent_uid is None
        and _derived_id(name) == 0
        and _DERIVED.fullmatch(f"{parsed.uid}.ics") is None
    )


def _holds(candidate: Served, uid: str) -> bool:
    """Whether the candidate's served object holds `uid` (a task no client wrote holds none
    a client can claim: its derived UID names it by its id)."""
    return candidate.kept is not None and candidate.uid == uid


def _completed_copy(
    work: UnitOfWork,
    dav: DavObjectService,
    sent: tuple[int | None, ParsedTodo, str, str],
    every: Any = None,
) -> bool | None:
    """A new object that is the completed copy of an occurrence of a series (todoman, the
    `caldav` library; specs/caldav.md, "Completing a recurring task"): the copy's object goes
    to that occurrence, which completes (the series' object then goes on to the next one), or
    is completed already (the series' PUT came first). Either way one completed task, never
    the copy and the occurrence both. None: not a copy, an ordinary create. `every`: the
    collection's tasks, read already (in a refused guess's message), else read here.

    A completion is one message, as a series' completion read already is: the change locks
    of the caller's and the occurrence's spaces, the copy's object kept on the occurrence at
    the version read (its name and UID the copy's now: the series' are free), then the
    completion at that version with its next occurrence, and the series' object kept on that
    one in the completion's statement (`DavObjectService.hand_on`), committing."""
    list_id, parsed, name, kept = sent
    if not is_completed_copy(parsed):
        return None
    rows = [served(row) for row in (every if every is not None else dav.all(list_id))]
    occurrence = match_completed_copy(parsed, [each.row for each in rows])
    if occurrence is None:
        return None
    series = next(each for each in rows if each.row is occurrence)
    resolution = classify_copy(occurrence, parsed)
    if resolution.update is None:
        dav.keep(occurrence.id, parsed.uid, name, kept)
        return True
    dav.lock_task(occurrence.id)
    dav.keep_ahead(occurrence.id, occurrence.version, parsed.uid, name, kept)
    handed = None
    if series.kept is not None:
        handed = dav.hand_on(occurrence.id, series.uid, series.name, series.kept.decode())
    apply(work, occurrence, resolution, frozenset({occurrence.version}), after=handed)
    return True


def _may_write(seen: Any) -> None:
    """A collection the caller only reads (a viewer's, a commenter's): 403 before anything
    is written (the service would refuse the write too)."""
    if Action.TASK_WRITE not in permitted(seen.list_role, Action.TASK_WRITE):
        raise Forbidden(_READ_ONLY)


def _derived_id(name: str) -> int:
    """The task a derived name (`task-<id>@task-api.ics`) names; 0: none."""
    derived = _DERIVED.fullmatch(name)
    return int(derived.group(1)) if derived is not None else 0


def delete(work: UnitOfWork, list_id: int | None, name: str, if_match: str | None) -> None:
    """Put the task in the trash (restorable), as `DELETE /api/tasks/{id}` does: the lookup
    (committing with the entry), then the delete naming the version read (changed in between:
    `412` with If-Match, else again, as `put`). An `If-Match` naming a tag that vouches for
    its task is one message, as `_put_vouched`: the locks, the tag tested, the delete; so is
    a DELETE with no If-Match (`DavObjectService.name_task`). A refusal is looked up."""
    dav = work.service(DavObjectService)
    vouched = _vouched(if_match, None)
    if vouched is not None:
        dav.lock_task(vouched.id)
        dav.vouch(list_id, name, _derived_id(name), vouched.tag)
        try:
            work.tasks.delete(vouched.id, frozenset({vouched.version}))
            return
        except Taken as taken:
            if taken.what == "tag":
                raise PreconditionFailed() from None
        except (PreconditionFailed, NotFound, Forbidden):
            pass
        dav.begin_write()  # refused unwritten for a reason a lookup words: looked up
    elif if_match is None:
        # No version named: whatever is served under the name now goes, in one message (the
        # collection's locks, the name's task named to the delete, the delete).
        dav.name_task(list_id, name, _derived_id(name))
        try:
            work.tasks.delete(None)
            return
        except (PreconditionFailed, NotFound, Forbidden):
            pass
        dav.begin_write()  # refused unwritten: looked up, to answer as a lookup does
    for attempt in range(_TRIES + 1):
        if attempt:
            dav.begin_write()
        locking = attempt == _TRIES
        seen, rows = dav.lookup(Sought(list_id, name, _derived_id(name), ""), commit=not locking)
        found = next((each for each in map(served, rows) if each.name == name), None)
        if seen is None or found is None:
            raise NotFound(NOT_FOUND)
        _may_write(seen)
        check_preconditions(found, if_match, None)
        dav.begin_write()
        dav.lock_task(found.row.id)
        try:
            work.tasks.delete(found.row.id, frozenset({found.row.version}))
            return
        except PreconditionFailed:
            if if_match is not None or locking:
                raise


def _parent(rows: Any, uid: str | None) -> int | None:
    """The task a `RELATED-TO;RELTYPE=PARENT` names in the collection (from the lookup's
    rows: the newest object holding the UID, else the task a derived UID names), if any. A
    relation to an object we do not hold is kept in the object only."""
    if uid is None:
        return None
    for row in rows:
        if row.kept_uid == uid and not row.shadowed:
            return int(row.id)
    derived = _DERIVED.fullmatch(f"{uid}.ics")
    if derived is None:
        return None
    named = int(derived.group(1))
    return next((int(row.id) for row in rows if row.id == named), None)


def _reparented(
    resolution: Resolution, found: Served, rows: Any, parent_uid: str | None
) -> Resolution:
    """An update's `RELATED-TO;RELTYPE=PARENT`, as a PATCH's `parent_id`: a task of the
    collection it names (another than the stored parent) moves the task under it; none named
    moves it to the top level, where the client's own last object named a parent (a client
    that knows subtasks removed it; one that drops what it does not know, Thunderbird's or
    Apple's, would otherwise flatten every subtask it edits); a UID the collection does not
    hold moves nothing."""
    row = found.row
    if resolution.update is None:
        return resolution
    parent = _parent(rows, parent_uid)
    if parent_uid is not None and parent is None:
        return resolution
    if parent is None and not _names_a_parent(found.kept):
        return resolution
    if parent == row.parent_id:
        return resolution
    sent = resolution.update.model_dump(exclude_unset=True)
    update = TaskUpdate.model_validate({**sent, "parent_id": parent})
    return replace(resolution, update=update)


def _names_a_parent(kept: bytes | None) -> bool:
    """Whether the client's kept object (None: no client wrote one) names a parent."""
    if kept is None:
        return False
    try:
        return parse(kept).parent_uid is not None
    except CalendarObjectRefused:  # pragma: no cover - it was parsed when it was PUT
        return False
