"""The columns most tables share, declared once (`id_column`, `user_id_column`, `now_column`);
`column` declares any other (`name: str = column(Text, nullable=False)`)."""

from __future__ import annotations

from typing import Any

from pydantic_core import PydanticUndefined
from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    ForeignKey,
    ForeignKeyConstraint,
    Identity,
    Text,
    func,
)
from sqlmodel import Field

# `TIMESTAMPTZ`.
INSTANT = DateTime(timezone=True)


def column(
    *args: Any, default: Any = PydanticUndefined, default_factory: Any = None, **kwargs: Any
) -> Any:
    """A field that is `Column(*args, **kwargs)`; without a default the model requires it."""
    return Field(default, default_factory=default_factory, sa_column=Column(*args, **kwargs))


def id_column() -> Any:
    """`id BIGINT GENERATED ALWAYS AS IDENTITY`, the primary key."""
    return column(BigInteger, Identity(always=True), primary_key=True, default=None)


def user_id_column(**options: Any) -> Any:
    """`user_id TEXT NOT NULL`, a key to `users` that deletes the row with its account."""
    return column(Text, ForeignKey("users.id", ondelete="CASCADE"), nullable=False, **options)


def now_column() -> Any:
    """`TIMESTAMPTZ NOT NULL DEFAULT now()`: a moment the database writes."""
    return column(INSTANT, nullable=False, server_default=func.now(), default=None)


def same_user_key(table: str, ref: str, target: str, **options: Any) -> ForeignKeyConstraint:
    """`table (user_id, ref)` -> `target (user_id, id)`, a same-user reference (data-model.md)."""
    return ForeignKeyConstraint(
        ["user_id", ref],
        [f"{target}.user_id", f"{target}.id"],
        ondelete="CASCADE",
        name=f"fk_{table}_user_id_{ref}_{target}",
        **options,
    )


def key_to_task(table: str, **options: Any) -> ForeignKeyConstraint:
    """A task's child's key to its task: its rows follow the task through a handover."""
    return same_user_key(table, "task_id", "tasks", onupdate="CASCADE", **options)


def key_to_list(table: str) -> ForeignKeyConstraint:
    """The row's list, in the list owner's space: a transfer carries the row along."""
    return same_user_key(table, "list_id", "task_lists", onupdate="CASCADE")
