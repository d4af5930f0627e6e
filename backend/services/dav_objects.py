"""A collection's CalDAV objects (issue 62; specs/caldav.md): its tasks with their kept
objects (backend/models/dav_object.py), read through the access relation, and the kept object
written beside a task's write.

A collection is a list the caller may read (`list_id`) or the caller's own tasks in no list
(None). Every read is one statement: the tasks, each with its kept object (a lateral read of
the child, through `may` as the child's own statements read it), the UID its parent is
served with, and whether its object is not served (`shadowed`: a restore, or a move, brought
it where another object held its name or UID: migration 0069, `task_dav_objects_serve`).

A write by href takes the change locks of the collection's space ahead of anything it reads or
locks, as REST's writes do: a create then checks in its own message that the name and the UID
are still free (`claim`; the unique keys back it), an update keeps the object only at the
version its write names (`keep_ahead`), and no two writers of one object wait for each other.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from sqlalchemy import (
    BigInteger,
    Text,
    and_,
    any_,
    bindparam,
    case,
    cast,
    column,
    exists,
    extract,
    func,
    literal,
    literal_column,
    not_,
    or_,
    select,
    table,
    true,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as pg_insert

from backend.db.scope import OWNER, Bound, spaces_locked
from backend.models import Task
from backend.models.dav_object import TaskDavObject
from backend.models.task_list import TaskList
from backend.services.access import Action, may, role_in
from backend.services.changes import HOLD, collection_head
from backend.services.task_bulk import LOCK_TASKS
from backend.services.task_schedule import SUCCEEDED
from backend.services.task_sending import TaskSending, Then, decoded
from backend.services.task_statements import NAMED_TASK, TASK_VIEW

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
_PARENT_TASK = bindparam("dav_parent_task", type_=BigInteger)
_TAG = bindparam("dav_tag", type_=Text)
_UID_TASK = bindparam("dav_uid_task", type_=BigInteger)
_ZONE = bindparam("dav_zone", type_=Text)


def _in(table: Any, list_id: int | None) -> Any:
    """The rows of `table` in the collection: the list's, or the caller's own in no list."""
    if list_id is None:
        return and_(table.c.list_id.is_(None), table.c.user_id == bindparam(OWNER))
    return table.c.list_id == _LIST


# The version of `vtodo.render`'s output, part of every object's tag (`_tag`): bump it whenever
# the same values render differently (a property added or written otherwise, another icalendar).
RENDER_FORMAT = 5
_READER_REMINDERS = next(c for c in TASK_VIEW if c.name == "reminders").element


def _tag(kept: Any, parent_uid: Any) -> Any:
    """An object's strong ETag, computed by the database from everything `vtodo.render` makes
    its body of (the task's id, version, `updated_at` and position, the UID its parent is
    served with, the reader's reminders in order, the kept object's bytes as served, the
    render's format): `render` is deterministic, so one set of values is one body, and two
    bodies that differ come from values that differ. Every read and every write by href
    compares the same expression, so an `If-Match` is tested in the write's own message
    (`vouch`). A task with no rule and no parent shows what that write needs to know without
    reading it first (`"<id>-<version>.<time zone>.<digest>"`, objects._vouched); any other
    is `"o<digest>"`."""
    body = case((kept.c.served, kept.c.body))
    body_digest = func.encode(func.sha256(func.convert_to(func.coalesce(body, ""), "UTF8")), "hex")
    made_of = func.jsonb_build_array(
        literal_column(str(RENDER_FORMAT)),
        _T.id,
        _T.version,
        extract("epoch", _T.updated_at),
        _T.position,
        parent_uid,
        _READER_REMINDERS,
        body_digest,
    )
    digest = func.encode(func.sha256(func.convert_to(cast(made_of, Text), "UTF8")), "hex")
    vouching = and_(_T.recurrence.is_(None), _T.parent_id.is_(None))
    shown = cast(_T.id, Text) + "-" + cast(_T.version, Text) + "." + _T.time_zone + "."
    inner = case((vouching, shown + func.left(digest, 32)), else_="o" + func.left(digest, 39))
    return literal('"', Text) + inner + literal('"', Text)


def _listing(list_id: int | None, *where: Any) -> Any:
    kept = _OBJECTS.alias("kept")
    parents = _OBJECTS.alias("parents")
    k = (
        select(kept.c.id, kept.c.uid, kept.c.name, kept.c.body, kept.c.served, kept.c.within)
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
            parent_uid.label("parent_uid"),
            _tag(k, parent_uid).label("tag"),
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
_ALL = {key: _listing(None if key else 0).order_by(_T.id) for key in (False, True)}


def _by_name(no_list: bool) -> Any:
    listing = _listing(None if no_list else 0)
    columns = listing.selected_columns
    return listing.where(or_(columns.kept_name == _NAME, _T.id == _TASK)).order_by(
        columns.kept_id.desc().nulls_last()
    )


class DavObjectService(TaskSending):
    """The caller's view of one collection's objects, and the kept object's write."""

    def lookup(self, sought: Sought, *, commit: bool = True) -> tuple[Any | None, Sequence[Any]]:
        """What a write by href needs, in one statement: the list as the caller sees it (as
        `listed`; None: one it cannot read; for no list, a stand-in with the owner's role) and
        the tasks that may be served under the name (`named`'s), that hold the UID or the
        parent's, or whose derived name is the parent's (`Sought`). In a write's first
        message it commits with the caller's entry (no lock held while the caller decides:
        the write then names the version it read); not `commit`, it opens the write's
        transaction (the entry's change lock held until its COMMIT)."""
        statement, values = _looking(sought)
        if commit and self._send.can_finish:
            rows = self._write(statement, last=True, **values)
        else:
            rows = self._read(statement, **values)
        return _seen(sought.list_id, rows)

    def looked(self, list_id: int | None) -> Looked | None:
        """What the message a `name_plain` or a `claim` refused read beside its write
        (`Sender.beside`): `lookup`'s answer, as `lookup` gives it, and with `every`, `all`'s
        rows (each row as the driver types it: `decoded`); None: nothing read (no refusal)."""
        read = self._send.beside_rows
        self._send.beside_rows = None
        if read is None:
            return None
        columns = (_LOOKUP_NO_LIST if list_id is None else _LOOKUP).selected_columns
        # Each read's order (the JSON array promises none): `lookup`'s, the newest kept
        # object first; `all`'s, by id.
        rows = sorted(read[0], key=lambda row: -(row["kept_id"] or 0))
        seen, found = _seen(list_id, [decoded(columns, row) for row in rows])
        every = None
        if len(read) > 1:
            columns = _ALL[list_id is None].selected_columns
            every = [decoded(columns, row) for row in sorted(read[1], key=lambda row: row["id"])]
        return Looked(seen, found, every)

    def claim(self, sought: Sought) -> None:
        """Ahead of a create in the collection: its space's change locks (the caller's and the
        list owner's, before any row lock), then, seeing every write committed under them,
        the request refused (`Taken`, `task_api_refuse`: no error in the server's log, nothing
        written) when an object of the collection holds the name or the UID. Refused, the
        message reads `lookup`'s answer too (`looked`): a create that lost its name to a
        concurrent one is that one's update, in the next message."""
        list_id = sought.list_id
        self.lock(_LOCK_LIST if list_id is not None else None, **_values(list_id))
        statement, values = _looking(sought)
        self._beside(statement, **values)
        claim = _CLAIM_NO_LIST if list_id is None else _CLAIM
        self._ahead(claim, dav_name=sought.name, dav_uid=sought.uid, **_values(list_id))

    def lock_task(self, task_id: int) -> None:
        """Ahead of a write of the task: the change locks of the caller's space and the
        task's, before any row lock (an owner and an editor writing one object cannot
        deadlock)."""
        self.lock(LOCK_TASKS, task_ids=[task_id])

    def lock(self, statement: Any, **values: Any) -> None:
        """`statement`'s change locks ahead of the next statement: instead of the entry's
        (the caller's) where the entry is still to be sent; with it, where the request's
        transaction holds the caller's already (a locking retry). None: the caller's alone
        (the entry's)."""
        if statement is None:
            return
        if self._send.entry is not None:
            self._lock_spaces(statement, first=False, **values)
        else:
            self._ahead(statement, **values)

    def begin_write(self) -> None:
        """The write after `lookup`: a further transaction of the request where the lookup
        committed the first (its entry uncounted)."""
        if self._can_begin_again():
            self._begin_again()

    def keep_ahead(self, task_id: int, version: int, uid: str, name: str, body: str) -> None:
        """Keep `body` as the task's object in the message of the task's write, ahead of it,
        only while the task is still `version` (the write names it too: a stale write keeps
        nothing) and the caller may write it."""
        self._ahead(
            _KEEP_AT_VERSION,
            dav_task=task_id,
            dav_version=version,
            dav_uid=uid,
            dav_name=name,
            dav_body=body,
        )

    def vouch(
        self,
        list_id: int | None,
        name: str,
        task_id: int,
        tag: str,
        uid: str | None = None,
        uid_task: int = 0,
    ) -> None:
        """Ahead of an update by href whose `If-Match` names one tag, after its change locks:
        the request refused (`TA412`, nothing written) unless the object served under `name`
        (a kept object's, else the task `task_id` a derived name names) is one the caller
        may write, with the tag `tag` now, holding `uid` if given (a kept object's, else the
        derived UID of `uid_task`: a PUT's; a DELETE names none). The reason: "tag" when
        that object is there, writable, with another tag (the `412` a lookup would answer
        too); "look" otherwise (the request is looked up, to answer as a lookup does: a
        missing object or list, a role, a UID)."""
        uids = {} if uid is None else {"dav_uid": uid, "dav_uid_task": uid_task}
        self._ahead(
            _VOUCH[list_id is None, uid is not None],
            dav_name=name,
            dav_task=task_id,
            dav_tag=tag,
            **uids,
            **_values(list_id),
        )

    def name_task(self, list_id: int | None, name: str, task_id: int) -> None:
        """Ahead of a write of the object served under `name` that names no version (a
        DELETE without If-Match): the collection's change locks (the caller's and the list
        owner's, whose space holds its tasks), then that object's task named to the write
        (`task_statements.NAMED_TASK`), or the request refused (`TA412`, reason "look",
        nothing written) where no object the caller may write is served there."""
        self.lock(_LOCK_LIST if list_id is not None else None, **_values(list_id))
        statement = _NAME_TASK[list_id is None]
        self._ahead(statement, dav_name=name, dav_task=task_id, **_values(list_id))

    def name_plain(
        self,
        list_id: int | None,
        name: str,
        task_id: int,
        uid: str,
        uid_task: int,
        zone: str,
        *,
        every: bool = False,
    ) -> None:
        """Ahead of an update by href that names no version and assumes its task has no rule,
        no parent and the time zone `zone` (a PUT with no precondition): the collection's
        change locks, as `name_task`'s, then the task served under `name` named to the write
        (`task_statements.NAMED_TASK`) where it is one the caller may write, holding `uid`
        (a kept object's, else the derived UID of `uid_task`), with no rule, no parent and
        that zone; else the request refused (`TA412`, nothing written): the reason "free"
        where nothing is served under `name` (and it is no derived name: the PUT may create
        it, its claim then says), "look" otherwise. Refused, the message reads `lookup`'s
        answer too, and with `every`, `all`'s (a completed copy's occurrence is found among
        them): `looked`."""
        self.lock(_LOCK_LIST if list_id is not None else None, **_values(list_id))
        # Where the guess is refused, the lookup that answers the PUT instead comes back in
        # this message (read under the change locks, beside the write: run only then).
        statement, values = _looking(Sought(list_id, name, task_id, uid))
        self._beside(statement, **values)
        if every:
            self._beside(_ALL[list_id is None], **_values(list_id))
        self._ahead(
            _NAME_PLAIN[list_id is None],
            dav_name=name,
            dav_task=task_id,
            dav_uid=uid,
            dav_uid_task=uid_task,
            dav_zone=zone,
            **_values(list_id),
        )

    def keep_named(self, uid: str, name: str, body: str) -> None:
        """Keep `body` as the object of the task a statement ahead named (`name_plain`), in
        the message of its write, ahead of it, where the caller may write it."""
        self._ahead(_KEEP_NAMED, dav_uid=uid, dav_name=name, dav_body=body)

    def can_finish(self) -> bool:
        """Whether the next write commits the request in its own message (no transaction of
        ours open, nothing held for after it)."""
        return self._send.can_finish

    def keep_with_create(self, uid: str, name: str, body: str) -> Then:
        """Keep `body` as the object of the task a create writes, in the create's statement
        (from its row, `w`)."""
        values = {"dav_uid": uid, "dav_name": name, "dav_body": body}
        return Then(Bound(_KEEP_FROM_WRITE, values), Bound(_KEEP_FROM_WRITE, values))

    def all(self, list_id: int | None) -> Sequence[Any]:
        """Every task of the collection the caller may read, with its kept object."""
        return self._read(_ALL[list_id is None], **_values(list_id)).all()

    def listed(
        self, list_id: int, *, position: bool = False, depth: int = 1
    ) -> tuple[Any | None, Sequence[Any]]:
        """A list's collection in one statement: the list as the caller sees it (`list_id`,
        `list_name`, `list_color`, `list_role`; None: one it cannot read) and, at Depth 1, its
        tasks with their objects; with `position`, the list's position for its sync
        token (`position`, read behind the feed's hold, sent ahead in the same message)."""
        if position:
            self._ahead(HOLD)
        rows = self._read(_LISTED[position, depth], dav_list=list_id).all()
        if not rows:
            return None, []
        return rows[0], [row for row in rows if depth and row.id is not None]

    def named(self, list_id: int | None, name: str, task_id: int) -> Sequence[Any]:
        """The tasks that may be served under `name`, in one statement: those whose kept
        object has it (newest first), and the task `task_id` (a derived name's; 0: none)."""
        return self._read(
            _BY_NAME[list_id is None], dav_name=name, dav_task=task_id, **_values(list_id)
        ).all()

    def keep(self, task_id: int, uid: str, name: str, body: str) -> None:
        """Keep `body` as the task's object (replacing its previous one), in the message that
        commits the task's write: only on a task the caller may write. No transaction open
        (nothing else written: a completed copy of an occurrence completed already, found
        among rows read in a refused message), it is the write, committing."""
        values = {"dav_task": task_id, "dav_uid": uid, "dav_name": name, "dav_body": body}
        if self._send.can_finish:
            self._write(_KEEP, last=True, **values)
        else:
            self._at_commit(_KEEP, **values)

    def give_up_ahead(self, task_id: int, version: int, *, within: bool = False) -> None:
        """Ahead of the write completing the occurrence `task_id` at `version` (the write names
        it too), under its change locks: its object no longer served where the task is still
        that version and the caller may write it, so that the name and the UID are free for
        the next occurrence the completion inserts (`hand_on`, in the same message). The
        completed one is served under its derived name, or, `within`, inside the series'
        object alone (the client sent its completion there)."""
        self._ahead(_UNSERVE_AT_VERSION[within], dav_task=task_id, dav_version=version)

    def hand_on(self, task_id: int, uid: str, name: str, body: str) -> Then:
        """`body` kept as the object of the next occurrence completing `task_id` inserts,
        after that insert (`TaskService.update`'s `after`): in the completion's statement,
        from the inserted row (`SUCCEEDED`), else with the COMMIT, from the stored one. The
        series' object, whose name and UID a statement ahead gave up (`give_up_ahead`, or
        a completed copy's object kept on the occurrence), goes on with its series in the
        completion's message."""
        values = {"dav_uid": uid, "dav_name": name, "dav_body": body, "dav_task": task_id}
        return Then(Bound(_KEEP_SUCCEEDED, values), Bound(_KEEP_SUCCEEDING, values))

    def changed(self, list_id: int | None, task_ids: list[int], names: list[str]) -> Sequence[Any]:
        """A sync's changed members in one statement: the tasks `task_ids` still in the
        collection, and those served under one of `names` (a name a gone object had may be
        another's now)."""
        statement = _CHANGED[list_id is None]
        values = {"dav_tasks": task_ids, "dav_names": names, **_values(list_id)}
        return self._read(statement, **values).all()


def _values(list_id: int | None) -> dict[str, Any]:
    return {} if list_id is None else {"dav_list": list_id}


_BY_NAME = {key: _by_name(key) for key in (False, True)}


_TASKS_CHANGED = bindparam("dav_tasks", type_=ARRAY(BigInteger))
_NAMES = bindparam("dav_names", type_=ARRAY(Text))


def _changed(no_list: bool) -> Any:
    listing = _listing(None if no_list else 0)
    columns = listing.selected_columns
    return listing.where(
        or_(_T.id == any_(_TASKS_CHANGED), columns.kept_name == any_(_NAMES))
    ).order_by(_T.id)


_CHANGED = {key: _changed(key) for key in (False, True)}

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


_KEEP = _insert_keep(_chosen)
_UNSERVE = {
    within: update(_OBJECTS)
    .where(_OBJECTS.c.task_id == _TASK, may(_OBJECTS, Action.TASK_WRITE))
    .values(served=False, within=within)
    for within in (False, True)
}
_AT_VERSION = exists(
    select(_T.id).where(_T.id == _TASK, _T.version == _VERSION, may(_TASKS, Action.TASK_WRITE))
)
_UNSERVE_AT_VERSION = {
    within: statement.where(_AT_VERSION) for within, statement in _UNSERVE.items()
}
_KEEP_AT_VERSION = _insert_keep(_chosen.where(_T.version == _VERSION))
_KEEP_NAMED = _insert_keep(
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
_KEEP_FROM_WRITE = _insert_keep(
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
_KEEP_SUCCEEDED = _insert_keep(
    select(_space(_NEXT), _NEXT.c.id, _NEXT.c.list_id, _UID, _NAME, _BODY).select_from(_NEXT)
)
_KEEP_SUCCEEDING = _insert_keep(
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


_CLAIM, _CLAIM_NO_LIST = _claim(False), _claim(True)


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
    then moves nothing (`objects._reparented`)."""
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


_NAME_TASK = {key: _name_task(key) for key in (False, True)}
_NAME_PLAIN = {key: _name_plain(key) for key in (False, True)}
_VOUCH = {(key, uid): _vouch(key, uid) for key in (False, True) for uid in (False, True)}
_LOCK_LIST = spaces_locked(
    select(_LISTS.c.user_id)
    .where(_LISTS.c.id == _LIST, may(_LISTS, Action.LIST_READ))
    .scalar_subquery()
)

_LOOKUP_NO_LIST = _lookup(True)
_found = _lookup(False).lateral("found")
_LOOKUP = (
    select(_the_list, *_found.c)
    .select_from(_the_list.outerjoin(_found, true()))
    .order_by(_found.c.kept_id.desc().nulls_last())
)


@dataclass(frozen=True)
class Sought:
    """What a write by href looks up (`lookup`): its collection (None: the caller's tasks in
    no list), the object's name, the task a derived name names (0: none), the UID the body
    holds, and the parent its `RELATED-TO` names: a UID, and the task a derived one names."""

    list_id: int | None
    name: str
    task_id: int
    uid: str
    parent_uid: str | None = None
    parent_task: int = 0


@dataclass(frozen=True)
class Looked:
    """What a refused `name_plain` or `claim` read beside its write
    (`DavObjectService.looked`): the list as `lookup` sees it, `lookup`'s tasks, and `all`'s
    where asked (else None)."""

    seen: Any | None
    rows: Sequence[Any]
    every: Sequence[Any] | None


def _looking(sought: Sought) -> tuple[Any, dict[str, Any]]:
    """`lookup`'s statement and values."""
    statement = _LOOKUP_NO_LIST if sought.list_id is None else _LOOKUP
    values = _values(sought.list_id) | {
        "dav_name": sought.name,
        "dav_task": sought.task_id,
        "dav_uid": sought.uid,
        "dav_parent_uid": sought.parent_uid,
        "dav_parent_task": sought.parent_task,
    }
    return statement, values


def _seen(list_id: int | None, rows: Sequence[Any]) -> tuple[Any | None, Sequence[Any]]:
    """`lookup`'s rows as it answers: the list as the caller sees it (None: one it cannot
    read) and the tasks."""
    if list_id is None:
        return _NO_LIST_SEEN, rows
    if not rows:
        return None, []
    return rows[0], [row for row in rows if row.id is not None]


# The tasks in no list are the caller's own: it owns that collection.
_NO_LIST_SEEN = SimpleNamespace(
    list_id_seen=None, list_name=None, list_color=None, list_role="owner"
)
# The list's position for its sync token (`sync-token`, `getctag`), beside the list.
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


_LISTED = {(p, d): _listed(p, d) for p in (False, True) for d in (0, 1)}
