"""The change feed: the caller's task changes, and those of every list shared with it, in commit
order from `task_events`. A page merging spaces is read below `HOLD`, so a position never skips a
later commit (specs/events.md, "Order across spaces"); a position below what `prune` removed is 410
rather than a gap."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, cast

from sqlalchemy import (
    BigInteger,
    Connection,
    Engine,
    Integer,
    Text,
    and_,
    bindparam,
    case,
    exists,
    func,
    literal_column,
    or_,
    select,
    text,
    true,
    union_all,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.sql.elements import ColumnElement

from backend.db.scope import OWNER, Scoped, each_caller, if_member, owned
from backend.db.sender import read_for_callers
from backend.errors import CursorExpired
from backend.models import TaskEvent, TaskEventsPruned, TaskMemberReminder, User
from backend.models.task_event import CHANGE_TYPES, DAV_TYPES, FEED_TYPES
from backend.models.task_list import TaskList
from backend.services.statements.access import Action, may, may_shared

_E = TaskEvent.__table__.c  # type: ignore[attr-defined]
_P = TaskEventsPruned.__table__.c  # type: ignore[attr-defined]


class ChangeRow(Protocol):
    id: int
    event_id: Any  # uuid.UUID
    type: str
    task_id: int
    task: dict[str, Any] | None
    child_id: int | None
    occurred_at: datetime


@dataclass(frozen=True)
class ChangePage:
    changes: Sequence[ChangeRow]
    # The position to continue from: the last change returned (or the one given).
    next: int
    has_more: bool


_AFTER = bindparam("after", type_=Integer)
_LIMIT = bindparam("limit", type_=Integer)
_T = TaskEvent.__table__  # type: ignore[attr-defined]
_R = TaskMemberReminder.__table__.c  # type: ignore[attr-defined]
# A task recorded in another space holds its owner's reminders: the caller reads its own.
_THEIRS = func.jsonb_set(
    _E.task,
    literal_column("'{reminders}'"),
    func.coalesce(
        select(_R.reminders)
        .where(_R.user_id == _E.user_id, _R.task_id == _E.task_id, _R.member_id == bindparam(OWNER))
        .correlate(_T)
        .scalar_subquery(),
        literal_column("'[]'::jsonb"),
    ),
)
_TASK = case((_E.user_id == bindparam(OWNER), _E.task), else_=_THEIRS).label("task")
# A child's event names its row (in `object`), so a client updates its copy without listing.
_CHILD_ID = _E.object["id"].astext.cast(BigInteger).label("child_id")
_COLUMNS = (_E.id, _E.event_id, _E.type, _E.task_id, _TASK, _CHILD_ID, _E.occurred_at)


def of_types(types: Sequence[str]) -> ColumnElement[bool]:
    """`type IN (...)` with our constants written in: one plan, and no list parameter to carry."""
    return cast(ColumnElement[bool], _E.type.in_([literal_column(f"'{t}'") for t in types]))


# The own arm: task changes, children's events, access gained or lost; a shared list's: its tasks'
# changes and children's events. A child's event is told by its shape (a task and a row), so a new
# child needs no line. Two arms, each on its own index (an OR would be a bitmap or a scan).
ANY_CHILD_EVENT = and_(_E.task_id.is_not(None), _E.object.is_not(None))
CHILD_EVENT = and_(ANY_CHILD_EVENT, ~of_types(DAV_TYPES))
_OWN = and_(_E.user_id == bindparam(OWNER), or_(of_types(FEED_TYPES), CHILD_EVENT))
_SHARED = and_(may_shared(_T, Action.LIST_READ), or_(of_types(CHANGE_TYPES), CHILD_EVENT))
_CHANGES = or_(_OWN, _SHARED)
# An expression: the shared arm's max and order come from the memberships' index, not the pkey.
_UNORDERED = _E.id + 0
# Where a page may go: below any change in flight in the caller's spaces (`HOLD` sent ahead).
_HORIZON = func.task_events_horizon(bindparam(OWNER, type_=Text), type_=BigInteger)
# Sent ahead of a feed page: the busy spaces kept for `_HORIZON`; `HOLD_MANY`: many callers'.
HOLD = text("SELECT task_events_hold(:owner)")
HOLD_MANY = text("SELECT task_events_hold_many(CAST(:callers_owner AS TEXT[]))")
_PRUNED = owned(select(_P.through_id), _P.user_id)
# How far pruning went (0 before any), outer-joined so an empty page still has a row.
_THROUGH = owned(
    select(func.coalesce(func.max(_P.through_id), 0).label("through")), _P.user_id
).subquery("pruned")


def _arm(arm: ColumnElement[bool], order: Any) -> Any:
    after = func.coalesce(_AFTER, _THROUGH.c.through)
    return (
        select(*_COLUMNS)
        .where(_E.id > after, _E.id <= _HORIZON, arm)
        .correlate(_THROUGH)
        .order_by(order)
        .limit(_LIMIT)
    )


_BOTH = union_all(_arm(_OWN, _E.id), _arm(_SHARED, _UNORDERED)).subquery("arms")
_ROWS = select(*_BOTH.c).order_by(_BOTH.c.id).limit(_LIMIT).lateral("page")
_PAGE = (
    select(_THROUGH.c.through, *_ROWS.c)
    .select_from(_THROUGH.outerjoin(_ROWS, true()))
    .order_by(_ROWS.c.id)
)


def latest_position() -> ColumnElement[int]:
    """The caller's position now, in a listing's own snapshot (no horizon: it costs planning)."""
    own = select(func.max(_E.id)).where(_OWN).scalar_subquery()
    theirs = if_member(select(func.max(_UNORDERED)).where(_SHARED).scalar_subquery())
    pruned = _PRUNED.scalar_subquery()
    return cast(ColumnElement[int], func.greatest(own, theirs, pruned, 0))


_HEAD = select(latest_position().label("position"))

# `_PAGE` for many callers at once (the live poll), with each one's account beside it.
_EACH = each_caller(_PAGE, {"after": BigInteger}, "pages")
_U = User.__table__.c  # type: ignore[attr-defined]
# The caller's account, by its primary key (one lookup per caller, never a scan of users).
_ACCOUNT = select(_U.token_version).where(_U.id == _EACH.callers.c.owner).scalar_subquery()
_PAGES = (
    select(_EACH.callers.c.n.label("caller"), _ACCOUNT.label("account_version"), *_EACH.page.c)
    .select_from(_EACH.joined())
    .order_by(_EACH.callers.c.n, _EACH.page.c.id)
)


@dataclass(frozen=True)
class CallerPage:
    """One caller's share of `pages`: its page (None: pruned, 410), its token version."""

    page: ChangePage | None
    account_version: int | None
    account: bool


