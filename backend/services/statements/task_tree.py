"""Where a task goes: its list, its parent and its place among its siblings. Every write that places
a task is one statement that checks the destination and writes in one snapshot (`refusal`: the first
rule broken, read again to say why); each named row is read through `may(..., TASK_WRITE)`, never
"the same owner". The caller's change lock serializes a user's writes, so limits and places are
exact. Positions have gaps (`POSITION_GAP`): a move takes the midpoint, and only adjacent siblings
respace the fewest after it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from typing import Any

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
    insert,
    literal,
    null,
    or_,
    select,
    true,
    union_all,
    update,
)
from sqlalchemy import cast as sql_cast
from sqlalchemy.dialects.postgresql import array
from sqlalchemy.sql.elements import ClauseElement, ColumnElement

from backend.db.scope import OWNER
from backend.models import Task
from backend.models.task_list import (
    MAX_DEPTH,
    POSITION_GAP,
    SUBTASKS_PER_TASK,
    TASKS_PER_LIST,
    TaskList,
)
from backend.services.statements.access import Action, may
from backend.services.statements.assignees import assignable
from backend.services.statements.versions import VERSIONS

_T = Task.__table__  # type: ignore[attr-defined]
_C = _T.c
_LISTS = TaskList.__table__  # type: ignore[attr-defined]
_L = _LISTS.c

TASK_ID = bindparam("task_id", type_=BigInteger)
LIST_ID = bindparam("list_id", type_=BigInteger)
LIST_KEY = bindparam("list_key", type_=Text)
PARENT_ID = bindparam("parent_id", type_=BigInteger)
ANCHOR_ID = bindparam("anchor_id", type_=BigInteger)


@dataclass(frozen=True)
class Named:
    """What a move moves where: the request's values (`BOUND`) or an undo's."""

    task_id: Any
    list_id: Any
    parent_id: Any
    versions: Any
    # A position to take where no sibling holds it (else the anchor's): an undo's move back.
    position: Any = None


BOUND = Named(TASK_ID, LIST_ID, PARENT_ID, VERSIONS)
# The smallest gap a respacing leaves between two siblings.
MIN_SPACING = 1024


class Sent(StrEnum):
    """What a request says about a task's list or parent."""

    omitted = "omitted"  # not sent: as it is (a new task: none)
    null = "null"  # sent as null: no list / top level
    id = "id"  # an id
    name = "name"  # a list's name (MCP)
    # An id or null bound in one shape (an undo moving a task back), not said by a request.
    given = "given"


class Anchor(StrEnum):
    last = "last"
    after = "after"
    before = "before"


class Refusal(StrEnum):
    """Why a placement was not written, in the order the rules are checked."""

    task = "task"  # the moved task: missing or another user's
    stale = "stale"  # If-Match names none of its versions
    list = "list"  # the list: missing or another user's
    parent = "parent"  # the parent: missing, or not a task the caller may write in the space
    anchor = "anchor"  # after_id / before_id: likewise
    personal = "personal"  # no list in another user's space (a member's list_id: null)
    list_mismatch = "list_mismatch"  # list and parent sent, the parent is in another list
    anchor_group = "anchor_group"  # the anchor is not in the list / under the parent sent
    cycle = "cycle"  # under itself or one of its subtasks
    recurring = "recurring"  # a recurring task under a parent
    depth = "depth"  # more than MAX_DEPTH ancestors
    tree_full = "tree_full"  # more than SUBTASKS_PER_TASK under one top-level task
    list_full = "list_full"  # more than TASKS_PER_LIST in the list
    other_owner = "other_owner"  # the list is another owner's than the task's (shared lists)
    assignee = "assignee"  # an assignee is neither the owner nor a member of the list


@dataclass(frozen=True)
class Placement:
    """Where a request puts a task. `stay`: a placement into the group the task is already in
    keeps its place (PATCH, PUT, a bulk move); otherwise (`POST .../move`) `anchor` says."""

    list: Sent = Sent.omitted
    parent: Sent = Sent.omitted
    anchor: Anchor = Anchor.last
    stay: bool = False
    list_id: int | None = None
    list_key: str | None = None
    parent_id: int | None = None
    anchor_id: int | None = None
    # The list's name as it was said (for the error naming the caller's lists).
    list_name: str | None = None

    @property
    def shape(self) -> tuple[Sent, Sent, Anchor, bool]:
        return (self.list, self.parent, self.anchor, self.stay)

    def values(self) -> dict[str, Any]:
        """Only the values its statements bind (an unbound `list_id` would be one more SET)."""
        values: dict[str, Any] = {}
        if self.list is Sent.id:
            values["list_id"] = self.list_id
        elif self.list is Sent.name:
            values["list_key"] = self.list_key
        if self.parent is Sent.id:
            values["parent_id"] = self.parent_id
        if self.anchor is not Anchor.last:
            values["anchor_id"] = self.anchor_id
        return values


