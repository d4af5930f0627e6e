"""Calendar feeds (specs/api-contract.md, "Calendar feeds"): `CalendarFeedService` for their owner,
`CalendarFeedReader` for a fetch by the URL's token (stored as its SHA-256), one message each. The
token is the capability: a fetch reads as its creator, with `GET /api/tasks`'s own listing
statement; a list the creator can no longer read is 404, as an unknown or revoked token is."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import (
    BigInteger,
    BindParameter,
    Integer,
    Text,
    and_,
    bindparam,
    delete,
    exists,
    func,
    literal,
    or_,
    select,
    true,
    union_all,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.sql import visitors

from backend.db.scope import OWNER, Scoped, owned
from backend.errors import LimitReached, NotFound
from backend.models.calendar_feed import (
    FEED_MAX_TASKS,
    FEEDS_PER_USER,
    WINDOW_DAYS_AHEAD,
    WINDOW_DAYS_BACK,
    CalendarFeed,
    CalendarFeedCreate,
    CalendarFeedPublic,
    FeedScope,
)
from backend.models.task import SortOrder, TaskSort
from backend.models.task_list import TaskList
from backend.services.statements.access import Action, may
from backend.services.statements.named_rows import PrivateRows
from backend.services.statements.tokens import token_hash
from backend.services.tasks.task_listing import ID, FilterShape, ListingShape
from backend.services.tasks.task_statements import listing

FEED_NOT_FOUND = "Calendar feed not found"
LIST_NOT_FOUND = "List not found"
TOO_MANY_FEEDS = f"An account has at most {FEEDS_PER_USER} calendar feeds"

_FEEDS = CalendarFeed.__table__  # type: ignore[attr-defined]
_F = _FEEDS.c
_LISTS = TaskList.__table__  # type: ignore[attr-defined]
_L = _LISTS.c
_HASH = bindparam("token_hash", type_=Text)
_FEED_ID = bindparam("feed_id", type_=BigInteger)
_LIST_ID = bindparam("list_id", type_=BigInteger)
_PUBLIC = (_F.id, _F.kind, _F.scope, _F.list_id, _F.created_at, _F.rotated_at)

# A list the caller may read, and how many feeds it has (why a create wrote nothing).
_READABLE = exists(select(_L.id).where(_L.id == _LIST_ID, may(_LISTS, Action.LIST_READ)))
FEED_ROWS = PrivateRows(
    CalendarFeed, noun="calendar feed", plural="calendar feeds", limit=FEEDS_PER_USER
)
_ROOM = FEED_ROWS.room


def _create(scope: FeedScope) -> Any:
    """A new feed of the caller's, while it has room (a `list` feed: of a list it can read)."""
    chosen: Any = select(
        bindparam(OWNER),
        bindparam("kind", type_=Text),
        literal(scope.value, Text),
        _LIST_ID if scope is FeedScope.list else literal(None, BigInteger),
        _HASH,
    ).where(_ROOM)
    if scope is FeedScope.list:
        chosen = chosen.where(_READABLE)
    return (
        pg_insert(CalendarFeed)
        .from_select(["user_id", "kind", "scope", "list_id", "token_hash"], chosen)
        .returning(*_PUBLIC)
    )


_CREATE = {scope: _create(scope) for scope in FeedScope}
_WHY_NOT_CREATED = select(_READABLE.label("readable"), _ROOM.label("room"))
_MINE = owned(select(*_PUBLIC), _F.user_id).order_by(_F.id)
# Sign out everywhere ends every feed of the caller's (issue 61): its URLs are credentials.
_END_ALL = owned(delete(_FEEDS), _F.user_id)
_ROTATE = (
    owned(update(_FEEDS).where(_F.id == _FEED_ID), _F.user_id)
    .values(token_hash=_HASH, rotated_at=func.now())
    .returning(*_PUBLIC)
)


@dataclass(frozen=True)
class NewFeed:
    """A feed as created or rotated, with its token (shown this once)."""

    feed: CalendarFeedPublic
    token: str


class CalendarFeedService(Scoped):
    def create(self, data: CalendarFeedCreate) -> NewFeed:
        token = secrets.token_urlsafe(32)
        values: dict[str, Any] = {"kind": data.kind.value, "token_hash": token_hash(token)}
        if data.list_id is not None:
            values["list_id"] = data.list_id
        rows = self._write(_CREATE[data.scope], last=True, **values)
        if rows:
            return NewFeed(CalendarFeedPublic.model_validate(rows[0]), token)
        why = self._read(_WHY_NOT_CREATED, list_id=data.list_id).one()
        if data.scope is FeedScope.list and not why.readable:
            raise NotFound(LIST_NOT_FOUND)
        raise LimitReached(TOO_MANY_FEEDS)

    def mine(self) -> Sequence[CalendarFeedPublic]:
        """The caller's feeds, oldest first; never a token."""
        return [CalendarFeedPublic.model_validate(row) for row in self._read(_MINE)]

    def rotate(self, feed_id: int) -> NewFeed:
        """A new token for the feed: the old URL is dead from this commit on."""
        token = secrets.token_urlsafe(32)
        rows = self._write(_ROTATE, feed_id=feed_id, token_hash=token_hash(token), last=True)
        if not rows:
            raise NotFound(FEED_NOT_FOUND)
        return NewFeed(CalendarFeedPublic.model_validate(rows[0]), token)

    def end_all(self) -> None:
        """Revoke the caller's feeds (logout-all), with the request's next statement."""
        self._ahead(_END_ALL)

    def revoke(self, feed_id: int) -> None:
        if not self._write(FEED_ROWS.remove, row_id=feed_id, last=True):
            raise FEED_ROWS.not_found()


