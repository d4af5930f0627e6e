"""Lists (`task_lists`), the caller's own and those shared with it: `owned` where only the owner
acts, else `may` with the action. One statement a request (limits, name and If-Match checked in it);
a write that matched nothing reads why."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any, NoReturn, cast

from sqlalchemy import (
    BigInteger,
    Text,
    and_,
    any_,
    bindparam,
    case,
    delete,
    exists,
    false,
    func,
    literal,
    null,
    select,
    union_all,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY

from backend.db.scope import OWNER, Scoped, owned, space_locked, spaces_locked
from backend.db.sender import Rows
from backend.errors import Conflict, InvalidRequest, NotFound, PreconditionFailed
from backend.models import Task
from backend.models.names import name_key
from backend.models.sharing import ListMember
from backend.models.task_list import (
    LISTS_PER_USER,
    POSITION_GAP,
    ListCreate,
    ListRow,
    ListUpdate,
    TaskList,
)
from backend.services.history.trash import trashing_lists
from backend.services.statements.access import Action, denied, may, require, role_in
from backend.services.statements.named_rows import NAME_KEY, NamedRows
from backend.services.statements.rules import Rule, fires
from backend.services.statements.task_tree import place
from backend.services.statements.versions import VERSIONS, Expected, version_in

_TABLE = TaskList.__table__  # type: ignore[attr-defined]
_L = _TABLE.c
_TASKS = Task.__table__  # type: ignore[attr-defined]
_T = _TASKS.c
_M = ListMember.__table__.c  # type: ignore[attr-defined]
LIST_COLUMNS = tuple(_TABLE.columns)

_LIST_ID = bindparam("list_id", type_=BigInteger)
_ANCHOR_ID = bindparam("anchor_id", type_=BigInteger)

LIST_NOT_FOUND = "List not found"
LIST_CHANGED = "The list has changed since it was read (If-Match does not match its ETag)"


def _owned(statement: Any) -> Any:
    return owned(statement, _L.user_id)


def _counts() -> tuple[Any, Any]:
    """A list's task counts, read with it on the index led by (user_id, list_id)."""
    tasks = select(func.count()).where(
        _T.user_id == _L.user_id, _T.list_id == _L.id, may(_TASKS, Action.LIST_READ)
    )
    total = tasks.correlate(_TABLE).scalar_subquery()
    pending = tasks.where(_T.completed == false()).correlate(_TABLE).scalar_subquery()
    return total.label("task_count"), pending.label("open_task_count")


_ROLE = role_in(_TABLE).label("role")

# What every statement that hands a list to the API returns.
LIST_VIEW = (*LIST_COLUMNS, *_counts(), _ROLE)
_CREATED_VIEW = (
    *LIST_COLUMNS,
    literal(0).label("task_count"),
    literal(0).label("open_task_count"),
    literal("owner").label("role"),
)

_VISIBLE = may(_TABLE, Action.LIST_READ)
# The caller's own lists in their order, then those shared with it, by name.
ALL_LISTS = (
    select(*LIST_VIEW)
    .where(_VISIBLE)
    .order_by(_L.user_id != bindparam(OWNER), _L.position, _L.name_key, _L.id)
)
_GET = select(*LIST_VIEW).where(_L.id == _LIST_ID, _VISIBLE)
# The caller's role in a list it can see (no row: it cannot): why a write matched nothing.
LIST_ROLE = select(_ROLE).where(_L.id == _LIST_ID, _VISIBLE)
_NAMED = _owned(select(*LIST_VIEW).where(_L.name_key == NAME_KEY))
# The caller's list names, in their order: what the error for an unknown name lists.
_LIST_NAMES = _owned(select(_L.name)).order_by(_L.position)
_NAMES_SHOWN = 30

# Named, at most LISTS_PER_USER, names unique per owner ignoring case (statements/named_rows.py).
LIST_ROWS = NamedRows(TaskList, noun="list", plural="lists", limit=LISTS_PER_USER)
# A new list goes last.
_CREATE = LIST_ROWS.create(
    {
        "color": bindparam("color", type_=Text),
        "position": func.coalesce(func.max(_L.position), 0) + POSITION_GAP,
    },
    _CREATED_VIEW,
)
# Another list of the owner's has the name (a shared list's others are not ours to read).
_NAME_TAKEN = LIST_ROWS.taken
_REF_KEY = bindparam("ref_key", type_=Text)

_BY_ID = _L.id == _LIST_ID
# A name is one of the caller's own lists: names are unique per owner only (specs/mcp.md).
_BY_NAME = and_(_L.name_key == _REF_KEY, _L.user_id == bindparam(OWNER))
# Why a write matched nothing: the version (no row: no such list), the name taken, the role.
_REFUSAL_BY_ID = select(_L.version, _NAME_TAKEN, _ROLE).where(_BY_ID, _VISIBLE)
_REFUSAL_BY_NAME = select(_L.version, _NAME_TAKEN, _ROLE).where(_BY_NAME)
# Both change locks together, else renaming each other's lists deadlocks.
LOCK_LIST = spaces_locked(select(_L.user_id).where(_BY_ID, _VISIBLE).scalar_subquery())


