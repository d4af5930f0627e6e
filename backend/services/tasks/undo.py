"""Undo one activity entry (specs/api-contract.md, "Undo"): fields written back only where each
still holds the value the entry left, so an undo never erases a newer change. Two messages: the
entry read (`_WHY`), then under its space's change lock its kind's one statement; a statement that
wrote nothing is explained from the entry read again (the failure path pays its messages).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from types import SimpleNamespace
from typing import Any, NoReturn, Protocol, TypeVar, cast

from sqlalchemy import (
    BigInteger,
    Text,
    and_,
    any_,
    bindparam,
    case,
    exists,
    false,
    func,
    literal_column,
    null,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.sql.elements import ColumnElement

from backend.db.scope import OWNER, Scoped, spaces_locked
from backend.db.sender import Sender
from backend.errors import Conflict, InvalidRequest, NotFound, PreconditionFailed
from backend.models import Task, TaskEvent, TaskRow
from backend.models.task_event import ChangeType
from backend.models.task_fields import FIELDS
from backend.services.history.trash import TrashService, restoring, tagged
from backend.services.statements.access import Action, may, require, role_in, role_may
from backend.services.statements.assignees import assignable
from backend.services.statements.rules import Rule, fires
from backend.services.statements.task_tree import (
    LIST_ID,
    PARENT_ID,
    TASK_ID,
    Anchor,
    Named,
    Placement,
    Sent,
    move_statement,
)
from backend.services.statements.versions import VERSIONS
from backend.services.tasks.service import TaskService
from backend.services.tasks.task_schedule import SCHEDULE_FIELDS
from backend.services.tasks.task_statements import PLANNED, TASK_VIEW, owned_task

S = TypeVar("S")


class Services(Protocol):
    """`UnitOfWork.service`: a service bound to the request, built once."""

    def __call__(self, kind: type[S], /) -> S: ...


_TASKS = Task.__table__  # type: ignore[attr-defined]
_T = _TASKS.c
_EVENTS = TaskEvent.__table__  # type: ignore[attr-defined]
_E = _EVENTS.c

# Every recorded field but `NOT_RESTORED`: a new field is undone too (test_undo_fields.py).
UNDOABLE = (ChangeType.updated.value, ChangeType.completed.value, ChangeType.reopened.value)
_UNRECORDED = frozenset({"updated_at"})
# Not restored: identity and history, the space (a transfer moves it), the place (`_MOVE_BACK`), the
# owner's reminders.
NOT_RESTORED = frozenset(
    {"id", "created_at", "previous_task_id", "user_id", "list_id", "parent_id", "reminders"}
)
RESTORED = tuple(
    f.name for f in FIELDS if not f.derived and f.name not in _UNRECORDED | NOT_RESTORED
)
# The owner's own reminders: undone by the owner only, in a statement of their own: a member's
# write of the column is their own reminders' (`tasks_keep_member_reminders`), never the owner's.
REMINDED = (*RESTORED, "reminders")
# An entry that changed the schedule is undone only while all of it is as the entry left it.
_SCHEDULE = tuple(sorted((SCHEDULE_FIELDS | set(PLANNED)) - {"reminders"}))
_SET_AGAINST_SCHEDULE = (*_SCHEDULE, "reminders")

ENTRY_NOT_FOUND = "Activity entry not found"
# Deleted, or moved out of the caller's reach: one answer for both tells them not apart.
TASK_GONE = "The task no longer exists or is out of your reach"
NOTHING_OF_YOURS = "No change of yours to undo"
NOT_YOURS = "Only its author, or an admin of the list it happened in, may undo this change"

# A move between lists or parents (`position` changes with it): undone by moving it back.
_MOVED = ("list_id", "parent_id", "position")

_NAMED = bindparam("event_id", type_=BigInteger)
LIST_DELETED = "list.deleted"
# The entry named, else the caller's newest undoable change; a list's deletion counts (refused,
# saying where its tasks went), its tasks' deletions after it do not: undoing one of them would
# bring back one task of the deleted list.
_LAST_KINDS = (*UNDOABLE, ChangeType.deleted.value, LIST_DELETED)
_MINE = _EVENTS.alias("mine_last")
_LIST_GONE = _EVENTS.alias("list_gone")
_WITH_ITS_LIST = exists(
    select(_LIST_GONE.c.id).where(
        _LIST_GONE.c.user_id == _MINE.c.user_id,
        _LIST_GONE.c.list_id == _MINE.c.list_id,
        _LIST_GONE.c.type == literal_column(f"'{LIST_DELETED}'"),
        _LIST_GONE.c.id < _MINE.c.id,
        may(_LIST_GONE, Action.LIST_READ),
    )
)
_ENTRY = func.coalesce(
    _NAMED,
    select(func.max(_MINE.c.id))
    .where(
        _MINE.c.actor_id == bindparam(OWNER),
        _MINE.c.type.in_([literal_column(f"'{kind}'") for kind in _LAST_KINDS]),
        or_(
            _MINE.c.type != literal_column(f"'{ChangeType.deleted.value}'"),
            _MINE.c.list_id.is_(None),
            ~_WITH_ITS_LIST,
        ),
        may(_MINE, Action.LIST_READ),
    )
    .scalar_subquery(),
)
# The caller's and the entry's space's change locks (specs/events.md): ahead of the write, or of the
# first message where an Idempotency-Key's check holds it (`_LOCK_FIRST`).
_LOCK = spaces_locked(
    select(_E.user_id).where(_E.id == _NAMED, may(_EVENTS, Action.LIST_READ)).scalar_subquery()
)
_LOCK_FIRST = spaces_locked(
    select(_E.user_id).where(_E.id == _ENTRY, may(_EVENTS, Action.LIST_READ)).scalar_subquery()
)
# The caller made the change, or may undo others' where it happened (admin and above).
_PERMITTED = or_(_E.actor_id == bindparam(OWNER), role_may(role_in(_EVENTS), Action.UNDO_OTHERS))
# The entry named is one the caller may see and undo (the deletion's and move's statements).
_MAY_UNDO = exists(select(_E.id).where(_E.id == _NAMED, may(_EVENTS, Action.LIST_READ), _PERMITTED))


def _record(json: Any) -> Any:
    """A `tasks` row typed from a stored task's JSON (its columns; others NULL)."""
    return func.jsonb_populate_record(literal_column("NULL::tasks"), json)


