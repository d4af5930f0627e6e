"""Saved filters (`saved_filters`, migration 0047; specs/api-contract.md, "Saved filters"): the
table, its row, its limits and the name's type.

A filter's `query` holds parameters of `GET /api/tasks`, which are declared in the contracts
layer (above this one): the request and response schemas, which type the query by the
listing's own declaration, are `backend/contracts/saved_filters.py`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Protocol

from pydantic import StringConstraints
from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    ForeignKey,
    Identity,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field as SQLField
from sqlmodel import SQLModel

from backend.models.text import SINGLE_LINE_RULE, SingleLineText
from backend.models.types import TASK_ID_MAX

# A create past it: 422 LIMIT_REACHED. A user's writes are serialized by its change lock, so
# the count the insert reads is exact.
FILTERS_PER_USER = 100
FILTER_NAME_MAX_LENGTH = 100
# Room for every listing parameter at its longest (a 200-character search, ten tags...).
FILTER_QUERY_MAX_LENGTH = 4000
FILTER_ID_MAX = TASK_ID_MAX

FilterName = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=FILTER_NAME_MAX_LENGTH),
    SingleLineText,
]
NAME_DOC = (
    f"1-{FILTER_NAME_MAX_LENGTH} characters, trimmed; {SINGLE_LINE_RULE}. Unique among your "
    "saved filters, ignoring case."
)
QUERY_DOC = (
    "Parameters of `GET /api/tasks` by their query-string names (`status`, `priority`, `tag`, "
    "`due_before`, `due_after`, `overdue`, `q`, `updated_since`, `recurring`, `list_id`, "
    "`parent_id`, `assignee`, `sort`, `order`, `limit`, `include_total`), as JSON values: "
    "validated by the listing's own rules when saved; only the ones given are stored. `{}`: "
    "every task."
)


class SavedFilter(SQLModel, table=True):
    __tablename__ = "saved_filters"
    __table_args__ = (
        UniqueConstraint("user_id", "id", name="uq_saved_filters_user_id_id"),
        UniqueConstraint("user_id", "name_key", name="uq_saved_filters_user_id_name_key"),
    )

    id: int | None = SQLField(
        default=None, sa_column=Column(BigInteger, Identity(always=True), primary_key=True)
    )
    user_id: str = SQLField(
        sa_column=Column(Text, ForeignKey("users.id", ondelete="CASCADE"), nullable=False)
    )
    name: str = SQLField(sa_column=Column(Text, nullable=False))
    # `task_list.name_key(name)`: what makes two names the same name.
    name_key: str = SQLField(sa_column=Column(Text, nullable=False))
    query: dict[str, Any] = SQLField(
        default_factory=dict,
        sa_column=Column(JSONB, nullable=False, server_default=text("'{}'::jsonb")),
    )
    # Goes up with every change: a listing applying the filter names the version it read.
    version: int = SQLField(
        default=1, sa_column=Column(BigInteger, nullable=False, server_default=text("1"))
    )
    created_at: datetime | None = SQLField(
        default=None,
        sa_column=Column(DateTime(timezone=True), nullable=False, server_default=func.now()),
    )
    updated_at: datetime | None = SQLField(
        default=None,
        sa_column=Column(DateTime(timezone=True), nullable=False, server_default=func.now()),
    )


class FilterRow(Protocol):
    @property
    def id(self) -> int: ...
    @property
    def name(self) -> str: ...
    @property
    def query(self) -> dict[str, Any]: ...
    @property
    def version(self) -> int: ...
    @property
    def created_at(self) -> datetime: ...
    @property
    def updated_at(self) -> datetime: ...
