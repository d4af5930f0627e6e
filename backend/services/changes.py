"""The change feed: one caller's task changes in commit order, deletions included, and those
of every list shared with it (issue 39).

Rows come from `task_events`, which a trigger on `tasks` fills in the transaction of each
change (migration 0008). Within one space (the rows of one `user_id`), `id` order is commit
order. A caller's feed merges several spaces (its own, and each owner's whose lists it is a
member of): each page is read behind a hold (`HOLD`, migration 0030) that bounds it below any
change still in flight in a busy space, so a position (the last `id` a client has seen) never
skips a change that commits later (specs/events.md, "Order across spaces").

Records are pruned past retention (`prune`); per user, `task_events_pruned` keeps the highest
id deleted, updated by the statement that deletes. A position below it may have missed
changes: the feed refuses it (410) rather than answer with a gap.
"""

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
from backend.services.access import Action, may, may_shared

_E = TaskEvent.__table__.c  # type: ignore[attr-defined]
_P = TaskEventsPruned.__table__.c  # type: ignore[attr-defined]


class ChangeRow(Protocol):
    @property
    def id(self) -> int: ...
    @property
    def event_id(self) -> Any: ...  # uuid.UUID
    @property
    def type(self) -> str: ...
    @property
    def task_id(self) -> int: ...
    @property
    def task(self) -> dict[str, Any] | None: ...
    @property
    def child_id(self) -> int | None: ...
    @property
    def occurred_at(self) -> datetime: ...


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
# A task as recorded in another space (a list shared with the caller) holds its owner's
# reminders: the caller reads its own instead, as it reads the task (migration 0034).
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
# A child's event names its row (the one in `object`, as it was for a deletion), so a client
# updates its copy of that row without listing the task's children; NULL for a task's own.
_CHILD_ID = _E.object["id"].astext.cast(BigInteger).label("child_id")
_COLUMNS = (_E.id, _E.event_id, _E.type, _E.task_id, _TASK, _CHILD_ID, _E.occurred_at)


def of_types(types: Sequence[str]) -> ColumnElement[bool]:
    """`type IN (...)` with the types written into the SQL (our constants: one plan, and no
    list parameter, which a statement sent ahead or in a bulk step cannot carry)."""
    return cast(ColumnElement[bool], _E.type.in_([literal_column(f"'{t}'") for t in types]))


# Reminders, list, membership and invitation events share the outbox but are no task changes:
# the feed and its positions skip them. The caller's own space gives its task changes, its
# tasks' children's events and the access it gained or lost (`access.granted`,
# `access.ended`); a list shared with it, its tasks' changes and children's events.
# A child's event is told by its shape (`ck_task_events_task_present`, migration 0062: the
# only kind with both a task and a row), not by a list of its types: a child registered by
# its migration is in the feed without a line here.
# Two arms, each read on its own index (an OR of them would be one bitmap, sorted, or a scan
# of every user's events from the top for a maximum): the own arm in id order on
# `ix_task_events_user_id_id`, the shared one on `ix_task_events_user_id_list_id_id`.
# DAV's own bookkeeping (`DAV_TYPES`, migration 0066), for `sync-collection` alone
# (`CollectionFeed`): the REST feed, the live streams and the activity leave it out.
ANY_CHILD_EVENT = and_(_E.task_id.is_not(None), _E.object.is_not(None))
CHILD_EVENT = and_(ANY_CHILD_EVENT, ~of_types(DAV_TYPES))
_OWN = and_(_E.user_id == bindparam(OWNER), or_(of_types(FEED_TYPES), CHILD_EVENT))
_SHARED = and_(may_shared(_T, Action.LIST_READ), or_(of_types(CHANGE_TYPES), CHILD_EVENT))
_CHANGES = or_(_OWN, _SHARED)
# The shared arm's id, as an expression: so its maximum and its order are read from the rows
# the memberships' index finds (none without a membership), never by walking the primary key
# of every user's events (the plan the planner picks for a plain `id`, unable to tell the
# memberships' arrays are short; 54 ms at 73k events in the benchmark's database).
_UNORDERED = _E.id + 0
# Where a page may go: below any change in flight in a busy space of the caller's (`HOLD` sent
# ahead of the page, in its message: otherwise no bound). Evaluated in the page's snapshot.
_HORIZON = func.task_events_horizon(bindparam(OWNER, type_=Text), type_=BigInteger)
# Sent ahead of a feed page: the caller's spaces' change locks tried, the busy ones kept for
# `_HORIZON` (migrations 0030, 0055). A listing sends none (its `changes_cursor`,
# `latest_position`). `HOLD_MANY`: the same for every space of many callers (`pages`).
HOLD = text("SELECT task_events_hold(:owner)")
HOLD_MANY = text("SELECT task_events_hold_many(CAST(:callers_owner AS TEXT[]))")
_PRUNED = owned(select(_P.through_id), _P.user_id)
# One statement, one snapshot: how far pruning went (0 before any), and the page after
# `after` (NULL: from where pruning left off), outer-joined so an empty page still has a row.
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
    """The caller's position now: their latest change id (their own or a shared list's), or
    how far pruning went if that is further (0 before any). An expression over scalar
    subqueries: a listing selects it in its own statement, so the listing and the position
    come from one snapshot. No horizon: a listing sends no `HOLD` ahead, so
    `task_events_horizon()` would be no bound there, and each call of it cost its planning
    (issue 49: 0.17 ms of a listing's 0.37 ms to plan the position). A member of nothing
    plans no shared list's arm (`if_member`)."""
    own = select(func.max(_E.id)).where(_OWN).scalar_subquery()
    theirs = if_member(select(func.max(_UNORDERED)).where(_SHARED).scalar_subquery())
    pruned = _PRUNED.scalar_subquery()
    return cast(ColumnElement[int], func.greatest(own, theirs, pruned, 0))


