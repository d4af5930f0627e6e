"""Lists, always scoped to one user (`task_lists`, migration 0015).

Every statement is built with `owned` and run with `Scoped._run`, as in `TaskService`: another
user's list is a list that does not exist. Each request is one statement (a write's second
round trip is its COMMIT): a list is read with its task counts, created with its limit and
its name's uniqueness checked in the insert, changed with If-Match and the name checked in
the update. A write that matched nothing reads why on its own (the failure path alone pays
that round trip). Deleting a list deletes its tasks (the foreign key's cascade), each one a
`deleted` change, and the list's `list.deleted` event after them (migration 0017).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any, NoReturn, cast

from sqlalchemy import (
    BigInteger,
    Text,
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
from sqlalchemy.dialects.postgresql import insert as pg_insert

from backend.errors import Conflict, InvalidRequest, LimitReached, NotFound, PreconditionFailed
from backend.models import Task
from backend.models.task_list import (
    LISTS_PER_USER,
    POSITION_GAP,
    ListCreate,
    ListRow,
    ListUpdate,
    TaskList,
    name_key,
)
from backend.services.scope import OWNER, Scoped, owned
from backend.services.task_tree import place

# The versions an If-Match accepts; None: no condition.
Expected = frozenset[int] | None

_TABLE = TaskList.__table__  # type: ignore[attr-defined]
_L = _TABLE.c
_T = Task.__table__.c  # type: ignore[attr-defined]
_OTHER = _TABLE.alias("other")
LIST_COLUMNS = tuple(_TABLE.columns)

_LIST_ID = bindparam("list_id", type_=BigInteger)
_ANCHOR_ID = bindparam("anchor_id", type_=BigInteger)
_NAME_KEY = bindparam("name_key", type_=Text)
_VERSIONS = bindparam("versions", type_=ARRAY(BigInteger))

LIST_NOT_FOUND = "List not found"
LIST_CHANGED = "The list has changed since it was read (If-Match does not match its ETag)"


def _owned(statement: Any) -> Any:
    return owned(statement, _L.user_id)


def _counts() -> tuple[Any, Any]:
    """A list's task counts (subtasks included), read with it: the sibling-position index,
    which leads with (user_id, list_id)."""
    tasks = owned(select(func.count()), _T.user_id).where(_T.list_id == _L.id)
    total = tasks.correlate(_TABLE).scalar_subquery()
    pending = tasks.where(_T.completed == false()).correlate(_TABLE).scalar_subquery()
    return total.label("task_count"), pending.label("open_task_count")


# What every statement that hands a list to the API returns.
LIST_VIEW = (*LIST_COLUMNS, *_counts())
_CREATED_VIEW = (*LIST_COLUMNS, literal(0).label("task_count"), literal(0).label("open_task_count"))

_ALL = _owned(select(*LIST_VIEW)).order_by(_L.position)
_GET = _owned(select(*LIST_VIEW).where(_L.id == _LIST_ID))
_NAMED = _owned(select(*LIST_VIEW).where(_L.name_key == _NAME_KEY))
# The caller's list names, in their order: what the error for an unknown name lists.
LIST_NAMES = _owned(select(_L.name)).order_by(_L.position)
_NAMES_SHOWN = 30

# A new list goes last; the insert happens only under the limit and with a name the user has
# no list by (the unique key on it is the arbiter: nothing is inserted, nothing raised).
_CREATE = (
    pg_insert(TaskList)
    .from_select(
        ["user_id", "name", "name_key", "color", "position"],
        _owned(
            select(
                bindparam(OWNER),
                bindparam("name", type_=Text),
                _NAME_KEY,
                bindparam("color", type_=Text),
                func.coalesce(func.max(_L.position), 0) + POSITION_GAP,
            )
        ).having(func.count() < LISTS_PER_USER),
    )
    .on_conflict_do_nothing(index_elements=["user_id", "name_key"])
    .returning(*_CREATED_VIEW)
)
_NAME_TAKEN = exists(
    owned(select(_OTHER.c.id), _OTHER.c.user_id).where(
        _OTHER.c.name_key == _NAME_KEY, _OTHER.c.id != _LIST_ID
    )
)
# Why a create inserted nothing: the count, and whether the name is taken.
_CREATE_REFUSAL = _owned(
    select(
        func.count(),
        func.count().filter(_L.name_key == _NAME_KEY),
    )
)
# Why a write of `:list_id` matched nothing: the list's version (NULL: none), whether the
# name is taken.
_WRITE_REFUSAL = select(
    _owned(select(_L.version).where(_L.id == _LIST_ID)).scalar_subquery(),
    _NAME_TAKEN,
)


class ListService(Scoped):
    def all(self) -> Sequence[ListRow]:
        """Every list of the caller's (at most LISTS_PER_USER), in their order."""
        return cast(Sequence[ListRow], self._run(_ALL).all())

    def get(self, list_id: int) -> ListRow:
        row = self._run(_GET, list_id=list_id).first()
        if row is None:
            raise NotFound(LIST_NOT_FOUND)
        return cast(ListRow, row)

    def named(self, name: str, *, field: str = "list") -> ListRow:
        """The caller's list by its name, as an agent says it (case ignored): an unknown name
        is an error that names the caller's lists."""
        row = self._run(_NAMED, name_key=name_key(name)).first()
        if row is None:
            raise unknown_list(name, list(self._run(LIST_NAMES).scalars()), field=field)
        return cast(ListRow, row)

    def create(self, data: ListCreate) -> ListRow:
        key = name_key(data.name)
        row = self._run(_CREATE, name=data.name, name_key=key, color=data.color).first()
        if row is None:
            count, taken = tuple(self._run(_CREATE_REFUSAL, name_key=key).one())
            if taken:
                raise _name_taken(data.name)
            raise LimitReached(f"You have {count} lists, the most there can be ({LISTS_PER_USER})")
        return cast(ListRow, row)

    def update(self, list_id: int, data: ListUpdate, expected: Expected = None) -> ListRow:
        values = data.model_dump(exclude_unset=True)
        return self._write(list_id, values, expected)

    def replace(self, list_id: int, data: ListCreate, expected: Expected = None) -> ListRow:
        return self._write(list_id, data.model_dump(), expected)

    def _write(self, list_id: int, values: dict[str, Any], expected: Expected) -> ListRow:
        key = name_key(values["name"]) if "name" in values else None
        conditions: list[Any] = [_L.id == _LIST_ID]
        if expected is not None:
            conditions.append(_L.version == any_(_VERSIONS))
        if key is not None:
            values["name_key"] = key
            conditions.append(~_NAME_TAKEN)
        statement = (
            _owned(update(TaskList))
            .where(*conditions)
            .values(**values, version=_L.version + 1, updated_at=func.now())
            .returning(*LIST_VIEW)
        )
        binds: dict[str, Any] = {"list_id": list_id, "name_key": key}
        if expected is not None:
            binds["versions"] = sorted(expected)
        row = self._run(statement, **binds).first()
        if row is None:
            self._refuse_write(list_id, key, expected, values.get("name"))
        return cast(ListRow, row)

    def _refuse_write(
        self, list_id: int, key: str | None, expected: Expected, name: str | None
    ) -> NoReturn:
        version, taken = tuple(self._run(_WRITE_REFUSAL, list_id=list_id, name_key=key).one())
        if version is None:
            raise NotFound(LIST_NOT_FOUND)
        if expected is not None and version not in expected:
            raise PreconditionFailed(LIST_CHANGED)
        if taken:
            raise _name_taken(name or "")
        raise Conflict("The list changed while it was being written; retry")  # pragma: no cover

    def delete(self, list_id: int, expected: Expected = None) -> None:
        """Delete the list and, by the foreign key's cascade, every task in it."""
        conditions: list[Any] = [_L.id == _LIST_ID]
        binds: dict[str, Any] = {"list_id": list_id}
        if expected is not None:
            conditions.append(_L.version == any_(_VERSIONS))
            binds["versions"] = sorted(expected)
        deleted = self._run(_owned(delete(TaskList)).where(*conditions).returning(_L.id), **binds)
        if deleted.first() is None:
            self._refuse_write(list_id, None, expected, None)

    def move(
        self, list_id: int, after_id: int | None, before_id: int | None, expected: Expected = None
    ) -> ListRow:
        """Put a list right after `after_id` or before `before_id` (or last): one statement,
        which respaces a few lists only when the two it goes between are adjacent."""
        anchor_id = after_id if after_id is not None else before_id
        if anchor_id == list_id:
            field = "body.after_id" if after_id is not None else "body.before_id"
            raise _invalid(field, "A list cannot be placed next to itself")
        statement, refusal = _move_statement(
            "last" if anchor_id is None else ("after" if after_id is not None else "before"),
            checked=expected is not None,
        )
        binds: dict[str, Any] = {"list_id": list_id, "anchor_id": anchor_id}
        if expected is not None:
            binds["versions"] = sorted(expected)
        rows = self._run(statement, **binds).all()
        moved = next((row for row in rows if row.id == list_id), None)
        if moved is not None:
            return cast(ListRow, moved)
        reason = self._run(refusal, **binds).scalar()
        if reason == "list":
            raise NotFound(LIST_NOT_FOUND)
        if reason == "stale":
            raise PreconditionFailed(LIST_CHANGED)
        field = "body.after_id" if after_id is not None else "body.before_id"
        raise NotFound(
            LIST_NOT_FOUND,
            details=[{"field": field, "message": LIST_NOT_FOUND, "type": "not_found"}],
        )


