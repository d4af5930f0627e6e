"""A PUT and a DELETE by href (specs/caldav.md, "Objects" and "Cost"), planned here: which of
the services' public statements go in which message. A PUT is a task's create or update, a
DELETE its delete into the trash, as REST's; what a write by href needs beyond REST's rides in
the same message, from `DavObjectService`'s statements.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, cast

from backend.dav.answer import Stored
from backend.dav.objects import (
    DERIVED,
    NAME_TAKEN,
    NOT_FOUND,
    READ_ONLY,
    Served,
    check_preconditions,
    derived_id,
    may_write,
    served,
)
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
from backend.dav.xml import CALDAV, PreconditionRefused, clark
from backend.errors import Forbidden, NotFound, PreconditionFailed, Taken
from backend.ical.vtodo import ParsedTodo, parse
from backend.models import TaskCreate, TaskUpdate
from backend.models.dav_object import UID_MAX_LENGTH
from backend.models.task import reminders_json
from backend.models.task_calendar import CalendarObjectRefused
from backend.recurrence import DEFAULT_TIME_ZONE, TIME_ZONES
from backend.services.calendar import dav_tags as tags
from backend.services.calendar.dav_objects import DavObjectService, Looked, Sought
from backend.services.calendar.dav_statements import (
    COMPLETED_AT_SENT,
    CREATED_DONE,
    completion_sent,
)
from backend.services.tasks.service import TaskService
from backend.services.tasks.task_placement import placement_of
from backend.services.tasks.task_schedule import SCHEDULE_FIELDS, goes_on, plan_schedule
from backend.services.tasks.task_statements import INSERTING, PLACED
from backend.services.tasks.task_update import created
from backend.services.unit_of_work import UnitOfWork

_UID_TAKEN = "Another object of this collection has this UID"
_UID_CHANGED = "An object's UID does not change"
_ZONES = frozenset(TIME_ZONES)

# How often a write without If-Match whose task changed since its lookup tries again before it
# looks up under the caller's change lock instead, as `TaskService._replan` does.
_TRIES = 3


class _Changed(Exception):
    """The task changed between the lookup and the write, and the client named no version
    (`refused`: a lost create's refusal, which read the lookup in its message)."""

    def __init__(self, refused: Taken | None = None) -> None:
        super().__init__()
        self.refused = refused


def put(
    work: UnitOfWork,
    list_id: int | None,
    name: str,
    body: bytes,
    if_match: str | None,
    if_none: str | None,
) -> tuple[bool, Stored | None]:
    """Write the object: a new task (True) or the named one's update (False), and what it
    stored as served (`answer.Stored`; else None). One message where the write tests what it
    assumes (a vouching tag, a plain PUT, a create under `If-None-Match: *`), else a lookup
    and the write naming the version read (specs/caldav.md, "Cost")."""
    parsed = parse(body)  # UTC first: the UIDs do not depend on the zone
    if len(parsed.uid) > UID_MAX_LENGTH or len(name) > UID_MAX_LENGTH:
        raise PreconditionRefused(clark(CALDAV, "valid-calendar-object-resource"), "UID too long")
    dav: DavObjectService = work.service(DavObjectService)
    sent = (list_id, name, body, parsed)
    vouched = tags.vouched(if_match) if if_none is None else None
    if vouched is not None:
        stored = _put_vouched(work, dav, sent, vouched)
        if stored is not None:
            return False, stored
        dav.begin_write()  # refused unwritten for a reason a lookup words: looked up
    looked = None
    if if_match is None and if_none is None and _writes_plainly(parsed):
        done = _put_plain(work, dav, sent)
        if isinstance(done, tuple):
            return done
        # Refused unwritten for a reason a lookup words: its message read that lookup too.
        looked = done
        dav.begin_write()
    if _creates_only(name, parsed, if_match, if_none):
        try:
            return True, _create(work, dav, sent, (), if_none, False)
        except NotFound:  # the create's refusal: the same 404 as the lookup's
            raise NotFound(NOT_FOUND) from None
        except Forbidden:
            raise Forbidden(READ_ONLY) from None
    for attempt in range(_TRIES + 1):
        if attempt:
            dav.begin_write()
        try:
            return _put(work, dav, sent, if_match, if_none, attempt, looked)
        except _Changed as changed:  # a lost create's refusal read the lookup in its message
            last = attempt + 1 >= _TRIES  # the last locks
            looked = None if last else dav.looked(list_id, changed.refused)
    raise AssertionError("the last try holds the lock")  # pragma: no cover


def _put_vouched(
    work: UnitOfWork,
    dav: DavObjectService,
    sent: tuple[int | None, str, bytes, ParsedTodo],
    vouched: tags.Vouched,
) -> Stored | None:
    """An update naming a tag that vouches for its task, in one message with no lookup. None:
    nothing written (the PUT says more than this path writes, or a refusal the lookup words);
    a stale tag on an object there to write is the `412` at once."""
    list_id, name, body, parsed = sent
    if vouched.time_zone != DEFAULT_TIME_ZONE:
        parsed = parse(body, zone=vouched.time_zone)
    if not _writes_plainly(parsed):
        return None
    values = _plain(parsed, vouched.time_zone)
    uid_task = _uid_task(parsed)
    dav.lock_task(vouched.id)
    dav.vouch(list_id, name, derived_id(name), vouched.tag, parsed.uid, uid_task)
    kept = parsed.keep.decode()
    dav.keep_ahead(vouched.id, vouched.version, parsed.uid, name, kept)
    dav.tag_written(kept)
    try:
        written = dav.write_at_version(vouched.id, vouched.version, values)
    except Taken as taken:
        if taken.what == "tag":
            raise PreconditionFailed() from None
        return None
    except (PreconditionFailed, NotFound, Forbidden):
        return None
    return None if written is None else Stored(written, parsed)


def _plain(parsed: ParsedTodo, zone: str) -> dict[str, Any]:
    """What the update of a task with no rule and no parent writes, read on `zone`: the PUT's
    fields as a PATCH writes them, the schedule planned from what it sends alone (no rule)."""
    resolution = unruled(parsed)
    sent_fields = cast(TaskUpdate, resolution.update).model_dump(exclude_unset=True)
    update = TaskUpdate.model_validate({"time_zone": zone, **sent_fields})
    reminders = reminders_json(update.reminders or [])
    values = update.model_dump(exclude_unset=True, exclude={*SCHEDULE_FIELDS, *PLACED})
    done = values.pop("completed", None)
    if done is not None:
        values.update(completion_sent(done, resolution.completed_at))
    return {**values, **plan_schedule(None, str(update.time_zone), update.due_date, reminders)}


def _writes_plainly(parsed: ParsedTodo) -> bool:
    """Whether a PUT's body names no parent, rule or override: written without a lookup."""
    fields = parsed.fields
    return (
        parsed.parent_uid is None
        and fields.get("recurrence") is None
        and not parsed.overrides
        and {"due_date", "reminders", "recurrence"} <= fields.keys()
    )


def _put_plain(
    work: UnitOfWork, dav: DavObjectService, sent: tuple[int | None, str, bytes, ParsedTodo]
) -> tuple[bool, Stored | None] | Looked | None:
    """A PUT with no precondition, guessed to be what it most often is: the update of a task
    with no rule whose parent it leaves, on the zone its DUE names (specs/caldav.md, "Cost").
    (created, stored) when written; else the lookup the refusal's message read, or None."""
    list_id, name, body, parsed = sent
    zone = str(parsed.fields.get("time_zone") or DEFAULT_TIME_ZONE)
    for attempt in range(2):
        if attempt:
            dav.begin_write()
            parsed = parse(body, zone=zone)
            if not _writes_plainly(parsed):  # pragma: no cover - the zone reads no rule
                return None
        try:
            return False, _update_named(work, dav, (list_id, name, body, parsed), zone)
        except Taken as taken:
            refused = taken
        except (PreconditionFailed, NotFound, Forbidden):
            return None
        # Its task is as assumed but its zone: the body read on that zone, written again.
        _, _, other = refused.what.partition("zone:")
        if attempt == 0 and other in _ZONES and other != zone:
            zone = other
            continue
        if refused.what != "free" or attempt or not _creates_only(name, parsed, None, "*"):
            return dav.looked(list_id, refused)
        break
    dav.begin_write()
    try:
        return True, _create(work, dav, sent, (), None, locking=False)
    except _Changed as changed:  # a concurrent create took the name: this PUT is its update
        return dav.looked(list_id, changed.refused)
    except NotFound:  # the create's refusal: the same 404 as the lookup's
        raise NotFound(NOT_FOUND) from None
    except Forbidden:
        raise Forbidden(READ_ONLY) from None


def _update_named(
    work: UnitOfWork,
    dav: DavObjectService,
    sent: tuple[int | None, str, bytes, ParsedTodo],
    zone: str,
) -> Stored:
    """`_put_plain`'s message: the task named where it is as assumed, its object, its update."""
    list_id, name, _, parsed = sent
    values = _plain(parsed, zone)
    # A completed copy is a new name (`free`) that then finds its occurrence among the
    # collection's tasks: those too, read in the refused message.
    dav.name_plain(
        list_id,
        name,
        derived_id(name),
        parsed.uid,
        _uid_task(parsed),
        zone,
        every=is_completed_copy(parsed),
    )
    dav.keep_named(parsed.uid, name, parsed.keep.decode())
    dav.tag_written(parsed.keep.decode())
    written = dav.write_named(values)
    if written is None:
        raise NotFound(NOT_FOUND)
    return Stored(written, parsed)


def _sought(list_id: int | None, name: str, parsed: ParsedTodo) -> Sought:
    """What a PUT looks up: the name's task, the UID's and the parent UID's holders."""
    parent_task = derived_id(f"{parsed.parent_uid}.ics") if parsed.parent_uid else 0
    return Sought(list_id, name, derived_id(name), parsed.uid, parsed.parent_uid, parent_task)


def _uid_task(parsed: ParsedTodo) -> int:
    """The task a derived UID names (a task no client wrote); 0: none."""
    return derived_id(f"{parsed.uid}.ics")


def _put(
    work: UnitOfWork,
    dav: DavObjectService,
    sent: tuple[int | None, str, bytes, ParsedTodo],
    if_match: str | None,
    if_none: str | None,
    attempt: int,
    looked: Looked | None = None,
) -> tuple[bool, Stored | None]:
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
    # `objects.get`'s rule: the newest kept object with the name, else a derived name's task.
    found = next((each for each in candidates if each.name == name), None)
    may_write(seen)
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
            return copied, None
        return True, _create(work, dav, sent, rows, if_none, locking)
    row = found.row
    resolution = _reparented(classify(row, parsed), found, rows, parsed.parent_uid)
    within = resolution.form is Form.OVERRIDE_COMPLETED
    dav.lock_task(row.id)
    # The object goes on with its series in the completion's own message (a series with no
    # next occurrence keeps it on its last).
    handing = resolution.keep_on == "successor" and goes_on(row)
    after = None
    if handing:
        dav.give_up_ahead(row.id, row.version, within=within)
        after = dav.hand_on(row.id, parsed.uid, name, kept)
    else:
        dav.keep_ahead(row.id, row.version, parsed.uid, name, kept)
        dav.tag_written(kept)
    try:
        written = apply(work, row, resolution, after)
    except PreconditionFailed:
        if if_match is None and not locking:
            raise _Changed from None
        raise
    # Nothing written (an occurrence completed already): the kept object is not fresh.
    return False, None if handing or written is row else Stored(written, parsed)


def _create(
    work: UnitOfWork,
    dav: DavObjectService,
    sent: tuple[int | None, str, bytes, ParsedTodo],
    rows: Any,
    if_none: str | None,
    locking: bool,
) -> Stored:
    """A new task with the client's object, in one message, after claiming the name and UID.
    Its name taken: `412` under `If-None-Match: *`, else `_Changed` (the name's task is then
    updated instead); its UID taken: `no-uid-conflict`."""
    list_id, name, _, parsed = sent
    kept = parsed.keep.decode()
    fields: dict[str, Any] = parsed.create_fields()
    if list_id is not None:
        fields["list_id"] = list_id
    parent = _parent(rows, parsed.parent_uid)
    if parent is not None:
        fields["parent_id"] = parent
        fields.pop("list_id", None)  # a subtask is in its parent's list
    # The object in the create's statement where it commits the request; else with the COMMIT.
    alone = not locking and dav.can_finish()
    thens = (dav.keep_with_create(parsed.uid, name, kept),) if alone else ()
    dav.claim(_sought(list_id, name, parsed))
    try:
        data = TaskCreate.model_validate(fields)
        values, inserting = created(data), INSERTING
        if parsed.completed_at is not None:  # the client's COMPLETED, else now as REST's
            values[COMPLETED_AT_SENT.key], inserting = parsed.completed_at, CREATED_DONE
        tasks: TaskService = work.service(TaskService)
        dav.tag_written(kept)
        task = tasks.write_new(data, values, placement_of(data, None), thens, inserting)
    except Taken as taken:
        if taken.what == "uid":
            raise PreconditionRefused(clark(CALDAV, "no-uid-conflict"), _UID_TAKEN) from None
        if (if_none is not None and if_none.strip() == "*") or locking:
            raise PreconditionFailed(NAME_TAKEN) from None
        raise _Changed(taken) from None
    if not thens:
        dav.keep(task.id, parsed.uid, name, kept)
    return Stored(task, parsed)


def _creates_only(name: str, parsed: ParsedTodo, if_match: str | None, if_none: str | None) -> bool:
    """Whether the PUT can only create and needs nothing read first: no parent, no derived
    name or UID (a task no client wrote holds those by its id, which the claim does not see)."""
    return (
        if_none is not None
        and if_none.strip() == "*"
        and if_match is None
        and not is_completed_copy(parsed)  # it may be an occurrence's: looked up
        and parsed.parent_uid is None
        and derived_id(name) == 0
        and DERIVED.fullmatch(f"{parsed.uid}.ics") is None
    )


def _holds(candidate: Served, uid: str) -> bool:
    """Whether the candidate's kept object holds `uid` (a derived UID is no client's)."""
    return candidate.kept is not None and candidate.uid == uid


def _completed_copy(
    work: UnitOfWork,
    dav: DavObjectService,
    sent: tuple[int | None, ParsedTodo, str, str],
    every: Any = None,
) -> bool | None:
    """A new object that is the completed copy of an occurrence (specs/caldav.md, "Completing
    a recurring task"): its object goes to that occurrence, which completes in one message
    unless completed already, so there is one completed task, never two. None: not a copy.
    `every`: the collection's tasks if read already (in a refused guess's message)."""
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
    apply(work, occurrence, resolution, handed)
    return True


def delete(work: UnitOfWork, list_id: int | None, name: str, if_match: str | None) -> None:
    """Put the task in the trash, as `DELETE /api/tasks/{id}` does: one message under a
    vouching tag or no If-Match, else the lookup then the delete naming the version read
    (specs/caldav.md, "Cost"); a refusal is looked up."""
    dav: DavObjectService = work.service(DavObjectService)
    vouched = tags.vouched(if_match)
    if vouched is not None:
        dav.lock_task(vouched.id)
        dav.vouch(list_id, name, derived_id(name), vouched.tag)
        try:
            tasks: TaskService = work.service(TaskService)
            tasks.delete(vouched.id, frozenset({vouched.version}))
            return
        except Taken as taken:
            if taken.what == "tag":
                raise PreconditionFailed() from None
        except (PreconditionFailed, NotFound, Forbidden):
            pass
        dav.begin_write()  # refused unwritten for a reason a lookup words: looked up
    elif if_match is None:
        # No version named: whatever is served under the name now goes, in one message.
        dav.name_task(list_id, name, derived_id(name))
        try:
            if dav.delete_named() is not None:
                return
        except (PreconditionFailed, NotFound, Forbidden):
            pass
        dav.begin_write()  # refused unwritten: looked up, to answer as a lookup does
    for attempt in range(_TRIES + 1):
        if attempt:
            dav.begin_write()
        locking = attempt == _TRIES
        seen, rows = dav.lookup(Sought(list_id, name, derived_id(name), ""), commit=not locking)
        found = next((each for each in map(served, rows) if each.name == name), None)
        if seen is None or found is None:
            raise NotFound(NOT_FOUND)
        may_write(seen)
        check_preconditions(found, if_match, None)
        dav.begin_write()
        dav.lock_task(found.row.id)
        try:
            tasks = work.service(TaskService)
            tasks.delete(found.row.id, frozenset({found.row.version}))
            return
        except PreconditionFailed:
            if if_match is not None or locking:
                raise


def _parent(rows: Any, uid: str | None) -> int | None:
    """The task of the lookup's `rows` a `RELATED-TO;RELTYPE=PARENT` names (the newest object
    holding the UID, else a derived UID's task), if any."""
    if uid is None:
        return None
    for row in rows:
        if row.kept_uid == uid and not row.shadowed:
            return int(row.id)
    derived = DERIVED.fullmatch(f"{uid}.ics")
    if derived is None:
        return None
    named = int(derived.group(1))
    return next((int(row.id) for row in rows if row.id == named), None)


def _reparented(
    resolution: Resolution, found: Served, rows: Any, parent_uid: str | None
) -> Resolution:
    """An update's parent relation as a PATCH's `parent_id` (specs/caldav.md, "The parent on
    an update"): none named moves the task to the top only where the client's last object
    named one, as clients that drop `RELATED-TO` would otherwise flatten every subtask."""
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