# The entry with the task's rows after it (`now`) and before it (`was`: each old value over it).
_OLD_VALUES = (
    select(func.jsonb_object_agg(literal_column("c.key"), literal_column("c.value -> 0")))
    .select_from(func.jsonb_each(_E.changes).alias("c"))
    .scalar_subquery()
)
_ENTRY_ROW = (
    select(
        _E.id,
        _E.user_id,
        _E.task_id,
        _E.type,
        _E.changes,
        _PERMITTED.label("permitted"),
        _record(_E.task).label("now"),
        _record(_E.task.op("||")(func.coalesce(_OLD_VALUES, literal_column("'{}'::jsonb")))).label(
            "was"
        ),
    )
    .where(_E.id == _NAMED, may(_EVENTS, Action.LIST_READ))
    .cte("undone")
)


def _field(row: str, name: str) -> Any:
    """A field of the entry's typed row `row` (`now`, `was`)."""
    return literal_column(f"(undone.{row}).{name}", type_=_T[name].type)


def _changed(name: str) -> ColumnElement[bool]:
    return _ENTRY_ROW.c.changes.has_key(name)  # type: ignore[no-any-return]


def _undoable(names: tuple[str, ...]) -> ColumnElement[bool]:
    """The entry is of an undoable kind and changed only fields `names` restores."""
    keys: Any = select(literal_column("k")).select_from(
        func.jsonb_object_keys(_ENTRY_ROW.c.changes).alias("k")
    )
    restored: list[Any] = [literal_column(f"'{name}'") for name in names]
    return and_(
        _ENTRY_ROW.c.type.in_([literal_column(f"'{kind}'") for kind in UNDOABLE]),
        _ENTRY_ROW.c.changes.is_not(None),
        ~keys.where(literal_column("k").not_in(restored)).exists(),
    )


def _unchanged_since(names: tuple[str, ...]) -> ColumnElement[bool]:
    """Every field of `names` the entry changed (and a changed schedule whole) is as it left it."""
    held = [
        or_(~_changed(name), _T[name].is_not_distinct_from(_field("now", name))) for name in names
    ]
    schedule = or_(*(_changed(name) for name in _SET_AGAINST_SCHEDULE if name in names))
    whole = and_(*(_T[name].is_not_distinct_from(_field("now", name)) for name in _SCHEDULE))
    return and_(*held, or_(~schedule, whole))