_HEAD = select(latest_position().label("position"))

# The page for many callers at once (issue 64: the live streams' reader, one statement per
# poll for every woken stream): `_PAGE` itself, each caller's `owner` and `after` read from
# its row of `callers` (`each_caller`: the same construction, the same access relation and
# tombstones), with the caller's account beside it (gone, or its tokens revoked: the
# stream ends, as the door's entry would refuse it).
_EACH = each_caller(_PAGE, {"after": BigInteger}, "pages")
_U = User.__table__.c  # type: ignore[attr-defined]
# The caller's account, by its primary key (one lookup per caller, never a scan of users).
_ACCOUNT = select(_U.token_version).where(_U.id == _EACH.callers.c.owner).scalar_subquery()
_PAGES = (
    select(
        _EACH.callers.c.n.label("caller"),
        _ACCOUNT.label("account_version"),
        *_EACH.page.c,
    )
    .select_from(_EACH.joined())
    .order_by(_EACH.callers.c.n, _EACH.page.c.id)
)


@dataclass(frozen=True)
class CallerPage:
    """One caller's share of `pages`: its page (None: changes after its position were pruned,
    the feed's 410), and its account's token version (None, and not `account`: it is gone)."""

    page: ChangePage | None
    account_version: int | None
    account: bool


def pages(
    conn: Connection, locals_: str, positions: Sequence[tuple[str, int]], limit: int
) -> list[CallerPage]:
    """Up to `limit` changes after each (caller, position) of `positions`, each caller's page
    as `ChangeFeed.page` reads it, in one message: the hold of every caller's spaces, then one
    statement (`read_for_callers`, on a connection of no request, autocommitted)."""
    owners = [owner for owner, _ in positions]
    rows = read_for_callers(
        conn,
        locals_,
        _PAGES,
        {
            "callers_owner": owners,
            "callers_after": [after for _, after in positions],
            "limit": limit + 1,
        },
        ahead=(HOLD_MANY, {"callers_owner": owners}),
    )
    grouped: list[list[Any]] = [[] for _ in positions]
    for row in rows:
        grouped[int(row.caller) - 1].append(row)
    answers = []
    for (_, after), group in zip(positions, grouped, strict=True):
        try:
            page: ChangePage | None = _paged(group, after, limit)
        except CursorExpired:
            page = None
        first = group[0]
        version = first.account_version
        answers.append(CallerPage(page, version, version is not None))
    return answers


def _paged(rows: Sequence[Any], after: int | None, limit: int) -> ChangePage:
    """A page from `_PAGE`'s rows (one at least: the pruning's, with no change when there is
    none). Raises `CursorExpired` when changes after `after` have been pruned."""
    through = int(rows[0].through)
    # Read in the page's snapshot: a prune that removed part of it is seen.
    if after is not None and through > after:
        raise CursorExpired()
    # What pruning left is where the feed starts.
    start = through if after is None else after
    found = [row for row in rows if row.id is not None]
    changes = cast(Sequence[ChangeRow], found[:limit])
    return ChangePage(
        changes=changes,
        next=changes[-1].id if changes else start,
        has_more=len(found) > limit,
    )


class ChangeFeed(Scoped):
    def head(self) -> int:
        """The caller's position now: where a live stream without a cursor starts."""
        return int(self._read(_HEAD).scalar_one())

    def page(self, after: int | None, limit: int) -> ChangePage:
        """Up to `limit` changes after position `after` (from the oldest retained without
        one). Raises `CursorExpired` when changes after `after` have been pruned."""
        self._ahead(HOLD)
        return _paged(self._read(_PAGE, after=after, limit=limit + 1), after, limit)


# A CalDAV collection's changes (issue 62; specs/caldav.md, "Sync"): the feed's two arms with
# DAV's own events in them, narrowed to the events of one collection: those recorded in it
# (its list, or the caller's own tasks in no list), and a task's move out of it (its
# `changes` name the list it left). A `sync-collection` token is a position of this feed.
_DAV_OWN = and_(_E.user_id == bindparam(OWNER), or_(of_types(FEED_TYPES), ANY_CHILD_EVENT))
_DAV_SHARED = and_(may_shared(_T, Action.LIST_READ), or_(of_types(CHANGE_TYPES), ANY_CHILD_EVENT))
_COLLECTION = bindparam("collection", type_=BigInteger)
_LISTS = TaskList.__table__  # type: ignore[attr-defined]
_L = _LISTS.c