class _Target:
    """The list a write is of: by id (`:list_id`), or by its name's key (`:ref_key`, an agent's)."""

    def __init__(self, list_id: int | None, name: str = "") -> None:
        self.name = name
        if name:
            self.condition: Any = _BY_NAME
            self.refusal: Any = _REFUSAL_BY_NAME
            self.binds: dict[str, Any] = {"ref_key": name_key(name)}
        else:
            self.condition, self.refusal = _BY_ID, _REFUSAL_BY_ID
            self.binds = {"list_id": list_id}


# The caller's lists of those ids that hold no task (an import's undo: the lists it created,
# once its tasks are in the trash); the ids deleted.
_DELETE_EMPTY = (
    _owned(delete(TaskList))
    .where(
        _L.id == any_(bindparam("list_ids", type_=ARRAY(BigInteger))),
        ~exists().where(_T.user_id == bindparam(OWNER), _T.list_id == _L.id),
    )
    .returning(_L.id)
)


class ListService(Scoped):
    def all(self) -> Sequence[ListRow]:
        """Every list of the caller's (at most LISTS_PER_USER), in their order."""
        return cast(Sequence[ListRow], self._read(ALL_LISTS).all())

    def get(self, list_id: int) -> ListRow:
        row = self._read(_GET, list_id=list_id).first()
        if row is None:
            raise NotFound(LIST_NOT_FOUND)
        return cast(ListRow, row)

    def named(self, name: str, *, field: str = "list") -> ListRow:
        """The caller's list by its name, case ignored (unknown: an error naming its lists)."""
        row = self._read(_NAMED, name_key=name_key(name)).first()
        if row is None:
            raise unknown_list(self._read, name, field=field)
        return cast(ListRow, row)

    def create(self, data: ListCreate) -> ListRow:
        key = name_key(data.name)
        # The request's last statement commits it (one round trip); a refusal reads why.
        rows = self._write(_CREATE, name=data.name, name_key=key, color=data.color, last=True)
        if not rows:
            raise LIST_ROWS.refused_create(self._read, data.name)
        return cast(ListRow, rows[0])

    def update(
        self, list_id: int | None, data: ListUpdate, expected: Expected = None, *, named: str = ""
    ) -> ListRow:
        """Rename or recolour the list `list_id` (or, for an agent, the one `named`)."""
        values = data.model_dump(exclude_unset=True)
        target = _Target(list_id, named)
        key = name_key(values["name"]) if "name" in values else None
        conditions: list[Any] = [target.condition, *version_in(_L.version, expected)]
        if key is not None:
            values["name_key"] = NAME_KEY  # bound below, as in the name check
            conditions.append(~_NAME_TAKEN)
        statement = (
            update(TaskList)
            .where(may(_TABLE, Action.LIST_RENAME), *conditions, space_locked(_TABLE))
            .values(**values, version=_L.version + 1, updated_at=func.now())
            .returning(*LIST_VIEW)
        )
        # Only the values the statement binds (an unbound `name_key` would be one more SET).
        binds: dict[str, Any] = dict(target.binds)
        if key is not None:
            binds["name_key"] = key
        if not target.name:  # by name: the caller's own list, its own lock at entry
            self._lock_spaces(LOCK_LIST, **target.binds)
        rows = self._write(statement, **binds, last=True)
        row = rows[0] if rows else None
        if row is None:
            self._refuse_write(target, key, expected, values.get("name"), Action.LIST_RENAME)
        return cast(ListRow, row)

    def _refuse_write(
        self, target: _Target, key: str | None, expected: Expected, name: str | None, action: Action
    ) -> NoReturn:
        """A write matched no list: say why (the failure path's own round trip)."""
        found = self._read(target.refusal, **target.binds, name_key=key or "").first()
        version, taken, role = (None, False, None) if found is None else tuple(found)
        if version is None:
            if target.name:
                raise unknown_list(self._read, target.name, field="list")
            raise NotFound(LIST_NOT_FOUND)
        require(role, action, NotFound(LIST_NOT_FOUND))
        if expected is not None and version not in expected:
            raise PreconditionFailed(LIST_CHANGED)
        if taken:
            raise name_taken(name or "")
        raise Conflict("The list changed while it was being written; retry")  # pragma: no cover

    def delete_empty(self, list_ids: Sequence[int], *, last: bool = False) -> set[int]:
        """Delete those of the caller's lists `list_ids` that hold no task (an import's undo);
        the ids deleted (a list holding a task, or gone: not)."""
        if not list_ids:
            return set()
        rows = self._write(_DELETE_EMPTY, list_ids=list(list_ids), last=last)
        return {int(row.id) for row in rows}

    @fires(Rule.LIST_CASCADE, Rule.SUBTASK_COUNTS)
    def delete(self, list_id: int | None, expected: Expected = None, *, named: str = "") -> ListRow:
        """Delete the list and its tasks into the trash; the list as it was, with its counts."""
        target = _Target(list_id, named)
        conditions = (target.condition, *version_in(_L.version, expected))
        binds = dict(target.binds)
        statement = _owned(delete(TaskList)).where(*conditions).returning(*LIST_VIEW)
        # Its tasks go to the trash in the same statement (backend/services/history/trash.py).
        statement = statement.add_cte(trashing_lists(_owned(select(_L.id)).where(*conditions)))
        rows = self._write(statement, **binds, last=True)
        row = rows[0] if rows else None
        if row is None:
            self._refuse_write(target, None, expected, None, Action.LIST_DELETE)
        return cast(ListRow, row)

    def move(
        self, list_id: int, after_id: int | None, before_id: int | None, expected: Expected = None
    ) -> ListRow:
        """Put a list after `after_id`, before `before_id` or last (respacing only if adjacent)."""
        anchor_id = after_id if after_id is not None else before_id
        field = "body.after_id" if after_id is not None else "body.before_id"
        if anchor_id == list_id:
            # A rule of the body's values: permission on the list comes first.
            role = self._read(LIST_ROLE, list_id=list_id).scalar()
            require(role, Action.LIST_ORDER, NotFound(LIST_NOT_FOUND))
            raise InvalidRequest.at(field, "A list cannot be placed next to itself")
        statement, refusal = _move_statement(
            "last" if anchor_id is None else ("after" if after_id is not None else "before"),
            checked=expected is not None,
        )
        binds: dict[str, Any] = {"list_id": list_id, "anchor_id": anchor_id}
        if expected is not None:
            binds["versions"] = sorted(expected)
        rows = self._write(statement, **binds, last=True)
        moved = next((row for row in rows if row.id == list_id), None)
        if moved is not None:
            return cast(ListRow, moved)
        reason = self._read(refusal, **binds).scalar()
        if reason == "list":
            role = self._read(LIST_ROLE, list_id=list_id).scalar()
            # (No refusal: the list became the caller's own after the write, a race.)
            retry = Conflict("The list changed while it was being moved; retry")
            raise denied(role, Action.LIST_ORDER, NotFound(LIST_NOT_FOUND)) or retry
        if reason == "stale":
            raise PreconditionFailed(LIST_CHANGED)
        raise NotFound.at(field, LIST_NOT_FOUND)