# A fetch: the feed's creator stands in for the caller, its list for a listing's `list_id`.
def _of_feed(column: Any) -> Any:
    return select(column).where(_F.token_hash == _HASH).scalar_subquery()


_AS_FEED = {OWNER: _of_feed(_F.user_id), "list_id": _of_feed(_F.list_id)}


def _as_feed(statement: Any) -> Any:
    """`statement` read as the feed's creator (its `:owner` and `:list_id` binds replaced)."""

    def replace(element: Any) -> Any:
        if isinstance(element, BindParameter) and element.key in _AS_FEED:
            return _AS_FEED[element.key]
        return None

    return visitors.replacement_traverse(statement, {}, replace)  # type: ignore[call-overload]


# A `list` feed's list as its creator reads it now (NULL: gone or unreadable, the fetch's 404).
_LIST_NAME = _as_feed(
    select(_L.name).where(_L.id == bindparam("list_id"), may(_LISTS, Action.LIST_READ))
).scalar_subquery()
# A fetch that reads a feed (a 200 or 304): an `all` feed, or a `list` feed its creator may read.
_LIVE = and_(_F.token_hash == _HASH, or_(_F.scope == FeedScope.all.value, _LIST_NAME.is_not(None)))
# A fetch's count against its token's limit, only where `_LIVE` holds (so no count says a token once
# existed), riding with the fetch (`UnitOfWork._feed_entry`, binds `c_`).
FEED_COUNT = (
    select(
        func.task_api_count(
            bindparam("key", type_=Text),
            bindparam("window", type_=Integer),
            bindparam("limit", type_=Integer),
        )
    )
    .select_from(_FEEDS)
    .where(_LIVE)
)


def _window_listing(list_id: str | None) -> Any:
    """`GET /api/tasks?due_after=&due_before=&sort=due_date` (and `list_id`), every status."""
    filters = FilterShape(due_before=True, due_after=True, list_id=list_id)
    return listing(ListingShape(filters, TaskSort.due_date, SortOrder.asc, None, False))


@cache
def _fetch() -> Any:
    """The feed by its token, its list's name as its creator reads it, its tasks in the window."""
    scope = _of_feed(_F.scope)
    every = _as_feed(_window_listing(None)).subquery("every")
    one = _as_feed(_window_listing(ID)).subquery("one")
    tasks = union_all(
        select(every).where(scope == FeedScope.all.value),
        select(one).where(scope == FeedScope.list.value),
    ).subquery("tasks")
    return (
        select(
            _F.id.label("feed_id"),
            _F.kind.label("feed_kind"),
            _F.scope.label("feed_scope"),
            func.coalesce(_F.rotated_at, _F.created_at).label("feed_made_at"),
            _LIST_NAME.label("feed_list_name"),
            *tasks.c,
        )
        .select_from(_FEEDS.outerjoin(tasks, true()))
        .where(_F.token_hash == _HASH)
        .order_by(tasks.c.due_date, tasks.c.id)
    )


@dataclass(frozen=True)
class FeedRead:
    """What one fetch read: the feed and its tasks (soonest first)."""

    feed_id: int
    kind: str
    name: str
    tasks: Sequence[Any]
    # The newest change among its tasks (none: when the feed was made).
    last_modified: datetime


class CalendarFeedReader(Scoped):
    """Reads a feed by its token, as its creator (no caller: `Scoped`'s `owner` is unused)."""

    def read(self, token: str, now: datetime, all_name: str) -> FeedRead:
        """The feed of `token` and its tasks due in the window around `now`; else `NotFound`."""
        rows = self._read(
            _fetch(),
            token_hash=token_hash(token),
            due_after=now - timedelta(days=WINDOW_DAYS_BACK),
            due_before=now + timedelta(days=WINDOW_DAYS_AHEAD),
            limit=FEED_MAX_TASKS,
        )
        if not rows:
            raise NotFound(FEED_NOT_FOUND)
        first = rows[0]
        if first.feed_scope == FeedScope.list.value and first.feed_list_name is None:
            raise NotFound(FEED_NOT_FOUND)
        name = first.feed_list_name or all_name
        tasks = [row for row in rows if row.id is not None]
        changed = max((row.updated_at for row in tasks), default=first.feed_made_at)
        return FeedRead(first.feed_id, first.feed_kind, name, tasks, changed)