_NO_LIST_JSON: ColumnElement[Any] = literal_column("'null'::jsonb")


def _moved_out_of(collection: Any) -> ColumnElement[bool]:
    """A task's move out of the collection `collection` names (the old list's id as JSON;
    `_NO_LIST_JSON`: no list), as `ix_task_events_user_id_left_list` (migration 0074) indexes
    it, its predicate stated."""
    left = _E.changes.op("->")(literal_column("'list_id'")).op("->")(literal_column("0"))
    return and_(_E.changes.op("?")(literal_column("'list_id'")), left == collection)


def _in_collection(no_list: bool, collection: Any = _COLLECTION) -> ColumnElement[bool]:
    if no_list:
        return and_(
            _E.user_id == bindparam(OWNER),
            or_(_E.list_id.is_(None), _moved_out_of(_NO_LIST_JSON)),
        )
    return or_(_E.list_id == collection, _moved_out_of(func.to_jsonb(collection, type_=JSONB)))


def collection_head(collection: Any = None) -> ColumnElement[int]:
    """A collection's position for its sync token and `getctag` (issue 70): its latest event
    (DAV's own included, a move out too) below any change in flight (`HOLD` sent ahead), or
    how far pruning went (0 before any). Only that collection's changes move it: a change in
    one list leaves every other list's token as it was. `collection`: the list's id (a bound
    value or a column; None: the caller's tasks in no list). Each arm is a maximum read on its
    own index, from the top: the events recorded in the collection
    (`ix_task_events_user_id_list_id_id`, `ix_task_events_user_id_no_list_id`) and the moves
    out of it (`ix_task_events_user_id_left_list`)."""
    pruned = _PRUNED.scalar_subquery()
    if collection is None:
        arms = [_E.list_id.is_(None), _moved_out_of(_NO_LIST_JSON)]
        own = [
            select(func.max(_E.id)).where(_DAV_OWN, arm, _E.id <= _HORIZON).scalar_subquery()
            for arm in arms
        ]
        return cast(ColumnElement[int], func.greatest(*own, pruned, 0))
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
        for arm in arms
    ]
    return cast(ColumnElement[int], func.greatest(*own, *theirs, pruned, 0))


def _still_there(no_list: bool) -> ColumnElement[bool]:
    """Whether the event a token's position names is still in the collection's feed: a
    position past the feed (a database restored from before it) names none. (0, or how far
    pruning went, names no event and is never past.)"""
    arm = or_(_DAV_OWN, _DAV_SHARED) if not no_list else _DAV_OWN
    return or_(
        _THROUGH.c.through >= _AFTER,
        exists(select(_E.id).where(_E.id == _AFTER, arm, _in_collection(no_list))),
    )


def _listed(lists: Sequence[int]) -> dict[str, int]:
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
    # Whether the caller may read the collection (a list it is no member of: the missing
    # one's 404, read in the same statement as its changes).
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
    """A collection's changes after a position: each event's task and, for a kept object's,
    the name it had (`rows`, in feed order, at most the limit); `head`, the caller's position
    now; `has_more` when there were more; `readable`, whether the caller may read the
    collection; `expired`, whether changes after the position were pruned (the feed cannot
    say what changed since)."""

    rows: Sequence[Any]
    head: int
    has_more: bool
    readable: bool
    expired: bool
    known: bool = True


class CollectionFeed(Scoped):
    """The change feed as `sync-collection` reads it (backend/dav/sync.py)."""

    def heads(self, list_ids: Sequence[int | None]) -> dict[int | None, int]:
        """Each collection's position now (`collection_head`), below any change in flight:
        their sync tokens, in one statement (None: the tasks in no list)."""
        self._ahead(HOLD)
        lists = [each for each in list_ids if each is not None]
        row = self._read(_heads(len(lists), None in list_ids), **_listed(lists)).one()
        found: dict[int | None, Any] = dict(zip(lists, row[: len(lists)], strict=True))
        if None in list_ids:
            found[None] = row[-1]
        return {key: int(value) for key, value in found.items()}

    def since(self, after: int, list_id: int | None, limit: int) -> CollectionChanges:
        """Up to `limit` events of the collection after `after`, with the caller's position
        now and whether it may read the collection, in one statement."""
        self._ahead(HOLD)
        values: dict[str, Any] = {"after": after, "limit": limit + 1}
        if list_id is not None:
            values["collection"] = list_id
        rows = self._read(_COLLECTION_PAGES[list_id is None], **values).all()
        first = rows[0]
        head = int(first.head)
        expired = int(first.through) > after
        found = [row for row in rows if row.id is not None]
        return CollectionChanges(
            found[:limit], head, len(found) > limit, bool(first.readable), expired, first.known
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
# Only delivered (or dead) changes below the user's first pending one: what a user's feed
# retains is always every change after their `through_id`, with no hole.
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
    """Delete the changes older than the retention (and, unless `undelivered`, only those
    delivered or dead), in batches of their own transaction. Returns how many."""
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