@lru_cache(maxsize=8)
def _move_statement(anchor: str, *, checked: bool) -> tuple[Any, Any]:
    moving = _owned(select(_L.id, _L.version, _L.position).where(_L.id == _LIST_ID)).cte("moving")
    rules: list[tuple[Any, str]] = [(~exists(select(moving.c.id)), "list")]
    if checked:
        version = select(moving.c.version).scalar_subquery()
        rules.append((~(version == any_(VERSIONS)), "stale"))
    siblings = _owned(select(_L.id, _L.position).where(_L.id != _LIST_ID)).cte("siblings")
    position = siblings.c.position
    if anchor == "last":
        after: Any = select(func.max(position)).scalar_subquery()
        before: Any = null()
    else:
        pivot_row = _owned(select(_L.position).where(_L.id == _ANCHOR_ID)).cte("anchor")
        rules.append((~exists(select(pivot_row.c.position)), "anchor"))
        pivot = select(pivot_row.c.position).scalar_subquery()
        if anchor == "after":
            after = pivot
            before = select(func.min(position)).where(position > pivot).scalar_subquery()
        else:
            after = select(func.max(position)).where(position < pivot).scalar_subquery()
            before = pivot
    refusal = case(*((rule, literal(name)) for rule, name in rules), else_=null())
    new_position, respaced = place(siblings, after, before, keep=false(), kept=null())
    plan = union_all(
        select(_LIST_ID.label("id"), new_position.label("position")),
        select(respaced.c.id, respaced.c.position),
    ).cte("plan")
    statement = (
        _owned(update(TaskList))
        .where(_L.id == plan.c.id, refusal.is_(None))
        .values(position=plan.c.position, version=_L.version + 1, updated_at=func.now())
        .returning(*LIST_VIEW)
    )
    return statement, select(refusal)


def unknown_list(run: Callable[..., Rows], name: str, *, field: str) -> NotFound:
    """The error for an unknown list name: it names the caller's lists (up to 30)."""
    names: Sequence[str] = list(run(_LIST_NAMES).scalars())
    shown = ", ".join(f'"{n}"' for n in names[:_NAMES_SHOWN])
    if len(names) > _NAMES_SHOWN:
        shown += f" and {len(names) - _NAMES_SHOWN} more (list_lists)"
    message = f'No list named "{name}". ' + (
        f"Your lists: {shown}." if names else "You have no lists (create_list makes one)."
    )
    return NotFound.at(field, message)


name_taken = LIST_ROWS.name_taken