def pages(
    conn: Connection, locals_: str, positions: Sequence[tuple[str, int]], limit: int
) -> list[CallerPage]:
    """Up to `limit` changes after each (caller, position), in one message."""
    owners = [owner for owner, _ in positions]
    values = {
        "callers_owner": owners,
        "callers_after": [a for _, a in positions],
        "limit": limit + 1,
    }
    hold = (HOLD_MANY, {"callers_owner": owners})
    rows = read_for_callers(conn, locals_, _PAGES, values, ahead=hold)
    grouped: list[list[Any]] = [[] for _ in positions]
    for row in rows:
        grouped[int(row.caller) - 1].append(row)
    answers = []
    for (_, after), group in zip(positions, grouped, strict=True):
        try:
            page: ChangePage | None = _paged(group, after, limit)
        except CursorExpired:
            page = None
        version = group[0].account_version
        answers.append(CallerPage(page, version, version is not None))
    return answers


def _paged(rows: Sequence[Any], after: int | None, limit: int) -> ChangePage:
    """A page from `_PAGE`'s rows; `CursorExpired` if changes after `after` were pruned."""
    through = int(rows[0].through)  # in the page's snapshot: a prune of part of it is seen
    if after is not None and through > after:
        raise CursorExpired()
    start = through if after is None else after
    found = [row for row in rows if row.id is not None]
    changes = cast(Sequence[ChangeRow], found[:limit])
    return ChangePage(
        changes=changes, next=changes[-1].id if changes else start, has_more=len(found) > limit
    )


class ChangeFeed(Scoped):
    def head(self) -> int:
        """The caller's position now: where a live stream without a cursor starts."""
        return int(self._read(_HEAD).scalar_one())

    def page(self, after: int | None, limit: int) -> ChangePage:
        """Up to `limit` changes after `after`; `CursorExpired` if those were pruned."""
        self._ahead(HOLD)
        return _paged(self._read(_PAGE, after=after, limit=limit + 1), after, limit)