def _tasks(space: Any, *columns: Any) -> Any:
    """The tasks of the space a placement writes in (`_space`), under a checked destination."""
    return select(*columns).where(_C.user_id == space)


def _writable(space: Any, *columns: Any) -> Any:
    """A named task in the placement's space, writable; any other is the same `Refusal`."""
    return _tasks(space, *columns).where(may(_T, Action.TASK_WRITE))


def _space(shape: tuple[Sent, Sent, Anchor, bool], *, moving: bool, at: Named = BOUND) -> Any:
    """The space a placement writes in: the moved task's; for a new task its list's, parent's or
    anchor's, else the caller's own; read through `may` for the scoping guards."""
    list_sent, parent_sent, anchor, _ = shape
    if moving:
        named, by = _T.alias("space_of"), at.task_id
    elif list_sent is Sent.id:
        named, by = TaskList.__table__.alias("space_of"), LIST_ID  # type: ignore[attr-defined]
    elif parent_sent is Sent.id:
        named, by = _T.alias("space_of"), PARENT_ID
    elif anchor is not Anchor.last:
        named, by = _T.alias("space_of"), ANCHOR_ID
    else:
        return bindparam(OWNER)
    owner = select(named.c.user_id).where(named.c.id == by, may(named, Action.TASK_WRITE))
    return func.coalesce(owner.scalar_subquery(), bindparam(OWNER))


@cache
def spaces_lock(shape: tuple[Sent, Sent, Anchor, bool]) -> Any:
    """A new task's two change locks, the caller's and its space's, taken together ahead of its
    insert: two members adding to each other's lists, each holding one lock while waiting for
    the other's, would deadlock (specs/events.md)."""
    space = _space(shape, moving=False)
    return select(func.task_api_lock_spaces(array([bindparam(OWNER), space])))


def _scalar(statement: Any) -> Any:
    return statement.scalar_subquery()


@dataclass(frozen=True)
class _Destination:
    """The CTEs of a placement and the expressions over them."""

    refusal: ColumnElement[Any]  # NULL when the placement may be written
    space: Any  # the owner id whose space it writes in (`_space`)
    list_id: ColumnElement[Any]
    parent_id: ColumnElement[Any]
    # Moves only:
    subtree: Any = None
    moving: Any = None
    list_changes: ColumnElement[bool] | None = None
    same_group: ColumnElement[bool] | None = None