_SIBLING = _TASKS.alias("at_old_place")
_S = _SIBLING.c


def _allowed_now() -> ColumnElement[bool]:
    """The task's rules on the values written back: assignees allowed in its list, no recurrence
    on a subtask, no recurring occurrence completed again, a reorder's old place still free."""
    back = _field("was", "completed")
    taken = exists(
        select(_S.id).where(
            _S.user_id == _T.user_id,
            _S.list_id.is_not_distinct_from(_T.list_id),
            _S.parent_id.is_not_distinct_from(_T.parent_id),
            _S.position == _field("was", "position"),
            _S.id != _T.id,
            may(_SIBLING, Action.LIST_READ),
        )
    )
    return and_(
        or_(~_changed("assignees"), assignable(_field("was", "assignees"), _T.user_id, _T.list_id)),
        or_(_T.parent_id.is_(None), _field("was", "recurrence").is_(None), ~_changed("recurrence")),
        or_(~_changed("completed"), back.is_(false()), _T.recurrence.is_(None)),
        or_(~_changed("position"), ~taken),
    )


# Not `tags`: a value named after a column the UPDATE does not set would be one more SET.
_TAGS = bindparam("etags", type_=ARRAY(Text))


def _undo_statement(names: tuple[str, ...], if_match: bool) -> Any:
    """The UPDATE writing back `names` where the entry changed them; `if_match`: at `etags` only."""
    values: dict[str, Any] = {
        name: literal_column(
            f"CASE WHEN undone.changes ? '{name}' THEN (undone.was).{name} ELSE tasks.{name} END",
            type_=_T[name].type,
        )
        for name in names
    }
    conditions: list[ColumnElement[bool]] = []
    if if_match:
        conditions.append(func.concat(_T.id, literal_column("'-'"), _T.version) == any_(_TAGS))
    if "reminders" in names:  # only an entry that changed them, undone by the task's owner
        conditions += [_changed("reminders"), _T.user_id == bindparam(OWNER)]
    statement = owned_task(update(Task), Action.TASK_WRITE).where(
        _T.id == _ENTRY_ROW.c.task_id,
        _T.user_id == _ENTRY_ROW.c.user_id,
        _ENTRY_ROW.c.permitted.is_(true()),
        _undoable(names),
        _unchanged_since(names),
        _allowed_now(),
        *conditions,
    )
    return statement.values(**values, updated_at=func.now(), version=_T.version + 1).returning(
        *TASK_VIEW
    )


# By the fields it may write back and whether If-Match was sent.
_WRITE_BACK = {
    (names, if_match): _undo_statement(names, if_match)
    for names in (RESTORED, REMINDED)
    for if_match in (False, True)
}

# The first message, and why an undo wrote nothing: the entry and the task now with its role.
_NOW = _TASKS.alias("now_task")
_N = _NOW.c
_CURRENT = (
    select(
        func.to_jsonb(literal_column("now_task")).op("||")(
            func.jsonb_build_object(literal_column("'role'"), role_in(_NOW))
        )
    )
    .where(_N.id == _E.task_id, _N.user_id == _E.user_id, may(_NOW, Action.LIST_READ))
    .scalar_subquery()
)
_WHY = select(
    _E.id,
    _E.type,
    _E.task_id,
    _E.occurred_at.label("at"),
    _PERMITTED.label("permitted"),
    role_in(_EVENTS).label("entry_role"),
    _E.changes,
    _E.task.label("left"),
    _CURRENT.label("current"),
).where(_E.id == _ENTRY, may(_EVENTS, Action.LIST_READ))

# A deletion's task restored from the trash (`trash.restoring`) where the caller may undo it.
_TRASH_ID = bindparam("trash_id", type_=BigInteger)
_RESTORE_BACK = {
    if_match: restoring(_TRASH_ID, _MAY_UNDO, *([tagged(_TAGS)] if if_match else []))
    for if_match in (False, True)
}