# A CalDAV collection's changes (specs/caldav.md, "Sync"), moves out of it included.
_DAV_OWN = and_(_E.user_id == bindparam(OWNER), or_(of_types(FEED_TYPES), ANY_CHILD_EVENT))
_DAV_SHARED = and_(may_shared(_T, Action.LIST_READ), or_(of_types(CHANGE_TYPES), ANY_CHILD_EVENT))
_COLLECTION = bindparam("collection", type_=BigInteger)
_LISTS = TaskList.__table__  # type: ignore[attr-defined]
_L = _LISTS.c


_NO_LIST_JSON: ColumnElement[Any] = literal_column("'null'::jsonb")


def _moved_out_of(collection: Any) -> ColumnElement[bool]:
    """A task's move out of `collection` (the old list's id as JSON), as its index indexes it."""
    left = _E.changes.op("->")(literal_column("'list_id'")).op("->")(literal_column("0"))
    return and_(_E.changes.op("?")(literal_column("'list_id'")), left == collection)


def _in_collection(no_list: bool, collection: Any = _COLLECTION) -> ColumnElement[bool]:
    if no_list:
        return and_(
            _E.user_id == bindparam(OWNER), or_(_E.list_id.is_(None), _moved_out_of(_NO_LIST_JSON))
        )
    return or_(_E.list_id == collection, _moved_out_of(func.to_jsonb(collection, type_=JSONB)))


def collection_head(collection: Any = None) -> ColumnElement[int]:
    """A collection's position (its sync token, `getctag`): its latest event below any change in
    flight, or how far pruning went; `collection` None: the tasks in no list. Each arm is a
    maximum read from the top of its own index (`ix_task_events_user_id_list_id_id`, `_no_list_id`,
    `_left_list`: migration 0074), so one list's change leaves the other collections' tokens."""
    if collection is None:
        arms = [_E.list_id.is_(None), _moved_out_of(_NO_LIST_JSON)]
    else:
        arms = [_E.list_id == collection, _moved_out_of(func.to_jsonb(collection, type_=JSONB))]
    own = [
        select(func.max(_E.id)).where(_DAV_OWN, arm, _E.id <= _HORIZON).scalar_subquery()
        for arm in arms
    ]
    theirs = [
        if_member(
            select(func.max(_UNORDERED))
            .where(_DAV_SHARED, arm, _UNORDERED <= _HORIZON)
            .scalar_subquery()
        )
        for arm in (arms if collection is not None else [])
    ]
    return cast(ColumnElement[int], func.greatest(*own, *theirs, _PRUNED.scalar_subquery(), 0))


def _still_there(no_list: bool) -> ColumnElement[bool]:
    """Whether the event a token's position names is still in the collection's feed (or pruned)."""
    arm = or_(_DAV_OWN, _DAV_SHARED) if not no_list else _DAV_OWN
    return or_(
        _THROUGH.c.through >= _AFTER,
        exists(select(_E.id).where(_E.id == _AFTER, arm, _in_collection(no_list))),
    )


def _listed(lists: Sequence[int]) -> dict[str, Any]:
    return {f"collection_{n}": list_id for n, list_id in enumerate(lists)}


def _heads(count: int, no_list: bool) -> Any:
    """One statement of `count` lists' positions (and the tasks in no list's, last)."""
    columns = [
        collection_head(bindparam(f"collection_{n}", type_=BigInteger)) for n in range(count)
    ]
    return select(*columns, *([collection_head()] if no_list else []))


_NAME = _E.object["name"].astext


def _collection_page(no_list: bool) -> Any:
    def arm(arm: ColumnElement[bool], order: Any) -> Any:
        return (
            select(_E.id, _E.task_id, _E.type, _NAME.label("name"))
            .where(_E.id > _AFTER, _E.id <= _HORIZON, arm, _in_collection(no_list))
            .order_by(order)
            .limit(_LIMIT)
        )

    arms = [arm(_DAV_OWN, _E.id)]
    if not no_list:  # the caller's own tasks in no list are in its own space only
        arms.append(arm(_DAV_SHARED, _UNORDERED))
    both = union_all(*arms).subquery("arms")
    rows = select(*both.c).order_by(both.c.id).limit(_LIMIT).lateral("page")
    # Whether the caller may read the collection (else the missing one's 404), in the same read.
    readable = (
        literal_column("true")
        if no_list
        else exists(select(_L.id).where(_L.id == _COLLECTION, may(_LISTS, Action.LIST_READ)))
    )
    head = collection_head(None if no_list else _COLLECTION)
    top = select(
        _THROUGH.c.through,
        head.label("head"),
        readable.label("readable"),
        _still_there(no_list).label("known"),
        *rows.c,
    ).select_from(_THROUGH.outerjoin(rows, true()))
    return top.order_by(rows.c.id)


