"""The statements of a collection's CalDAV objects (issue 62; specs/caldav.md), which
`DavObjectService` sends (dav_objects.py): the listing of a collection's tasks with their kept
objects and ETags (dav_tags.py), the lookups of a write by href, the refusals a write's own
message tests (a name or UID claimed, a tag vouched for, the task a name serves named to the
write: `NAMED_TASK`) and the kept object's writes.

A collection is a list the caller may read (`list_id`) or the caller's own tasks in no list
(None). Every read is one statement: the tasks, each with its kept object (a lateral read of
the child, through `may` as the child's own statements read it), the UID its parent is
served with, and whether its object is not served (`shadowed`: a restore, or a move, brought
it where another object held its name or UID: migration 0069, `task_dav_objects_serve`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    DateTime,
    Text,
    and_,
    any_,
    bindparam,
    case,
    cast,
    column,
    delete,
    exists,
    func,
    literal_column,
    not_,
    or_,
    select,
    table,
    true,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.dialects.postgresql import insert as pg_insert

from backend.db.scope import OWNER, spaces_locked
from backend.models import Task
from backend.models.dav_object import TaskDavObject
from backend.models.task_list import TaskList
from backend.services.calendar.dav_tags import fresh, tag
from backend.services.history.changes import collection_head
from backend.services.history.trash import trashing
from backend.services.statements.access import Action, may, role_in
from backend.services.tasks.task_schedule import SUCCEEDED
from backend.services.tasks.task_statements import (
    COMPLETED,
    CREATE_VALUES,
    TASK_VIEW,
    Inserting,
    completion,
    owned_task,
    updating,
    updating_of,
)

_TASKS = Task.__table__  # type: ignore[attr-defined]
_T = _TASKS.c
_OBJECTS = TaskDavObject.__table__  # type: ignore[attr-defined]
_LIST = bindparam("dav_list", type_=BigInteger)
_NAME = bindparam("dav_name", type_=Text)
_UID = bindparam("dav_uid", type_=Text)
_TASK = bindparam("dav_task", type_=BigInteger)
_BODY = bindparam("dav_body", type_=Text)
_VERSION = bindparam("dav_version", type_=BigInteger)
_PARENT_UID = bindparam("dav_parent_uid", type_=Text)

# A create whose client sent its COMPLETED: REST's insert, with that time the completion's.
COMPLETED_AT_SENT = bindparam("completed_at_sent", type_=DateTime(timezone=True))
CREATED_DONE = Inserting(
    {**CREATE_VALUES, "completed_at": case((COMPLETED, COMPLETED_AT_SENT), else_=None)}
)
_PARENT_TASK = bindparam("dav_parent_task", type_=BigInteger)
_TAG = bindparam("dav_tag", type_=Text)
_UID_TASK = bindparam("dav_uid_task", type_=BigInteger)
_ZONE = bindparam("dav_zone", type_=Text)


def completion_sent(done: bool, at: datetime | None) -> dict[str, Any]:
    """REST's completion, with a CalDAV client's COMPLETED as the time a task that was not
    completed yet takes (never a series': its completion is known by `completed_at = now()`)."""
    values = completion(done)
    if done and at is not None:
        values["completed_at"] = func.coalesce(_T.completed_at, at)
    return values


# The task a statement ahead of the write, in its message, named (`task_api.task`: a write by
# href, `NAME_TASK` or `NAME_PLAIN`), where the caller names none by id.
NAMED_TASK = cast(func.nullif(func.current_setting("task_api.task", True), ""), BigInteger)
DELETE_NAMED = trashing(
    owned_task(delete(_TASKS).where(_T.id == NAMED_TASK), Action.TASK_WRITE),
    may(_TASKS, Action.TASK_WRITE),
)


def update_named(values: dict[str, Any]) -> Any:
    """The UPDATE ... RETURNING of the task named ahead (`NAMED_TASK`), built for this call."""
    return updating_of(NAMED_TASK, values)


def update_at_version(values: dict[str, Any]) -> Any:
    """The UPDATE ... RETURNING of the caller's task `:task_id` at the version `:dav_version`."""
    return updating(values, _T.version == _VERSION)


def _in(table: Any, list_id: int | None) -> Any:
    """The rows of `table` in the collection: the list's, or the caller's own in no list."""
    if list_id is None:
        return and_(table.c.list_id.is_(None), table.c.user_id == bindparam(OWNER))
    return table.c.list_id == _LIST


def _listing(list_id: int | None, *where: Any) -> Any:
    kept = _OBJECTS.alias("kept")
    parents = _OBJECTS.alias("parents")
    k = (
        select(*kept.c["id", "uid", "name", "body", "served", "within", "updated_at"])
        .where(
            kept.c.user_id == _T.user_id,
            kept.c.task_id == _T.id,
            may(kept, Action.LIST_READ),
        )
        .lateral("k")
    )
    parent_uid = (
        select(parents.c.uid)
        .where(
            parents.c.user_id == _T.user_id,
            parents.c.task_id == _T.parent_id,
            parents.c.served,
            may(parents, Action.LIST_READ),
        )
        .scalar_subquery()
    )
    return (
        select(
            *TASK_VIEW,
            k.c.id.label("kept_id"),
            k.c.uid.label("kept_uid"),
            k.c.name.label("kept_name"),
            k.c.body.label("kept_body"),
            not_(k.c.served).label("shadowed"),
            fresh(k).label("kept_fresh"),
            parent_uid.label("parent_uid"),
            tag(k, parent_uid).label("tag"),
        )
        .select_from(_TASKS.outerjoin(k, true()))
        .where(_in(_TASKS, list_id), may(_TASKS, Action.LIST_READ), _own_object(k), *where)
    )


def _own_object(k: Any) -> Any:
    """Whether a task is an object of its own: not a completed occurrence served within its
    series' object (its kept object `within` and not served: migration 0094), which DAV
    neither lists, nor syncs, nor serves by any name."""
    return or_(k.c.within.is_not(True), k.c.served)


# Per collection shape (a list's, no list's): every task, one by name, one by UID.
ALL = {key: _listing(None if key else 0).order_by(_T.id) for key in (False, True)}


def _by_name(no_list: bool) -> Any:
    listing = _listing(None if no_list else 0)
    columns = listing.selected_columns
    return listing.where(or_(columns.kept_name == _NAME, _T.id == _TASK)).order_by(
        columns.kept_id.desc().nulls_last()
    )


def collection_values(list_id: int | None) -> dict[str, Any]:
    return {} if list_id is None else {"dav_list": list_id}


BY_NAME = {key: _by_name(key) for key in (False, True)}


_TASKS_CHANGED = bindparam("dav_tasks", type_=ARRAY(BigInteger))
_NAMES = bindparam("dav_names", type_=ARRAY(Text))


def _changed(no_list: bool) -> Any:
    listing = _listing(None if no_list else 0)
    columns = listing.selected_columns
    return listing.where(
        or_(_T.id == any_(_TASKS_CHANGED), columns.kept_name == any_(_NAMES))
    ).order_by(_T.id)


CHANGED = {key: _changed(key) for key in (False, True)}

_chosen = select(_T.user_id, _T.id, _T.list_id, _UID, _NAME, _BODY).where(
    _T.id == _TASK, may(_TASKS, Action.TASK_WRITE)
)


def _insert_keep(chosen: Any) -> Any:
    """The kept object's upsert from `chosen` (its owner, task, list, UID, name, body)."""
    insert = pg_insert(_OBJECTS).from_select(
        ["user_id", "task_id", "list_id", "uid", "name", "body"], chosen
    )
    return insert.on_conflict_do_update(
        index_elements=["user_id", "task_id"],
        set_={
            "uid": insert.excluded.uid,
            "name": insert.excluded.name,
            "body": insert.excluded.body,
            "within": False,  # an object kept for a task is its own
            "updated_at": func.now(),
        },
    )


KEEP = _insert_keep(_chosen)
_UNSERVE = {
    within: update(_OBJECTS)
    .where(_OBJECTS.c.task_id == _TASK, may(_OBJECTS, Action.TASK_WRITE))
    .values(served=False, within=within)
    for within in (False, True)
}
_AT_VERSION = exists(
    select(_T.id).where(_T.id == _TASK, _T.version == _VERSION, may(_TASKS, Action.TASK_WRITE))
)
UNSERVE_AT_VERSION = {
    within: statement.where(_AT_VERSION) for within, statement in _UNSERVE.items()
}
KEEP_AT_VERSION = _insert_keep(_chosen.where(_T.version == _VERSION))
KEEP_NAMED = _insert_keep(
    select(_T.user_id, _T.id, _T.list_id, _UID, _NAME, _BODY).where(
        _T.id == NAMED_TASK, may(_TASKS, Action.TASK_WRITE)
    )
)

_LISTS = TaskList.__table__  # type: ignore[attr-defined]
_the_list = (
    select(
        _LISTS.c.id.label("list_id_seen"),
        _LISTS.c.name.label("list_name"),
        _LISTS.c.color.label("list_color"),
        role_in(_LISTS).label("list_role"),
    )
    .where(_LISTS.c.id == _LIST, may(_LISTS, Action.LIST_READ))
    .subquery("the_list")
)
_objects = _listing(0).lateral("objects")
# A create's row (`w`, `TaskSending._write_then`).
_WRITTEN = table("w", column("id", BigInteger), column("list_id", BigInteger))


def _space(written: Any) -> Any:
    """The space of a task a statement inserts (`written`'s row): its list's owner's (a list
    the caller may write tasks in), else the caller's."""
    return func.coalesce(
        select(_LISTS.c.user_id)
        .where(_LISTS.c.id == written.c.list_id, may(_LISTS, Action.TASK_WRITE))
        .scalar_subquery(),
        bindparam(OWNER),
    )


_SPACE = _space(_WRITTEN)
KEEP_FROM_WRITE = _insert_keep(
    select(_SPACE, _WRITTEN.c.id, _WRITTEN.c.list_id, _UID, _NAME, _BODY).select_from(_WRITTEN)
)
# `hand_on`'s: from the next occurrence the completion's statement inserted (in its list's
# owner's space, as the occurrence it follows), or from the stored one after it.
# The next occurrence the completion's statement inserted, else the one a completion before
# it inserted (completed, reopened, completed again: the insert does nothing, one successor
# per task), read in the same statement.
_NEXT = (
    select(SUCCEEDED.c.id, SUCCEEDED.c.list_id)
    .union_all(
        select(_T.id, _T.list_id).where(
            _T.previous_task_id == _TASK,
            may(_TASKS, Action.TASK_WRITE),
            not_(exists(select(SUCCEEDED.c.id))),
        )
    )
    .subquery("next_occurrence")
)
KEEP_SUCCEEDED = _insert_keep(
    select(_space(_NEXT), _NEXT.c.id, _NEXT.c.list_id, _UID, _NAME, _BODY).select_from(_NEXT)
)
KEEP_SUCCEEDING = _insert_keep(
    select(_T.user_id, _T.id, _T.list_id, _UID, _NAME, _BODY).where(
        _T.previous_task_id == _TASK, may(_TASKS, Action.TASK_WRITE)
    )
)


def _lookup(no_list: bool) -> Any:
    listing = _listing(None if no_list else 0)
    columns = listing.selected_columns
    return listing.where(
        or_(
            columns.kept_name == _NAME,
            _T.id == _TASK,
            columns.kept_uid == _UID,
            columns.kept_uid == _PARENT_UID,
            _T.id == _PARENT_TASK,
        )
    ).order_by(columns.kept_id.desc().nulls_last())


def _claim(no_list: bool) -> Any:
    """`claim`'s refusal: `TA412`, the reason "name" or "uid", when a served object of the
    collection holds either."""
    held = _OBJECTS.alias("held")

    def holds(value: Any) -> Any:
        return exists(
            select(held.c.id).where(
                held.c.served,
                _in(held, None if no_list else 0),
                may(held, Action.LIST_READ),
                value,
            )
        )

    name, uid = holds(held.c.name == _NAME), holds(held.c.uid == _UID)
    reason = case((name, "name"), else_="uid")
    return select(
        func.task_api_refuse("TA412"), func.set_config("task_api.reason", reason, True)
    ).where(or_(name, uid))


def _name_held(no_list: bool) -> Any:
    """Whether a served object of the collection the caller may read holds the name."""
    held = _OBJECTS.alias("held")
    return exists(
        select(held.c.id).where(
            held.c.served,
            _in(held, None if no_list else 0),
            may(held, Action.LIST_READ),
            held.c.name == _NAME,
        )
    )


def _served_writable(no_list: bool) -> tuple[Any, Any, Any, Any]:
    """The listing's columns, whether a row's object is a kept one or its task's derived
    one, and the task the caller may write served under the name."""
    listing = _listing(None if no_list else 0)
    columns = listing.selected_columns
    unserved = func.coalesce(columns.shadowed, True)  # no kept object, or one not served
    kept, derived = unserved.is_(False), unserved.is_(True)  # derived: the task's name and UID
    name_held = _name_held(no_list)
    named = or_(
        and_(kept, columns.kept_name == _NAME), and_(derived, _T.id == _TASK, not_(name_held))
    )
    found = listing.where(named, may(_TASKS, Action.TASK_WRITE))
    return columns, kept, derived, found


def _name_task(no_list: bool) -> Any:
    """`name_task`'s statement: the served task's id set, else `TA412` with "look"."""
    _, _, _, found = _served_writable(no_list)
    target = found.with_only_columns(_T.id).limit(1).scalar_subquery()
    setting = func.set_config("task_api.task", func.coalesce(cast(target, Text), ""), True)
    named = select(setting.label("task")).subquery("named")
    return (
        select(func.task_api_refuse("TA412"), func.set_config("task_api.reason", "look", True))
        .select_from(named)
        .where(named.c.task == "")
    )


def _name_plain(no_list: bool) -> Any:
    """`name_plain`'s statement: the served task's id set where it is as assumed, else
    `TA412` with "free" (nothing served under the name), "zone:<its zone>" (as assumed but
    its zone) or "look". A task with a parent is as assumed where the client's last object
    names none (no `RELATED-TO` in it, or no object of a client's): a body naming no parent
    then moves nothing (`object_writes._reparented`)."""
    columns, kept, derived, found = _served_writable(no_list)
    holds_uid = or_(and_(kept, columns.kept_uid == _UID), and_(derived, _T.id == _UID_TASK))
    stays = or_(_T.parent_id.is_(None), derived, func.strpos(columns.kept_body, "RELATED-TO") == 0)
    plain = found.where(holds_uid, _T.recurrence.is_(None), stays)
    target = plain.where(_T.time_zone == _ZONE).with_only_columns(_T.id).limit(1)
    setting = func.set_config(
        "task_api.task", func.coalesce(cast(target.scalar_subquery(), Text), ""), True
    )
    named = select(setting.label("task")).subquery("named")
    free = and_(_TASK == 0, not_(_name_held(no_list)))
    other_zone = plain.with_only_columns(_T.time_zone).limit(1).scalar_subquery()
    reason = case(
        (free, "free"), (other_zone.is_not(None), func.concat("zone:", other_zone)), else_="look"
    )
    return (
        select(func.task_api_refuse("TA412"), func.set_config("task_api.reason", reason, True))
        .select_from(named)
        .where(named.c.task == "")
    )


def _vouch(no_list: bool, uid: bool) -> Any:
    """`vouch`'s refusal: `TA412` unless the object served under the name has the tag and
    the UID; the reason "tag" or "look"."""
    columns, kept, derived, found = _served_writable(no_list)
    holds_uid = or_(and_(kept, columns.kept_uid == _UID), and_(derived, _T.id == _UID_TASK))
    current = exists(found.where(columns.tag == _TAG, *([holds_uid] if uid else [])))
    reason = case((exists(found.where(columns.tag != _TAG)), "tag"), else_="look")
    return select(
        func.task_api_refuse("TA412"), func.set_config("task_api.reason", reason, True)
    ).where(not_(current))


NAME_TASK = {key: _name_task(key) for key in (False, True)}
VOUCH = {(key, uid): _vouch(key, uid) for key in (False, True) for uid in (False, True)}
LOCK_LIST = spaces_locked(
    select(_LISTS.c.user_id)
    .where(_LISTS.c.id == _LIST, may(_LISTS, Action.LIST_READ))
    .scalar_subquery()
)

LOOKUP_NO_LIST = _lookup(True)
_found = _lookup(False).lateral("found")
LOOKUP = (
    select(_the_list, *_found.c)
    .select_from(_the_list.outerjoin(_found, true()))
    .order_by(_found.c.kept_id.desc().nulls_last())
)
CLAIM, CLAIM_NO_LIST = _claim(False), _claim(True)
NAME_PLAIN = {key: _name_plain(key) for key in (False, True)}


_READ, _NO_ROWS = "task_api.read", literal_column("'[]'::jsonb", JSONB)


def _looked(statement: Any) -> Any:
    """After a statement that refused the request (`TA412`, nothing written): `statement`'s
    rows, as a JSON array, one more of the outcome's `read` (migration 0110): what the request
    does next, read under its change locks in its message (`DavObjectService.looked`; no order
    promised: the reader sorts). Not run where nothing refused."""
    rows = statement.subquery("looked")
    as_json = func.coalesce(func.jsonb_agg(func.to_jsonb(rows.table_valued())), _NO_ROWS)
    so_far = func.coalesce(
        cast(func.nullif(func.current_setting(_READ, True), ""), JSONB), _NO_ROWS
    )
    read = cast(so_far.op("||")(func.jsonb_build_array(select(as_json).scalar_subquery())), Text)
    refused = func.current_setting("task_api.refused", True) == "TA412"
    return select(func.set_config(_READ, read, True)).where(refused)


# `lookup`'s and `all`'s, read in a refusal (by no list: the caller's tasks in no list).
LOOKED = {True: _looked(LOOKUP_NO_LIST), False: _looked(LOOKUP)}
LOOKED_ALL = {key: _looked(ALL[key]) for key in (False, True)}

_POSITION = select(collection_head(_LIST).label("position")).subquery("position")


def _listed(position: bool, depth: int) -> Any:
    head = [_POSITION.c.position] if position else []
    joined = _the_list.join(_POSITION, true()) if position else _the_list
    if not depth:
        return select(_the_list, *head).select_from(joined)
    return (
        select(_the_list, *head, *_objects.c)
        .select_from(joined.outerjoin(_objects, true()))
        .order_by(_objects.c.id)
    )


LISTED = {(p, d): _listed(p, d) for p in (False, True) for d in (0, 1)}