# A move undone by the move route's statement: to its old list and parent, at its old position where
# free, else last, only where the caller may undo it.
_UNDONE_TASK = select(case((_MAY_UNDO, TASK_ID), else_=null()).label("id")).cte("undone_task")
_BACK = Named(
    task_id=select(_UNDONE_TASK.c.id).scalar_subquery(),  # read once, named in many places
    list_id=LIST_ID,
    parent_id=PARENT_ID,
    versions=VERSIONS,
    position=bindparam("old_position", type_=_T.position.type),
)
_MOVE_BACK, _ = move_statement(
    (Sent.given, Sent.given, Anchor.last, False),
    checked=True,
    values={},
    returning=TASK_VIEW,
    at=_BACK,
)


class UndoService(Scoped):
    """Undo an activity entry (`POST /api/activity/{id}/undo`, the MCP `undo` tool); the task and
    trash services it hands a refused undo to come from its unit of work (`services`)."""

    def __init__(self, send: Sender, user_id: str, services: Services) -> None:
        super().__init__(send, user_id)
        self._services = services

    @fires(
        Rule.COMPLETE_SUBTASKS,
        Rule.REOPEN_ANCESTORS,
        Rule.SUBTASK_COUNTS,
        Rule.REMINDERS,
        Rule.CHILDREN_FOLLOW,
        Rule.PRIVATE_REMINDERS,
        Rule.UNASSIGN_ON_MOVE,
    )
    def undo(self, event_id: int | None, tags: frozenset[tuple[int, int]] | None = None) -> TaskRow:
        """Write back what entry `event_id` (None: the newest) changed; `tags`: If-Match's."""
        if not self._send.can_finish:  # held open: the locks first, for both messages
            self._lock_spaces(_LOCK_FIRST, event_id=event_id)
        rows = self._read(_WHY, event_id=event_id, last=True)  # committing the entry
        if not rows:
            raise NotFound(ENTRY_NOT_FOUND if event_id is not None else NOTHING_OF_YOURS)
        found = SimpleNamespace(**rows[0]._mapping)
        if found.type == ChangeType.deleted.value:
            return self._restore(found, tags)
        if found.type == ChangeType.updated.value and _a_move(found.changes):
            return self._move_back(found, tags)
        return self._write_back(found, tags)

    def _again(self, found: Any) -> None:
        """The second message: a further transaction, under the spaces' change locks."""
        self._next_transaction()
        self._lock_spaces(_LOCK, first=False, event_id=found.id)

    def _why(self, found: Any) -> Any:
        """Entry `found` read again (`_WHY`), after a statement that wrote nothing."""
        row = self._read(_WHY, event_id=found.id).first()
        if row is None:
            raise NotFound(ENTRY_NOT_FOUND)
        return SimpleNamespace(**row._mapping)

    def _write_back(self, found: Any, tags: frozenset[tuple[int, int]] | None) -> TaskRow:
        """An update's, completion's or reopening's fields written back (`_WRITE_BACK`)."""
        self._undoable(found, tags)
        names = REMINDED if "reminders" in found.changes else RESTORED
        values = _etags(found.id, tags)
        self._again(found)
        rows = self._write(_WRITE_BACK[(names, tags is not None)], **values, last=True)
        if rows:
            return cast(TaskRow, rows[0])
        self._refusal(self._why(found), tags)

    def _restore(self, found: Any, tags: frozenset[tuple[int, int]] | None) -> TaskRow:
        """A deletion's task restored from the trash (`_RESTORE_BACK`), else why."""
        if not found.permitted:  # another's deletion: admin+, as any other undo
            missing = NotFound(ENTRY_NOT_FOUND)
            require(found.entry_role, Action.UNDO_OTHERS, missing, forbidden=NOT_YOURS)
        if found.current is not None:  # the task is back: restored since
            raise Conflict(RESTORED_ALREADY)
        values = _etags(found.id, tags) | {"trash_id": found.task_id}
        self._again(found)
        rows = self._write(_RESTORE_BACK[tags is not None], **values, last=True)
        if rows:
            return cast(TaskRow, rows[0])
        return self._undo_delete(found.task_id, found.at, tags)

    def _move_back(self, found: Any, tags: frozenset[tuple[int, int]] | None) -> TaskRow:
        """A move moved back (`_MOVE_BACK`) at the version read; else why (`_moved`)."""
        back = self._placed_back(found, tags)
        values = {
            "event_id": found.id,
            "task_id": int(back.current["id"]),
            # Under its old parent, in that parent's list as it is now.
            "list_id": back.list_id if back.parent_id is None else None,
            "parent_id": back.parent_id,
            "old_position": back.position,
            "versions": [int(back.current["version"])],
        }
        self._again(found)
        rows = self._write(_MOVE_BACK, **values, last=True)
        moved = next((row for row in rows if row.id == values["task_id"]), None)
        if moved is not None:
            return cast(TaskRow, moved)
        return self._moved(self._why(found), tags)

    def _placed_back(self, found: Any, tags: frozenset[tuple[int, int]] | None) -> Any:
        """Where move entry `found` puts its task back, once the caller may undo it."""
        current = self._admitted(found, tags)
        changed = set(found.changes)
        if "list_id" in changed and "parent_id" not in changed and found.left.get("parent_id"):
            raise InvalidRequest(_MOVED_WITH_ITS_PARENT)
        # Where the move put it, as a whole: a later move of any field is a newer change.
        newer = _newer(dict.fromkeys(_MOVED), found.left, current)
        if newer:
            raise _conflict(newer, found.left, current)
        was = {name: found.changes[name][0] for name in _MOVED if name in found.changes}
        return SimpleNamespace(
            current=current, **{name: was.get(name, current[name]) for name in _MOVED}
        )

    def _moved(self, found: Any, tags: frozenset[tuple[int, int]] | None) -> TaskRow:
        """A move `_MOVE_BACK` did not move back: why, as the move route says it (the move
        itself, at the version read here, names the rule; should it succeed, the undo is done)."""
        back = self._placed_back(found, tags)
        # As `_MOVE_BACK` places it: under its old parent, in that parent's list as it is now.
        if back.parent_id is not None:
            placement = Placement(parent=Sent.id, parent_id=back.parent_id)
        else:
            choice = Sent.null if back.list_id is None else Sent.id
            placement = Placement(list=choice, parent=Sent.null, list_id=back.list_id)
        self._next_transaction()  # the undo's own statement committed (nothing)
        current, tasks = back.current, self._services(TaskService)
        return tasks.move(int(current["id"]), placement, frozenset({int(current["version"])}))

    def _undo_delete(
        self, task_id: int, at: datetime, tags: frozenset[tuple[int, int]] | None
    ) -> TaskRow:
        """A deletion the undo did not restore: why (`TrashService.restore`), or a subtask restored
        with its parent; each step a further transaction; in no trash: 409."""
        trash = self._services(TrashService)
        expected = None if tags is None else frozenset(v for t, v in tags if t == task_id)
        try:
            self._next_transaction()
            return trash.restore(task_id, expected)
        except NotFound:
            pass
        self._next_transaction()
        root = trash.holding(task_id, at)
        if root is None:
            raise Conflict(DELETED_FOR_GOOD)
        if tags is not None:  # it names the subtask's version, not the parent's that comes back
            raise Conflict(WITH_ITS_PARENT)
        self._next_transaction()
        try:
            trash.restore(root)
        except NotFound:
            raise Conflict(DELETED_FOR_GOOD) from None
        return self._services(TaskService).get(task_id)

    def _admitted(self, found: Any, tags: frozenset[tuple[int, int]] | None) -> dict[str, Any]:
        """The task as it is now, once the caller may undo entry `found` on it; else the error."""
        current: dict[str, Any] | None = found.current
        if current is None:
            raise Conflict(TASK_GONE)
        current = dict(current)
        missing = NotFound(ENTRY_NOT_FOUND)
        require(current.pop("role"), Action.TASK_WRITE, missing)
        if not found.permitted:
            require(found.entry_role, Action.UNDO_OTHERS, missing, forbidden=NOT_YOURS)
        if tags is not None and (int(current["id"]), int(current["version"])) not in tags:
            raise PreconditionFailed()
        return current

    def _undoable(self, found: Any, tags: frozenset[tuple[int, int]] | None) -> dict[str, Any]:
        """The checks of entry `found` needing no write (kind, right, If-Match); the task now."""
        if found.type not in UNDOABLE:
            raise InvalidRequest(_NOT_UNDONE.get(found.type, _NOT_UNDONE["other"]))
        current = self._admitted(found, tags)
        changes: Mapping[str, Any] = found.changes or {}
        kept = sorted(set(changes) - set(REMINDED))
        if kept:
            raise InvalidRequest(
                f"This change cannot be undone: it changed {', '.join(kept)} with other "
                "fields (a move is undone alone)"
            )
        if "reminders" in changes and current["user_id"] != self.user_id:
            raise InvalidRequest(_OWNERS_REMINDERS)
        if not changes:
            raise InvalidRequest("This change cannot be undone: it changed no field")
        return current

    def _refusal(self, found: Any, tags: frozenset[tuple[int, int]] | None) -> NoReturn:
        """The error for an entry `found` (`_WHY`'s row) whose undo wrote nothing."""
        current = self._undoable(found, tags)
        changes: Mapping[str, Any] = found.changes
        newer = _newer(changes, found.left, current)
        if newer:
            raise _conflict(newer, found.left, current)
        if set(changes) == {"position"}:  # a reorder: its old place is what refused it
            raise Conflict(
                _PLACE_TAKEN,
                details=[
                    {
                        "field": "position",
                        "message": "another task holds this place since",
                        "type": Conflict.detail_type,
                        "current": current.get("position"),
                        "entry": changes["position"][0],
                    }
                ],
            )
        raise Conflict(_REFUSED_BY_RULES)