_COLLECTION_PAGES = {no_list: _collection_page(no_list) for no_list in (False, True)}


@dataclass(frozen=True)
class CollectionChanges:
    """A collection's changes after a position, its `head` now, whether `expired`."""

    rows: Sequence[Any]
    head: int
    has_more: bool
    readable: bool
    expired: bool
    known: bool = True


class CollectionFeed(Scoped):
    """The change feed as `sync-collection` reads it (backend/dav/sync.py)."""

    def heads(self, list_ids: Sequence[int | None]) -> dict[int | None, int]:
        """Each collection's position now (its sync token) in one statement (None: in no list)."""
        self._ahead(HOLD)
        lists = [each for each in list_ids if each is not None]
        row = self._read(_heads(len(lists), None in list_ids), **_listed(lists)).one()
        found: dict[int | None, Any] = dict(zip(lists, row[: len(lists)], strict=True))
        if None in list_ids:
            found[None] = row[-1]
        return {key: int(value) for key, value in found.items()}

    def since(self, after: int, list_id: int | None, limit: int) -> CollectionChanges:
        """Up to `limit` events after `after`, the position now and the right to read."""
        self._ahead(HOLD)
        values: dict[str, Any] = {"after": after, "limit": limit + 1}
        if list_id is not None:
            values["collection"] = list_id
        rows = self._read(_COLLECTION_PAGES[list_id is None], **values).all()
        first = rows[0]
        found = [row for row in rows if row.id is not None]
        expired = int(first.through) > after
        return CollectionChanges(
            found[:limit],
            int(first.head),
            len(found) > limit,
            bool(first.readable),
            expired,
            first.known,
        )


# One statement: the deletion and the record of how far it went commit together.
_PRUNE = """
WITH gone AS (
    DELETE FROM task_events WHERE id IN (
        SELECT id FROM task_events
        WHERE occurred_at < now() - make_interval(hours => :hours) {kept}
        ORDER BY occurred_at
        LIMIT :batch
    )
    RETURNING user_id, id, type, task_id, list_id, object IS NOT NULL AS child
), recorded AS (
    INSERT INTO task_events_pruned (user_id, through_id)
    SELECT p.user_id, max(p.id) FROM (
        SELECT user_id, id FROM gone WHERE type IN ({feed}) OR (task_id IS NOT NULL AND child)
        UNION ALL
        -- A shared list's changes (and its tasks' children's events) were in its members'
        -- feeds too.
        SELECT m.member_id, g.id FROM gone AS g
        JOIN list_members AS m ON m.list_id = g.list_id AND m.user_id = g.user_id
        WHERE g.type IN ({changes}) OR (g.task_id IS NOT NULL AND g.child)
    ) AS p
    GROUP BY p.user_id
    ON CONFLICT (user_id) DO UPDATE
        SET through_id = greatest(task_events_pruned.through_id, excluded.through_id)
)
SELECT count(*) FROM gone
"""
# Only delivered (or dead) changes below the user's first pending one: a feed has no hole.
_FEED_TYPES_SQL = ", ".join(f"'{t}'" for t in FEED_TYPES)
_CHANGE_TYPES_SQL = ", ".join(f"'{t}'" for t in CHANGE_TYPES)
_PRUNE_DELIVERED = text(
    _PRUNE.format(
        feed=_FEED_TYPES_SQL,
        changes=_CHANGE_TYPES_SQL,
        kept="""AND state <> 'pending' AND NOT EXISTS (
            SELECT 1 FROM task_events AS earlier
            WHERE earlier.user_id = task_events.user_id
              AND earlier.state = 'pending' AND earlier.id < task_events.id)""",
    )
)
_PRUNE_ANY = text(_PRUNE.format(feed=_FEED_TYPES_SQL, changes=_CHANGE_TYPES_SQL, kept=""))


def prune(engine: Engine, retention_hours: int, *, undelivered: bool, batch: int = 1000) -> int:
    """Delete changes past the retention (delivered ones unless `undelivered`), in batches."""
    statement = _PRUNE_ANY if undelivered else _PRUNE_DELIVERED
    total = 0
    while True:
        with engine.begin() as conn:
            deleted = int(
                conn.execute(statement, {"hours": retention_hours, "batch": batch}).scalar_one()
            )
        total += deleted
        if deleted < batch:
            return total
