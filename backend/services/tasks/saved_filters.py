"""Saved filters (migration 0047): the caller's own named rows, and the query a listing applying one
needs (`applied`: from this process's cache, else read). The listing's statement holds only while
the stored query is that one, so a filter changed meanwhile is never applied stale."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import BigInteger, Row, bindparam, delete, func, select
from sqlalchemy.dialects.postgresql import ARRAY, JSONB

from backend.db.scope import owned
from backend.models.names import name_key
from backend.models.saved_filter import FILTERS_PER_USER, SavedFilter
from backend.services.statements.named_rows import NAME_KEY, ROW_ID, NamedRows, NamedRowService

_ROWS = NamedRows(SavedFilter, noun="filter", plural="filters", limit=FILTERS_PER_USER)
_C = _ROWS.table.c
_BY_NAME = owned(select(*_ROWS.view).where(_C.name_key == NAME_KEY), _C.user_id)
# The caller's filters of those ids (an import's undo: the filters it created).
_REMOVE_MANY = owned(
    delete(_ROWS.table).where(_C.id == func.any(bindparam("ids", type_=ARRAY(BigInteger)))),
    _C.user_id,
)
# The filter still holds the query a listing applied.
_CURRENT = owned(
    select(_C.id).where(_C.id == ROW_ID, _C.query == bindparam("query", type_=JSONB)), _C.user_id
)


@dataclass(frozen=True)
class AppliedFilter:
    """A filter as a listing applies it: its id, stored query and name key."""

    id: int
    query: Mapping[str, Any]
    name_key: str | None = None


class SavedQueries:
    """The filters this process has read, by (user, id); past `LIMIT` entries it forgets all."""

    LIMIT = 100_000

    def __init__(self) -> None:
        self._seen: dict[tuple[str, int], AppliedFilter] = {}
        self._ids: dict[tuple[str, str], int] = {}  # (user, name key) -> id, as last read

    def get(self, user_id: str, filter_id: int) -> AppliedFilter | None:
        return self._seen.get((user_id, filter_id))

    def named(self, user_id: str, key: str) -> AppliedFilter | None:
        """The filter this process last read by that name (renamed since: `filter_held`)."""
        filter_id = self._ids.get((user_id, key))
        return None if filter_id is None else self._seen.get((user_id, filter_id))

    def saw(self, user_id: str, row: Any) -> None:
        if len(self._seen) >= self.LIMIT or len(self._ids) >= self.LIMIT:  # renames add names
            self._seen.clear()
            self._ids.clear()
        self._seen[(user_id, row.id)] = AppliedFilter(row.id, row.query)
        self._ids[(user_id, name_key(row.name))] = row.id

    def forget(self, user_id: str, filter_id: int) -> None:
        self._seen.pop((user_id, filter_id), None)


saved_queries = SavedQueries()


class SavedFilterService(NamedRowService):
    rows = _ROWS

    def all(self) -> Sequence[Row[Any]]:
        rows = super().all()
        for row in rows:
            saved_queries.saw(self.user_id, row)
        return rows

    def get(self, row_id: int) -> Row[Any]:
        return self._seen(super().get(row_id))

    def named(self, name: str) -> Row[Any]:
        """The caller's filter by its name (case ignored): what an agent names it by."""
        row = self._read(_BY_NAME, name_key=name_key(name)).first()
        if row is None:
            raise self.rows.not_found()
        return self._seen(row)

    def create(self, data: Any) -> Row[Any]:
        return self._seen(super().create(data))

    def update(self, row_id: int, data: Any) -> Row[Any]:
        return self._seen(super().update(row_id, data))

    def delete(self, row_id: int) -> None:
        saved_queries.forget(self.user_id, row_id)
        super().delete(row_id)

    def delete_many_ahead(self, row_ids: Sequence[int]) -> None:
        """Delete those of the caller's filters `row_ids` still there, in the message of the
        next statement (an import's undo)."""
        for row_id in row_ids:
            saved_queries.forget(self.user_id, row_id)
        if row_ids:
            self._ahead(_REMOVE_MANY, ids=list(row_ids))

    def applied(self, filter_id: int | str, *, fresh: bool = False) -> tuple[AppliedFilter, bool]:
        """The filter a listing applies (by id or name), and whether read now; else NotFound."""
        if isinstance(filter_id, str):
            key = name_key(filter_id)
            known = None if fresh else saved_queries.named(self.user_id, key)
            if known is not None:
                return AppliedFilter(known.id, known.query, key), False
            row = self.named(filter_id)
            return AppliedFilter(row.id, row.query, key), True
        if not fresh:
            seen = saved_queries.get(self.user_id, filter_id)
            if seen is not None:
                return seen, False
            # Not read here yet: all the caller's filters in the one round trip (a few rows).
            found = next((row for row in self.all() if row.id == filter_id), None)
            if found is None:
                raise self.rows.not_found()
            return AppliedFilter(found.id, found.query), True
        saved_queries.forget(self.user_id, filter_id)  # kept again once read (`get`)
        row = self.get(filter_id)
        return AppliedFilter(row.id, row.query), True

    def still_current(self, applied: AppliedFilter) -> bool:
        """Whether the filter still holds the query a listing applied (an empty page asks)."""
        found = self._read(_CURRENT, row_id=applied.id, query=dict(applied.query)).first()
        if found is None:
            saved_queries.forget(self.user_id, applied.id)
        return found is not None

    def _seen(self, row: Any) -> Row[Any]:
        saved_queries.saw(self.user_id, row)
        return cast(Row[Any], row)