@lru_cache(maxsize=8)
def _move_statement(anchor: str, *, checked: bool) -> tuple[Any, Any]:
    moving = _owned(select(_L.id, _L.version, _L.position).where(_L.id == _LIST_ID)).cte("moving")
    rules: list[tuple[Any, str]] = [(~exists(select(moving.c.id)), "list")]
    if checked:
        version = select(moving.c.version).scalar_subquery()
        rules.append((~(version == any_(_VERSIONS)), "stale"))
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


def unknown_list(name: str, names: Sequence[str], *, field: str) -> NotFound:
    """The error for a list named by a name the caller has no list by: it names theirs (up to
    30), so an agent can pick one."""
    shown = ", ".join(f'"{n}"' for n in names[:_NAMES_SHOWN])
    if len(names) > _NAMES_SHOWN:
        shown += f" and {len(names) - _NAMES_SHOWN} more (list_lists)"
    message = f'No list named "{name}". ' + (
        f"Your lists: {shown}." if names else "You have no lists (create_list makes one)."
    )
    return NotFound(message, details=[{"field": field, "message": message, "type": "not_found"}])


def _name_taken(name: str) -> Conflict:
    message = f'You have a list named "{name}" already (names ignore case)'
    return Conflict(
        message, details=[{"field": "body.name", "message": message, "type": "conflict"}]
    )


def _invalid(field: str, message: str) -> InvalidRequest:
    return InvalidRequest(
        message, details=[{"field": field, "message": message, "type": "value_error"}]
    )
