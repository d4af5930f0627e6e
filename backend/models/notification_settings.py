"""Notification settings and reminder deliveries (specs/api-contract.md, "Notification
settings"; specs/events.md, "Reminder deliveries"): the tables and the schemas."""

from __future__ import annotations

import uuid
from datetime import datetime, time
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StringConstraints
from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKeyConstraint,
    Index,
    Integer,
    Text,
    Time,
    UniqueConstraint,
    Uuid,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import SQLModel

from backend.models.columns import INSTANT, column, id_column, now_column, user_id_column
from backend.models.common import NOT_SENT, NotNull, StorableText
from backend.models.references import not_a_reference
from backend.models.types import TimeZoneName
from backend.models.user import USER_ID_MAX_LENGTH, Email

# A confirmation link's token: `secrets.token_urlsafe(32)`.
CONFIRM_TOKEN = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{43}$")]
# A one-click unsubscribe link's proof: an HMAC-SHA256, hex.
UNSUBSCRIBE_TOKEN = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
# The account a link names: a user id as stored (no NUL, which PostgreSQL cannot take: 422).
USER_ID_IN_LINK = Annotated[
    str, StringConstraints(min_length=1, max_length=USER_ID_MAX_LENGTH), StorableText
]


_CLOCK = func.clock_timestamp()


class NotificationSettings(SQLModel, table=True):
    __tablename__ = "notification_settings"
    __table_args__ = (
        UniqueConstraint("confirm_token_hash", name="uq_notification_settings_confirm_token_hash"),
        CheckConstraint(
            "char_length(email_address) <= 320",
            name="ck_notification_settings_email_address_length",
        ),
        CheckConstraint(
            "char_length(time_zone) BETWEEN 1 AND 64",
            name="ck_notification_settings_time_zone_length",
        ),
        CheckConstraint(
            "email_confirmed_at IS NULL OR email_address IS NOT NULL",
            name="ck_notification_settings_confirmed_has_address",
        ),
        CheckConstraint(
            "(quiet_start IS NULL) = (quiet_end IS NULL)",
            name="ck_notification_settings_quiet_hours",
        ),
    )

    user_id: str = user_id_column(primary_key=True)
    push: bool = column(Boolean, nullable=False, server_default=text("true"), default=True)
    email: bool = column(Boolean, nullable=False, server_default=text("false"), default=False)
    email_address: str | None = column(Text, default=None)
    email_confirmed_at: datetime | None = column(INSTANT, default=None)
    # SHA-256 of the confirmation link's random token, hex: the link is shown only in the mail.
    confirm_token_hash: str | None = column(Text, default=None)
    confirm_sent_at: datetime | None = column(INSTANT, default=None)
    # What the worker derives the mailed link's token from (migration 0097; never the token).
    confirm_nonce: str | None = column(Text, default=None)
    time_zone: str | None = column(Text, default=None)
    # Quiet hours (migration 0099): local times in `time_zone`, both or neither.
    quiet_start: time | None = column(Time, default=None)
    quiet_end: time | None = column(Time, default=None)
    updated_at: datetime | None = now_column()


class ReminderDelivery(SQLModel, table=True):
    __tablename__ = "reminder_deliveries"
    __table_args__ = (
        ForeignKeyConstraint(
            ["user_id", "subscription_id"],
            ["push_subscriptions.user_id", "push_subscriptions.id"],
            ondelete="CASCADE",
            name="fk_reminder_deliveries_user_id_push_subscriptions",
        ),
        UniqueConstraint(
            "event_id",
            "channel",
            "subscription_id",
            name="uq_reminder_deliveries_event_id_channel_subscription_id",
            postgresql_nulls_not_distinct=True,
        ),
        CheckConstraint(
            "(channel = 'push' AND subscription_id IS NOT NULL AND task_id IS NOT NULL) "
            "OR (channel = 'email' AND subscription_id IS NULL AND task_id IS NOT NULL) "
            "OR (channel = 'confirm' AND subscription_id IS NULL AND task_id IS NULL)",
            name="ck_reminder_deliveries_channel",
        ),
        CheckConstraint("state IN ('pending', 'dead')", name="ck_reminder_deliveries_state"),
        Index(
            "ix_reminder_deliveries_next_attempt_at",
            "next_attempt_at",
            postgresql_where=text("state = 'pending'"),
        ),
        Index("ix_reminder_deliveries_dead_id", "id", postgresql_where=text("state = 'dead'")),
    )

    id: int | None = id_column()
    user_id: str = user_id_column()
    event_id: uuid.UUID = column(
        Uuid,
        nullable=False,
        info=not_a_reference(
            "the reminder event's UUID (the push Topic and the "
            "Message-ID); the event may be pruned first"
        ),
    )
    # None for an address's confirmation (channel `confirm`, migration 0097).
    task_id: int | None = column(
        BigInteger,
        info=not_a_reference(
            "a fired reminder's task, possibly another user's (a member's reminder) or gone by "
            "send time: the sink checks who still reaches it; none for an address's confirmation"
        ),
        default=None,
    )
    channel: str = column(Text, nullable=False)
    subscription_id: int | None = column(BigInteger, default=None)
    payload: dict[str, Any] = column(JSONB, nullable=False)
    state: str = column(Text, nullable=False, server_default="pending", default="pending")
    attempts: int = column(Integer, nullable=False, server_default=text("0"), default=0)
    next_attempt_at: datetime | None = column(
        INSTANT, nullable=False, server_default=_CLOCK, default=None
    )
    last_error: str | None = column(Text, default=None)
    created_at: datetime | None = column(
        INSTANT, nullable=False, server_default=_CLOCK, default=None
    )