def _destination(
    shape: tuple[Sent, Sent, Anchor, bool], *, moving: bool, checked: bool, at: Named = BOUND
) -> Any:
    """Where the task goes and every rule checked (`Refusal`); `checked`: If-Match sent."""
    list_sent, parent_sent, anchor, _ = shape
    rules: list[tuple[ColumnElement[bool], Refusal]] = []
    space = _space(shape, moving=moving, at=at)

    moved = None
    if moving:
        moved = (
            _tasks(space, _C.id, _C.list_id, _C.parent_id, _C.position, _C.version, _C.recurrence)
            .where(_C.id == at.task_id)
            .cte("moving")
        )
        rules.append((~exists(select(moved.c.id)), Refusal.task))
        if checked:
            rules.append((~(_scalar(select(moved.c.version)) == any_(at.versions)), Refusal.stale))

    list_value: Any = null()
    if list_sent in (Sent.id, Sent.name, Sent.given):
        by_id = list_sent is not Sent.name
        match = _L.id == at.list_id if by_id else _L.name_key == LIST_KEY
        # A list by name is one of the caller's own (names are unique per owner only).
        visible = may(_LISTS, Action.TASK_WRITE) if by_id else _L.user_id == bindparam(OWNER)
        chosen = select(_L.id, _L.user_id).where(match, visible).cte("chosen_list")
        missing: ColumnElement[bool] = ~exists(select(chosen.c.id))
        if list_sent is Sent.given:  # no list named: no list
            missing = and_(at.list_id.is_not(None), missing)
        rules.append((missing, Refusal.list))
        rules.append((_scalar(select(chosen.c.user_id)) != space, Refusal.other_owner))
        list_value = _scalar(select(chosen.c.id))

    # Rows the caller may write, not merely of the space: an owner's private rows stay out.
    parent_row = None
    if parent_sent in (Sent.id, Sent.given):
        parent_row = _writable(space, _C.id, _C.list_id).where(_C.id == at.parent_id).cte("parent")
        no_parent: ColumnElement[bool] = ~exists(select(parent_row.c.id))
        if parent_sent is Sent.given:  # no parent named: the top level
            no_parent = and_(at.parent_id.is_not(None), no_parent)
        rules.append((no_parent, Refusal.parent))

    anchor_row = None
    if anchor is not Anchor.last:
        anchor_row = (
            _writable(space, _C.id, _C.list_id, _C.parent_id, _C.position)
            .where(_C.id == ANCHOR_ID)
            .cte("anchor")
        )
        rules.append((~exists(select(anchor_row.c.id)), Refusal.anchor))
    # Checked once the destination is known, before the rules about the body's values.
    personal_at = len(rules)

    parent_list = None if parent_row is None else _scalar(select(parent_row.c.list_id))
    # A given parent takes the task into its list as it is now, whatever list was given.
    if parent_list is not None and parent_sent is Sent.id and list_sent is not Sent.omitted:
        rules.append((parent_list.is_distinct_from(list_value), Refusal.list_mismatch))

    current_list = _scalar(select(moved.c.list_id)) if moved is not None else null()
    current_parent = _scalar(select(moved.c.parent_id)) if moved is not None else null()
    if anchor_row is not None:
        dest_list: Any = _scalar(select(anchor_row.c.list_id))
        dest_parent: Any = _scalar(select(anchor_row.c.parent_id))
        if list_sent is not Sent.omitted:
            rules.append((dest_list.is_distinct_from(list_value), Refusal.anchor_group))
        if parent_sent in (Sent.id, Sent.given):
            rules.append((dest_parent.is_distinct_from(at.parent_id), Refusal.anchor_group))
        elif parent_sent is Sent.null:
            rules.append((dest_parent.is_not(None), Refusal.anchor_group))
    elif parent_sent is Sent.given:
        # Under the parent named (in its list), else at the top level of the list named.
        at_top = list_value if list_sent is not Sent.omitted else current_list
        dest_parent, dest_list = (
            at.parent_id,
            case((at.parent_id.is_(None), at_top), else_=parent_list),
        )
    elif parent_row is not None:
        dest_parent, dest_list = at.parent_id, parent_list
    elif parent_sent is Sent.null:
        dest_parent = null()
        dest_list = list_value if list_sent is not Sent.omitted else current_list
    elif list_sent is not Sent.omitted:
        # A list without a parent: that list's top level; the task's own list keeps its parent.
        dest_list = list_value
        dest_parent = case(
            (list_value.is_not_distinct_from(current_list), current_parent), else_=null()
        )
    else:
        dest_parent, dest_list = current_parent, current_list
    dest = select(
        sql_cast(dest_list, BigInteger).label("list_id"),
        sql_cast(dest_parent, BigInteger).label("parent_id"),
    ).cte("destination")
    d_list, d_parent = _scalar(select(dest.c.list_id)), _scalar(select(dest.c.parent_id))
    # No list in another user's space is that user's personal space: never a member's to write.
    rules.insert(personal_at, (and_(space != bindparam(OWNER), d_list.is_(None)), Refusal.personal))

    # The destination parent and its ancestors (none at the top level).
    up = _tasks(space, _C.id, _C.parent_id, literal(1).label("n")).where(_C.id == d_parent)
    up = up.cte("ancestors", recursive=True)
    up = up.union_all(
        _tasks(space, _C.id, _C.parent_id, up.c.n + 1).where(
            _C.id == up.c.parent_id, up.c.n <= MAX_DEPTH
        )
    )
    ancestors = _scalar(select(func.count()).select_from(up))
    root = _scalar(select(up.c.id).where(up.c.parent_id.is_(None)))

    subtree = None
    height: Any = literal(0)
    size: Any = literal(1)
    if moved is not None:
        subtree = _tasks(space, _C.id, _C.parent_id, _C.position, literal(0).label("n")).where(
            _C.id == at.task_id
        )
        subtree = subtree.cte("subtree", recursive=True)
        subtree = subtree.union_all(
            _tasks(space, _C.id, _C.parent_id, _C.position, subtree.c.n + 1).where(
                _C.parent_id == subtree.c.id, subtree.c.n <= MAX_DEPTH
            )
        )
        rules.append((exists(select(subtree.c.id).where(subtree.c.id == d_parent)), Refusal.cycle))
        recurring = _scalar(select(moved.c.recurrence))
        rules.append((and_(d_parent.is_not(None), recurring.is_not(None)), Refusal.recurring))
        height = _scalar(select(func.coalesce(func.max(subtree.c.n), 0)))
        size = _scalar(select(func.count()).select_from(subtree))
    rules.append((ancestors + height > MAX_DEPTH, Refusal.depth))

    # The top-level task the destination is under, and every task under it.
    below = _tasks(space, _C.id, literal(1).label("n")).where(_C.parent_id == root)
    below = below.cte("tree", recursive=True)
    below = below.union_all(
        _tasks(space, _C.id, below.c.n + 1).where(
            _C.parent_id == below.c.id, below.c.n <= MAX_DEPTH
        )
    )
    in_tree = _scalar(select(func.count()).select_from(below))
    already: Any = false()
    if moved is not None:
        already = exists(select(below.c.id).where(below.c.id == at.task_id))
    joining = case((already, 0), else_=size)
    rules.append(
        (and_(root.is_not(None), in_tree + joining > SUBTASKS_PER_TASK), Refusal.tree_full)
    )

    # The destination list's tasks, counted up to the limit (a user's writes are serialized).
    list_changes = d_list.is_distinct_from(current_list) if moved is not None else true()
    counted = _tasks(space, _C.id).where(_C.list_id == d_list).limit(TASKS_PER_LIST + 1).subquery()
    in_list = _scalar(select(func.count()).select_from(counted))
    rules.append(
        (
            and_(d_list.is_not(None), list_changes, in_list + size > TASKS_PER_LIST),
            Refusal.list_full,
        )
    )

    refusal = case(*((rule, literal(name.value)) for rule, name in rules), else_=null())
    same_group = None
    if moved is not None:
        same_group = and_(
            d_list.is_not_distinct_from(current_list), d_parent.is_not_distinct_from(current_parent)
        )
    return _Destination(
        refusal=refusal,
        space=space,
        list_id=d_list,
        parent_id=d_parent,
        subtree=subtree,
        moving=moved,
        list_changes=list_changes if moved is not None else None,
        same_group=same_group,
    ), anchor_row


