"""Saved filters (`saved_filters`, migration 0047): the caller's own, private rows.

Every statement is built with `owned` and sent with `Scoped._read` / `_write`; each request is
one message, a write committing itself in it (`last=True`). A create inserts only under the
limit and with a free name (the unique key on `name_key` is the arbiter: nothing inserted,
nothing raised); a write that matched nothing reads why (only the refusal pays that round
trip).

A listing that applies a filter (`GET /api/tasks?filter=`) needs the filter's query before it
builds its statement, whose shape the query decides. `applied` gives it from this process's
`saved_queries` when it has read that version before (no round trip), else reads it; the
listing's statement then holds only while the filter still has that version
(`task_listing.TaskFilters.saved`), so a filter changed or deleted meanwhile (by another
replica too) is never applied stale: its page comes back empty and `still_current` says why.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn, cast

from sqlalchemy import BigInteger, Text, bindparam, delete, exists, func, select, update
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import insert as pg_insert

from backend.db.scope import OWNER, Scoped, owned
from backend.errors import Conflict, LimitReached, NotFound
from backend.models.saved_filter import FILTERS_PER_USER, FilterRow, SavedFilter
from backend.models.task_list import name_key

FILTER_NOT_FOUND = "Saved filter not found"
TOO_MANY_FILTERS = f"You have {FILTERS_PER_USER} saved filters, the most there can be"

_TABLE = SavedFilter.__table__  # type: ignore[attr-defined]
_F = _TABLE.c
_OTHER = _TABLE.alias("other")
_ID = bindparam("filter_id", type_=BigInteger)
_NAME_KEY = bindparam("name_key", type_=Text)
_VIEW = (_F.id, _F.name, _F.query, _F.version, _F.created_at, _F.updated_at)

_ALL = owned(select(*_VIEW), _F.user_id).order_by(_F.name_key, _F.id)
_GET = owned(select(*_VIEW).where(_F.id == _ID), _F.user_id)
_BY_NAME = owned(select(*_VIEW).where(_F.name_key == _NAME_KEY), _F.user_id)
_CREATE = (
    pg_insert(SavedFilter)
    .from_select(
        ["user_id", "name", "name_key", "query"],
        owned(
            select(
                bindparam(OWNER),
                bindparam("name", type_=Text),
                _NAME_KEY,
                bindparam("query", type_=JSONB),
            ),
            _F.user_id,
        ).having(func.count() < FILTERS_PER_USER),
    )
    .on_conflict_do_nothing(index_elements=["user_id", "name_key"])
    .returning(*_VIEW)
)
# Why a create inserted nothing: whether the name is taken (else the limit was reached).
_NAME_USED = owned(select(_F.id).where(_F.name_key == _NAME_KEY), _F.user_id)
# Another filter of the caller's has the name being written to this one.
_NAME_TAKEN = exists(
    owned(select(_OTHER.c.id), _OTHER.c.user_id).where(
        _OTHER.c.name_key == _NAME_KEY, _OTHER.c.id != _F.id
    )
).correlate(_TABLE)
_UPDATE_REFUSAL = owned(select(_NAME_TAKEN).where(_F.id == _ID), _F.user_id)
_DELETE = owned(delete(SavedFilter), _F.user_id).where(_F.id == _ID).returning(*_VIEW)
_CURRENT = owned(
    select(_F.id).where(_F.id == _ID, _F.version == bindparam("filter_version", BigInteger)),
    _F.user_id,
)


@dataclass(frozen=True)
class AppliedFilter:
    """A filter as a listing applies it: its query (the stored JSON object), at a version."""

    id: int
    version: int
    query: Mapping[str, Any]


class SavedQueries:
    """The filters this process has read, by (user, id), at the version read: a listing that
    applies one sends its statement at once, naming that version (the statement matches
    nothing if it is no longer current). Bounded as `task_listing.MemberPages` is."""

    LIMIT = 100_000

    def __init__(self) -> None:
        self._seen: dict[tuple[str, int], AppliedFilter] = {}

    def get(self, user_id: str, filter_id: int) -> AppliedFilter | None:
        return self._seen.get((user_id, filter_id))

    def saw(self, user_id: str, row: FilterRow) -> None:
        if len(self._seen) >= self.LIMIT:
            self._seen.clear()
        self._seen[(user_id, row.id)] = AppliedFilter(row.id, row.version, row.query)

    def forget(self, user_id: str, filter_id: int) -> None:
        self._seen.pop((user_id, filter_id), None)


saved_queries = SavedQueries()


class SavedFilterService(Scoped):
    def all(self) -> Sequence[FilterRow]:
        """Every saved filter of the caller's (at most FILTERS_PER_USER), by name."""
        rows = cast(Sequence[FilterRow], self._read(_ALL).all())
        for row in rows:
            saved_queries.saw(self.user_id, row)
        return rows

    def get(self, filter_id: int) -> FilterRow:
        return self._seen(self._read(_GET, filter_id=filter_id).first())

    def named(self, name: str) -> FilterRow:
        """The caller's filter by its name (case ignored): what an agent names it by."""
        return self._seen(self._read(_BY_NAME, name_key=name_key(name)).first())

    def create(self, name: str, query: Mapping[str, Any]) -> FilterRow:
        key = name_key(name)
        rows = self._write(_CREATE, name=name, name_key=key, query=dict(query), last=True)
        if rows:
            return self._seen(rows[0])
        if self._read(_NAME_USED, name_key=key).first() is not None:
            raise name_taken(name)
        raise LimitReached(TOO_MANY_FILTERS)

    def update(
        self, filter_id: int, name: str | None = None, query: Mapping[str, Any] | None = None
    ) -> FilterRow:
        """Rename it and/or change its query (None: unchanged); its version goes up."""
        values: dict[str, Any] = {"version": _F.version + 1, "updated_at": func.now()}
        binds: dict[str, Any] = {"filter_id": filter_id}
        conditions: list[Any] = [_F.id == _ID]
        if name is not None:
            values.update(name=bindparam("name", type_=Text), name_key=_NAME_KEY)
            binds.update(name=name, name_key=name_key(name))
            conditions.append(~_NAME_TAKEN)
        if query is not None:
            values["query"] = bindparam("query", type_=JSONB)
            binds["query"] = dict(query)
        statement = (
            owned(update(SavedFilter), _F.user_id)
            .where(*conditions)
            .values(**values)
            .returning(*_VIEW)
        )
        rows = self._write(statement, **binds, last=True)
        if rows:
            return self._seen(rows[0])
        self._refuse(filter_id, name)

    def delete(self, filter_id: int) -> FilterRow:
        """Delete it; the filter as it was."""
        saved_queries.forget(self.user_id, filter_id)
        rows = self._write(_DELETE, filter_id=filter_id, last=True)
        if not rows:
            raise NotFound(FILTER_NOT_FOUND)
        return cast(FilterRow, rows[0])

    def applied(self, filter_id: int, *, fresh: bool = False) -> tuple[AppliedFilter, bool]:
        """The filter a listing applies, and whether it was read now (`fresh`: read it
        whatever this process saw). Another user's or a missing filter: NotFound."""
        if not fresh:
            seen = saved_queries.get(self.user_id, filter_id)
            if seen is not None:
                return seen, False
        row = self.get(filter_id)
        return AppliedFilter(row.id, row.version, row.query), True

    def still_current(self, applied: AppliedFilter) -> bool:
        """Whether the filter still has the version a listing applied (an empty page asks)."""
        current = self._read(_CURRENT, filter_id=applied.id, filter_version=applied.version)
        if current.first() is None:
            saved_queries.forget(self.user_id, applied.id)
            return False
        return True

    def _seen(self, row: Any) -> FilterRow:
        if row is None:
            raise NotFound(FILTER_NOT_FOUND)
        saved_queries.saw(self.user_id, row)
        return cast(FilterRow, row)

    def _refuse(self, filter_id: int, name: str | None) -> NoReturn:
        taken = self._read(_UPDATE_REFUSAL, filter_id=filter_id, name_key=name_key(name or ""))
        found = taken.first()
        if found is None:
            raise NotFound(FILTER_NOT_FOUND)
        if found[0] and name is not None:
            raise name_taken(name)
        raise Conflict("The saved filter changed while it was written; retry")  # pragma: no cover


def name_taken(name: str) -> Conflict:
    """What a second filter by `name` is told (also the OpenAPI example's body)."""
    return Conflict.at(
        "body.name", f'You have a saved filter named "{name}" already (names ignore case)'
    )
