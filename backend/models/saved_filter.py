"""Saved filters (specs/api-contract.md, "Saved filters"): the table and its limits; the
schemas type `query` by the listing's declaration, so they are contracts/saved_filters.py.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Text, UniqueConstraint, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import SQLModel

from backend.models.columns import column, id_column, now_column, user_id_column
from backend.models.names import name_doc
from backend.models.types import TASK_ID_MAX

# A create past it: 422 LIMIT_REACHED (services/statements/named_rows.py).
FILTERS_PER_USER = 100
FILTER_ID_MAX = TASK_ID_MAX
NAME_DOC = name_doc("saved filters")
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

    id: int | None = id_column()
    user_id: str = user_id_column()
    name: str = column(Text, nullable=False)
    name_key: str = column(Text, nullable=False)
    # The listing parameters given (REST's names, JSON values), validated before written.
    query: dict[str, Any] = column(
        JSONB, nullable=False, server_default=text("'{}'::jsonb"), default_factory=dict
    )
    created_at: datetime | None = now_column()
    updated_at: datetime | None = now_column()