def create_statement(
    shape: tuple[Sent, Sent, Anchor, bool], values: Mapping[str, Any], returning: Any
) -> tuple[Any, Any]:
    """`INSERT ... SELECT` of a new task placed as `shape` says, unless refused; its refusal."""
    destination, _ = _destination(shape, moving=False, checked=False)
    refusal = _or_unassignable(destination, values)
    names = ["user_id", *values, "list_id", "parent_id"]
    chosen = select(
        destination.space, *values.values(), destination.list_id, destination.parent_id
    ).where(refusal.is_(None))
    statement = insert(_T).from_select(names, chosen).returning(*returning)
    return statement, select(refusal.label("refusal"))


def _or_unassignable(destination: _Destination, values: Mapping[str, Any]) -> Any:
    """The placement's refusal, else `assignee` for an assignee not the owner nor a member there."""
    if "assignees" not in values:
        return destination.refusal
    ok = assignable(values["assignees"], destination.space, destination.list_id)
    unassignable = case((~ok, literal(Refusal.assignee.value)), else_=null())
    return func.coalesce(destination.refusal, unassignable)


def move_statement(
    shape: tuple[Sent, Sent, Anchor, bool],
    *,
    checked: bool,
    values: Mapping[str, Any],
    returning: Any,
    at: Named = BOUND,
) -> tuple[Any, Any]:
    """One `UPDATE ... FROM plan` moving `at.task_id` with its subtree; its refusal."""
    destination, anchor_row = _destination(shape, moving=True, checked=checked, at=at)
    _, _, anchor, stay = shape
    moved, subtree, space = destination.moving, destination.subtree, destination.space
    d_list, d_parent = destination.list_id, destination.parent_id

    # The destination's siblings (the moved task excluded), each branch on an index.
    siblings = union_all(
        _tasks(space, _C.id, _C.position).where(_C.parent_id == d_parent, _C.id != at.task_id),
        _tasks(space, _C.id, _C.position).where(
            _C.list_id == d_list, _C.parent_id.is_(None), d_parent.is_(None), _C.id != at.task_id
        ),
        _tasks(space, _C.id, _C.position).where(
            _C.list_id.is_(None),
            _C.parent_id.is_(None),
            d_list.is_(None),
            d_parent.is_(None),
            _C.id != at.task_id,
        ),
    ).cte("siblings")
    position = siblings.c.position
    if anchor is Anchor.last or anchor_row is None:
        after: Any = _scalar(select(func.max(position)))
        before: Any = null()
    else:
        pivot = _scalar(select(anchor_row.c.position))
        if anchor is Anchor.after:
            after, before = pivot, _scalar(select(func.min(position)).where(position > pivot))
        else:
            after, before = _scalar(select(func.max(position)).where(position < pivot)), pivot
    keep = destination.same_group if stay and destination.same_group is not None else false()
    kept = _scalar(select(moved.c.position))
    if at.position is not None:
        free = ~exists(select(siblings.c.id).where(siblings.c.position == at.position))
        keep, kept = and_(at.position.is_not(None), free), at.position
    new_position, respaced = place(siblings, after, before, keep=keep, kept=kept)
    plan = union_all(
        select(
            at.task_id.label("id"),
            d_list.label("list_id"),
            d_parent.label("parent_id"),
            new_position.label("position"),
        ),
        select(subtree.c.id, d_list, subtree.c.parent_id, subtree.c.position).where(
            subtree.c.n > 0, destination.list_changes
        ),
        select(respaced.c.id, d_list, d_parent, respaced.c.position),
    ).cte("plan")

    changes: dict[str, Any] = {
        name: case((_C.id == at.task_id, _typed(name, value)), else_=_C[name])
        for name, value in values.items()
    }
    assigned = {k: _typed(k, v) for k, v in values.items() if k == "assignees"}
    refusal = _or_unassignable(destination, assigned)
    statement = (
        update(_T)
        .where(_C.user_id == destination.space, _C.id == plan.c.id, refusal.is_(None))
        .values(
            list_id=plan.c.list_id,
            parent_id=plan.c.parent_id,
            position=plan.c.position,
            updated_at=func.now(),
            version=_C.version + 1,
            **changes,
        )
        .returning(*returning)
    )
    return statement, select(refusal.label("refusal"))


