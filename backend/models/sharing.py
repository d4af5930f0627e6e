"""Shared lists (specs/api-contract.md, "Shared lists"): roles, memberships, invitations and
comments; every row is in its list owner's space, reached by others through `scope.access`."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator
from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, Text, UniqueConstraint, text
from sqlmodel import SQLModel

from backend.models.columns import INSTANT, column, id_column, key_to_list, key_to_task, now_column
from backend.models.common import StorableText, UtcDatetime
from backend.models.references import MEMBERS, Action, Reference, not_a_reference
from backend.models.task_children import TaskChild
from backend.models.text import MultiLineVisibleText
from backend.models.user import USER_ID_MAX_LENGTH, Email


class Role(StrEnum):
    """What a caller may do with a list, each role including the ones before it."""

    viewer = "viewer"
    commenter = "commenter"
    editor = "editor"
    admin = "admin"
    owner = "owner"

    @property
    def rank(self) -> int:
        return _RANKS[self]

    def at_least(self) -> tuple[str, ...]:
        """The stored member roles that include this one."""
        return tuple(r.value for r in Role if r is not Role.owner and r.rank >= self.rank)


_RANKS = {role: rank for rank, role in enumerate(Role)}
# A role a membership or an invitation may hold (the owner is the list's `user_id`).
MEMBER_ROLES = tuple(r.value for r in Role if r is not Role.owner)
_ROLE_CHECK = "role IN (" + ", ".join(f"'{r}'" for r in MEMBER_ROLES) + ")"

# Invitations last this long unless the request says less (`expires_in_days`).
INVITATION_DAYS = 7
COMMENT_MAX_LENGTH = 10_000
# The most comments a task holds; a comment beyond it is 422 LIMIT_REACHED.
COMMENTS_PER_TASK = 1000
MEMBERS_PER_LIST = 100


class ListMember(SQLModel, table=True):
    __tablename__ = "list_members"
    __table_args__ = (
        key_to_list("list_members"),
        CheckConstraint(_ROLE_CHECK, name="ck_list_members_role"),
        CheckConstraint("member_id <> user_id", name="ck_list_members_not_owner"),
        Index(
            "ix_list_members_member_id_list_id",
            "member_id",
            "list_id",
            postgresql_include=["role", "user_id"],
        ),
    )

    user_id: str = column(Text, nullable=False)
    list_id: int = column(BigInteger, primary_key=True)
    member_id: str = column(
        Text,
        ForeignKey("users.id", ondelete="CASCADE"),
        primary_key=True,
        info=not_a_reference(
            "an account, not a row of the owner's: the member (the caller, when it accepts)"
        ),
    )
    role: str = column(Text, nullable=False)
    joined_at: datetime | None = now_column()


class ListInvitation(SQLModel, table=True):
    __tablename__ = "list_invitations"
    __table_args__ = (
        key_to_list("list_invitations"),
        UniqueConstraint("token_hash", name="uq_list_invitations_token_hash"),
        CheckConstraint(_ROLE_CHECK, name="ck_list_invitations_role"),
        CheckConstraint(
            "char_length(email) BETWEEN 3 AND 320", name="ck_list_invitations_email_length"
        ),
        Index(
            "uq_list_invitations_list_id_email",
            "list_id",
            text("lower(email)"),
            unique=True,
            postgresql_where=text("email IS NOT NULL"),
        ),
    )

    id: int | None = id_column()
    user_id: str = column(Text, nullable=False)
    list_id: int = column(BigInteger, nullable=False)
    role: str = column(Text, nullable=False)
    email: str | None = column(Text, default=None)
    # SHA-256 of the token, hex: the token itself is shown once and never stored.
    token_hash: str = column(Text, nullable=False)
    invited_by: str = column(Text, nullable=False)
    created_at: datetime | None = now_column()
    expires_at: datetime = column(INSTANT, nullable=False)


class TaskComment(SQLModel, table=True):
    __tablename__ = "task_comments"
    __table_args__ = (
        key_to_task("task_comments"),
        CheckConstraint(
            f"char_length(body) BETWEEN 1 AND {COMMENT_MAX_LENGTH}",
            name="ck_task_comments_body_length",
        ),
        Index("ix_task_comments_task_id_id", "task_id", "id"),
    )

    id: int | None = id_column()
    user_id: str = column(Text, nullable=False)
    task_id: int = column(BigInteger, nullable=False)
    # The task's list, kept in step by `tasks_move_children` (the access predicate reads it).
    list_id: int | None = column(BigInteger, default=None)
    # NULL once the author's account is deleted: the comment stays.
    author_id: str | None = column(Text, ForeignKey("users.id", ondelete="SET NULL"), default=None)
    body: str = column(Text, nullable=False)
    created_at: datetime | None = now_column()
    updated_at: datetime | None = now_column()


# --- Request and response schemas ---

MemberRole = Annotated[
    Literal[Role.viewer, Role.commenter, Role.editor, Role.admin],
    Field(
        description="`viewer`, `commenter`, `editor` or `admin` (an owner is made by a "
        "transfer, `POST /api/lists/{list_id}/transfer`)."
    ),
]
CommentBody = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=COMMENT_MAX_LENGTH),
    MultiLineVisibleText,
]


class MemberPublic(BaseModel):
    """A member of a list (its owner included, with the role `owner`)."""

    model_config = ConfigDict(from_attributes=True)

    user_id: str = Field(examples=["5f0c6e8e-3d5c-4d7e-9a53-0c1b2f6f1e9a"])
    role: Role = Field(examples=["editor"])
    name: str | None = Field(examples=["Ada"])
    email: str | None = Field(examples=["ada@example.com"])
    joined_at: UtcDatetime = Field(examples=["2026-11-25T17:00:00Z"])


class MemberUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"role": "editor"}]})

    role: MemberRole


class Transfer(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user_id: Annotated[
        str,
        StringConstraints(min_length=1, max_length=USER_ID_MAX_LENGTH),
        StorableText,
        Reference(MEMBERS, Action.LIST_TRANSFER),
    ] = Field(
        description="A member of the list: it becomes the owner, the owner an admin.",
        examples=["5f0c6e8e-3d5c-4d7e-9a53-0c1b2f6f1e9a"],
    )


class InvitationCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: MemberRole
    email: Email | None = Field(
        default=None,
        description="Who may accept it (case ignored); none: whoever holds the token. The "
        "answer is the same whether or not the address has an account.",
        examples=["ada@example.com"],
    )

    @field_validator("email")
    @classmethod
    def _lowercase(cls, value: str | None) -> str | None:
        return None if value is None else value.lower()


class InvitationPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int = Field(examples=[3])
    list_id: int = Field(examples=[7])
    role: Role = Field(examples=["editor"])
    email: str | None = Field(examples=["ada@example.com"])
    status: str = Field(default="pending", examples=["pending"])
    expires_at: UtcDatetime = Field(examples=["2026-12-02T17:00:00Z"])


class InvitationCreated(InvitationPublic):
    token: str = Field(
        description="Shown only in this answer: send it to the invitee, who accepts it with "
        "`POST /api/invitations/accept`.",
        examples=["q3V0aG9yaXR5LXRva2VuLWV4YW1wbGUtMzItYnl0ZXM"],
    )


class InvitationAccept(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token: Annotated[str, StringConstraints(min_length=1, max_length=200), StorableText] = Field(
        description="The token of the invitation (`POST /api/lists/{list_id}/invitations`).",
        examples=["q3V0aG9yaXR5LXRva2VuLWV4YW1wbGUtMzItYnl0ZXM"],
    )


class CommentCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    body: CommentBody = Field(description="1-10000 characters, trimmed; several lines allowed.")


class CommentUpdate(CommentCreate):
    """A comment's new body (its author only)."""


class CommentPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int = Field(examples=[11])
    task_id: int = Field(examples=[42])
    author_id: str | None = Field(
        description="Null once the author's account is deleted.",
        examples=["5f0c6e8e-3d5c-4d7e-9a53-0c1b2f6f1e9a"],
    )
    body: str = Field(examples=["Bought the milk."])
    created_at: UtcDatetime = Field(examples=["2026-11-25T17:00:00Z"])
    updated_at: UtcDatetime = Field(examples=["2026-11-25T17:00:00Z"])


TASK_COMMENTS = TaskChild(
    TaskComment,
    noun="comment",
    path="comments",
    read=Action.COMMENT_READ,
    write=Action.COMMENT_ADD,
    per_task=COMMENTS_PER_TASK,
    fields=("body",),
    author="author_id",
    # A list's admin or owner moderates: deletes anyone's comment.
    delete_any=Action.COMMENT_MODERATE,
    sample={"body": "Bring the receipts"},
    public=CommentPublic,
    create=CommentCreate,
    update=CommentUpdate,
    about="A task's comments: list (oldest first, keyset pages), add, edit your own, delete. "
    "A task's comments are as visible as the task: in a shared list, a viewer reads them, a "
    "commenter adds them and edits or deletes its own, an admin or the owner deletes any; a "
    "member below the role gets 403 `FORBIDDEN`, anyone else the 404 a missing task gets.",
    tools=("add", "list"),
)