def _conflict(newer: list[str], left: Mapping[str, Any], current: Mapping[str, Any]) -> Conflict:
    return Conflict(
        "A later change touched the same fields; nothing was undone",
        details=[
            {
                "field": name,
                "message": "changed since this entry",
                "type": Conflict.detail_type,
                "current": current.get(name),
                "entry": left.get(name),
            }
            for name in newer
        ],
    )


def _etags(event_id: int, tags: frozenset[tuple[int, int]] | None) -> dict[str, Any]:
    """The entry's id, with If-Match's `<id>-<version>` tags when sent."""
    if tags is None:
        return {"event_id": event_id}
    return {"event_id": event_id, "etags": sorted(f"{t}-{v}" for t, v in tags)}


def _a_move(changes: Mapping[str, Any] | None) -> bool:
    keys = set(changes or {})
    return bool(keys & {"list_id", "parent_id"}) and keys <= set(_MOVED)


_MOVED_WITH_ITS_PARENT = (
    "This task moved with its parent: undo the parent's move (its own activity entry) instead"
)
_OWNERS_REMINDERS = (
    "This change cannot be undone by you: it changed the reminders of the task's owner, which "
    "are the owner's own (set your own with PATCH)"
)
_PLACE_TAKEN = (
    "Another task took this task's old place among its siblings since; nothing was undone "
    "(place it with POST /api/tasks/{task_id}/move)"
)
_REFUSED_BY_RULES = (
    "The task's rules refuse the old values now: an assignee no longer in its list, a "
    "recurrence on what is now a subtask, or a recurring occurrence completed again (complete "
    "it with PATCH /api/tasks/{task_id}/complete, which creates its next occurrence)"
)
NOT_UNDONE = (
    "Only a task's changes (update, completion, reopening, deletion) can be undone; lists, "
    "members, invitations and comments are changed again with their own routes"
)
_NOT_UNDONE: dict[str, str] = {
    ChangeType.created.value: "A creation is not undone: delete the task instead",
    LIST_DELETED: "A list's deletion is not undone: its tasks are in the trash, each "
    "restorable to the top level (GET /api/trash, POST /api/trash/{trash_id}/restore; MCP "
    "list_trash, restore_task)",
    "other": NOT_UNDONE,
}


def _newer(
    changes: Mapping[str, Any], left: Mapping[str, Any], current: Mapping[str, Any]
) -> list[str]:
    """The fields the entry changed (a changed schedule whole) no longer as it left them."""
    names = set(changes)
    if names & set(_SET_AGAINST_SCHEDULE):
        names |= set(_SCHEDULE)
    return sorted(name for name in names if current.get(name) != left.get(name))


WITH_ITS_PARENT = (
    "This task was deleted with its parent: undo it without If-Match to restore them together"
)
RESTORED_ALREADY = "This deletion is undone already: the task is back"
DELETED_FOR_GOOD = "This task was deleted for good and cannot be restored (it is in no trash)"