# A local time of day, `HH:MM` (the pattern is the whole rule).
LocalTime = Annotated[str, StringConstraints(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")]


class QuietHours(BaseModel):
    """A daily window, on the person's clock (`time_zone`; UTC when none is set), in which
    their reminders' pushes and emails wait; they go at its end."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"start": "22:00", "end": "07:00"}]}
    )

    start: LocalTime = Field(
        description="When the window begins, `HH:MM` (24-hour) on the person's clock.",
        examples=["22:00"],
    )
    end: LocalTime = Field(
        description="When it ends and what waited is sent, `HH:MM`; before `start`: the "
        "window runs across midnight; equal to `start`: no window.",
        examples=["07:00"],
    )


class NotificationSettingsPublic(BaseModel):
    push: bool = Field(
        description="Reminders go to every browser you subscribed (Web Push).", examples=[True]
    )
    email: bool = Field(
        description="Reminders go to `email_address` once it is confirmed.", examples=[False]
    )
    email_address: str | None = Field(
        description="Where email reminders go (null: nowhere).", examples=["ada@example.com"]
    )
    email_confirmed: bool = Field(
        description="Whether `email_address` was confirmed by the link sent to it; only a "
        "confirmed address receives reminders.",
        examples=[False],
    )
    time_zone: str | None = Field(
        description="The IANA zone an email names the due time in (null: the task's own) "
        "and quiet hours are read in (null: UTC).",
        examples=["Europe/Berlin"],
    )
    quiet_hours: QuietHours | None = Field(
        default=None,
        description="The daily window in which reminders' pushes and emails wait, sent at "
        "its end (null: none).",
        examples=[{"start": "22:00", "end": "07:00"}],
    )


class NotificationSettingsUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"push": True}]})

    # JSON `true`/`false` only (not `"yes"`, `1`): the schema's `boolean` is the whole rule.
    push: Annotated[StrictBool, NotNull] = Field(**NOT_SENT, description="Web Push on or off.")
    email: Annotated[StrictBool, NotNull] = Field(
        **NOT_SENT,
        description="Email reminders on or off; `true` needs an address: a confirmed one, or "
        "`email_address` in the same request (then reminders start once its link is opened). "
        "422 otherwise.",
    )
    email_address: Email | None = Field(
        **NOT_SENT,
        description="A new address gets a confirmation link and receives reminders only "
        "once it is opened (a changed one is unconfirmed again); null removes the address "
        "(and email reminders). Confirmation mails are bounded per address and per account "
        "(429 with `Retry-After` past it).",
    )
    time_zone: TimeZoneName | None = Field(
        **NOT_SENT,
        description="The IANA zone emails name due times in (null: the task's) and quiet "
        "hours are read in (null: UTC).",
    )
    quiet_hours: QuietHours | None = Field(
        **NOT_SENT,
        description="A daily window (`start`, `end`: `HH:MM` on your clock) in which "
        "reminders' pushes and emails wait, then go at its end; null: none.",
    )


class EmailConfirmed(BaseModel):
    email_address: str = Field(examples=["ada@example.com"])
    email_confirmed: bool = Field(examples=[True])
