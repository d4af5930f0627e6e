"""Private rows (`PrivateRows`: at most `limit` per user) and named rows (`NamedRows`: a name unique
per user ignoring case, `name_key`), their statements and errors built once; the unique key is the
arbiter of a free name. `NamedRowService` is a private table's whole service."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import cache
from typing import Any, ClassVar

from pydantic import BaseModel
from sqlalchemy import BigInteger, Row, Text, bindparam, delete, exists, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlmodel import SQLModel

from backend.db.scope import OWNER, Scoped, owned
from backend.db.sender import Rows
from backend.errors import AppError, Conflict, LimitReached, NotFound
from backend.models.names import name_key

NAME_KEY = bindparam("name_key", type_=Text)
ROW_ID = bindparam("row_id", type_=BigInteger)
# Server-owned columns a private row's answer leaves out.
_HIDDEN = frozenset({"user_id", "name_key"})


class PrivateRows:
    """A per-user table's statements and errors, at most `limit` rows a user."""

    def __init__(self, table: type[SQLModel], *, noun: str, plural: str, limit: int) -> None:
        self.table: Any = table.__table__  # type: ignore[attr-defined]
        self.noun, self.plural, self.limit = noun, plural, limit
        c = self.table.c
        # The caller has room for one more row: a create's condition.
        mine = owned(select(func.count()).select_from(self.table), c.user_id)
        self.room = mine.scalar_subquery() < limit
        self.remove = owned(delete(self.table), c.user_id).where(c.id == ROW_ID).returning(c.id)

    def not_found(self) -> NotFound:
        return NotFound(f"{self.noun.capitalize()} not found")

    def too_many(self, count: int) -> LimitReached:
        return LimitReached(f"You have {count} {self.plural}, the most there can be ({self.limit})")


class NamedRows(PrivateRows):
    """`PrivateRows` with a name, unique per user ignoring case."""

    def __init__(self, table: type[SQLModel], *, noun: str, plural: str, limit: int) -> None:
        super().__init__(table, noun=noun, plural=plural, limit=limit)
        c, other = self.table.c, self.table.alias("other")
        # Another of the owner's rows holds the name being written: a rename's condition.
        self.taken = exists(
            owned(select(other.c.id), other.c.user_id).where(
                other.c.user_id == c.user_id, other.c.name_key == NAME_KEY, other.c.id != c.id
            )
        ).correlate(self.table)
        # Why a create inserted nothing: the caller's row count, and whether the name is taken.
        self.create_refusal = owned(
            select(func.count(), func.count().filter(c.name_key == NAME_KEY)), c.user_id
        )
        self.view = tuple(column for column in c if column.name not in _HIDDEN)
        # A private resource's statements (the caller's own rows only).
        mine = owned(select(*self.view), c.user_id)
        self.all = mine.order_by(c.name_key, c.id)
        self.one = mine.where(c.id == ROW_ID)
        # Why a change matched nothing: no row (no such row of the caller's), or the name.
        self.change_refusal = owned(select(self.taken), c.user_id).where(c.id == ROW_ID)

    def create(self, values: Mapping[str, Any], returning: Sequence[Any]) -> Any:
        """An INSERT of the caller's row named `:name` (`:name_key` too) with `values` (column ->
        expression), inserting nothing at `limit` rows or when the name is taken."""
        chosen = select(bindparam(OWNER), bindparam("name", type_=Text), NAME_KEY, *values.values())
        return (
            pg_insert(self.table)
            .from_select(
                ["user_id", "name", "name_key", *values],
                owned(chosen.select_from(self.table), self.table.c.user_id).having(
                    func.count() < self.limit
                ),
            )
            .on_conflict_do_nothing(index_elements=["user_id", "name_key"])
            .returning(*returning)
        )

    def refused_create(self, read: Callable[..., Rows], name: str) -> AppError:
        """Why a create inserted nothing (read with the service's `Scoped._read`)."""
        count, taken = tuple(read(self.create_refusal, name_key=name_key(name)).one())
        return self.name_taken(name) if taken else self.too_many(count)

    def name_taken(self, name: str) -> Conflict:
        """What a second row by `name` is told (also the OpenAPI example's body)."""
        message = f'You have a {self.noun} named "{name}" already (names ignore case)'
        return Conflict.at("body.name", message)

    @cache  # noqa: B019
    def insert(self, columns: tuple[str, ...]) -> Any:
        """`create` binding each column by its name (a private row's request body)."""
        values = {name: bindparam(name, type_=self.table.c[name].type) for name in columns}
        return self.create(values, self.view)

    @cache  # noqa: B019
    def change(self, columns: tuple[str, ...]) -> Any:
        """An UPDATE of row `:row_id` setting `columns` (a taken `name` refused)."""
        c = self.table.c
        values: dict[str, Any] = {name: bindparam(name, type_=c[name].type) for name in columns}
        conditions = [c.id == ROW_ID]
        if "name" in columns:
            values["name_key"] = NAME_KEY
            conditions.append(~self.taken)
        return (
            owned(update(self.table), c.user_id)
            .where(*conditions)
            .values(**values, updated_at=func.now())
            .returning(*self.view)
        )


class NamedRowService(Scoped):
    """A private resource of named, limited rows: a subclass names its `rows`."""

    rows: ClassVar[NamedRows]

    def all(self) -> Sequence[Row[Any]]:
        """Every row of the caller's (at most `limit`: one page), by name."""
        return self._read(self.rows.all).all()

    def get(self, row_id: int) -> Row[Any]:
        row = self._read(self.rows.one, row_id=row_id).first()
        if row is None:
            raise self.rows.not_found()
        return row

    def create(self, data: BaseModel) -> Row[Any]:
        values = data.model_dump(mode="json")
        name = values.pop("name")
        statement = self.rows.insert(tuple(values))
        rows = self._write(statement, name=name, name_key=name_key(name), **values, last=True)
        if rows:
            return rows[0]
        raise self.rows.refused_create(self._read, name)

    def update(self, row_id: int, data: BaseModel) -> Row[Any]:
        """Change the fields sent (`exclude_unset`)."""
        values = data.model_dump(mode="json", exclude_unset=True)
        key = name_key(values["name"]) if "name" in values else None
        statement = self.rows.change(tuple(values))
        binds = {**values, "name_key": key} if key is not None else values
        rows = self._write(statement, row_id=row_id, **binds, last=True)
        if rows:
            return rows[0]
        if self._read(self.rows.change_refusal, row_id=row_id, name_key=key or "").first() is None:
            raise self.rows.not_found()
        raise self.rows.name_taken(values["name"])

    def delete(self, row_id: int) -> None:
        if not self._write(self.rows.remove, row_id=row_id, last=True):
            raise self.rows.not_found()