def _typed(name: str, value: Any) -> Any:
    """A value bound with its column's type (a list: JSONB or `text[]`), or an expression."""
    if isinstance(value, ClauseElement):
        return value
    return bindparam(None, value, type_=_C[name].type)


def place(siblings: Any, after: Any, before: Any, *, keep: Any, kept: Any) -> tuple[Any, Any]:
    """The position between `after` and `before` of `siblings` (NULL: none on that side) and the
    siblings to respace (only when adjacent); `keep`: it stays at `kept`."""
    position = siblings.c.position
    bounds = select(
        sql_cast(after, BigInteger).label("after"), sql_cast(before, BigInteger).label("before")
    ).cte("bounds")
    lo, hi = _scalar(select(bounds.c.after)), _scalar(select(bounds.c.before))
    crowded = and_(~keep, lo.is_not(None), hi.is_not(None), hi - lo < 2)
    # The siblings after `lo`, numbered, each with the next one's position.
    tail = (
        select(
            siblings.c.id,
            func.row_number().over(order_by=position).label("k"),
            func.lead(position).over(order_by=position).label("bound"),
        )
        .where(position > lo, crowded)
        .cte("tail")
    )
    spacing = case(
        (tail.c.bound.is_(None), POSITION_GAP),
        else_=func.least(POSITION_GAP, (tail.c.bound - lo) // (tail.c.k + 2)),
    )
    cut = (
        select(tail.c.k, spacing.label("spacing"))
        .where(or_(tail.c.bound.is_(None), (tail.c.bound - lo) // (tail.c.k + 2) >= MIN_SPACING))
        .order_by(tail.c.k)
        .limit(1)
        .cte("cut")
    )
    respaced = (
        select(tail.c.id, (lo + (tail.c.k + 1) * cut.c.spacing).label("position"))
        .where(tail.c.k <= cut.c.k)
        .cte("respaced")
    )
    new_position = case(
        (keep, kept),
        (and_(lo.is_(None), hi.is_(None)), POSITION_GAP),
        (lo.is_(None), hi - POSITION_GAP),
        (hi.is_(None), lo + POSITION_GAP),
        (hi - lo >= 2, lo + (hi - lo) // 2),
        else_=lo + _scalar(select(cut.c.spacing)),
    )
    return new_position, respaced
