"""One named class per success body: `DataEnvelope[TaskPublic]` would be `DataEnvelope_TaskPublic_`
in the OpenAPI document (and in generated clients); a subclass is the same bytes, well named."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from backend.models.activity import ActivityItem
from backend.models.app_password import AppPasswordCreated, AppPasswordPublic
from backend.models.calendar_feed import CalendarFeedCreated, CalendarFeedPublic
from backend.models.change import ChangesMeta, TaskChange
from backend.models.common import DataEnvelope, ListEnvelope, ListMeta
from backend.models.conversation import ChatAnswer, ConversationPublic, MessagePublic
from backend.models.notification_settings import EmailConfirmed, NotificationSettingsPublic
from backend.models.push_subscription import PushPublicKey, PushSubscriptionPublic
from backend.models.sharing import InvitationCreated, InvitationPublic, MemberPublic
from backend.models.stream_ticket import StreamTicketPublic
from backend.models.task import TaskPublic
from backend.models.task_list import ListPublic
from backend.models.task_ops import BulkResponse, ClearedCompleted, TaskOccurrences, TaskStatsPublic
from backend.models.user import AuthSession, UserPublic


class TaskEnvelope(DataEnvelope[TaskPublic]):
    """One task."""


class TaskListMeta(ListMeta):
    changes_cursor: str = Field(
        description="The change feed's position as of this listing (of its first page, on "
        "every page): poll `GET /api/tasks/changes?cursor=` with it to get every change made "
        "after the listing, none before.",
        examples=["9cqm_BcWun9g3QMeX40zmkeH2ARDv41t"],
    )


class TaskListEnvelope(ListEnvelope[TaskPublic]):
    """One page of the caller's tasks."""

    meta: TaskListMeta


class TaskChangesEnvelope(BaseModel):
    """The caller's task changes, oldest first."""

    data: list[TaskChange]
    meta: ChangesMeta


class CountMeta(BaseModel):
    count: int = Field(description="Number of items in `data`.", examples=[3])


class TaskSubtreeEnvelope(BaseModel):
    """A task and its subtasks: the task first, then each subtask followed by its own
    (depth-first, in position order; `parent_id` says whose)."""

    data: list[TaskPublic]
    meta: CountMeta


class SingleListEnvelope(DataEnvelope[ListPublic]):
    """One list."""


class ListsEnvelope(BaseModel):
    """Every list of yours, in their order (at most 100: one page)."""

    data: list[ListPublic]
    meta: CountMeta


class MembersEnvelope(BaseModel):
    """A shared list's owner and members (at most 100 members and the owner: one page)."""

    data: list[MemberPublic]


class MemberEnvelope(DataEnvelope[MemberPublic]):
    """One member of a list."""


class InvitationsEnvelope(BaseModel):
    """A list's pending invitations, oldest first (never a token)."""

    data: list[InvitationPublic]


class InvitationCreatedEnvelope(DataEnvelope[InvitationCreated]):
    """A new invitation, with its token (shown only here)."""


class CalendarFeedsEnvelope(BaseModel):
    """Your calendar feeds, oldest first (never a URL: its token is shown once)."""

    data: list[CalendarFeedPublic]


class CalendarFeedCreatedEnvelope(DataEnvelope[CalendarFeedCreated]):
    """A calendar feed with its URL (shown only when made or rotated)."""


class AppPasswordsEnvelope(BaseModel):
    """Your app passwords, by name (never a password)."""

    data: list[AppPasswordPublic]
    meta: CountMeta


class AppPasswordCreatedEnvelope(DataEnvelope[AppPasswordCreated]):
    """An app password with the password itself (shown only here)."""


class PushSubscriptionsEnvelope(BaseModel):
    """Your push subscriptions, oldest first (never their keys)."""

    data: list[PushSubscriptionPublic]
    meta: CountMeta


class PushSubscriptionEnvelope(DataEnvelope[PushSubscriptionPublic]):
    """A push subscription (its keys are never shown)."""


class PushPublicKeyEnvelope(DataEnvelope[PushPublicKey]):
    """The server's VAPID public key."""


class TaskOccurrencesEnvelope(DataEnvelope[TaskOccurrences]):
    """A task's next due dates."""


class TaskStatsEnvelope(DataEnvelope[TaskStatsPublic]):
    """Counts over all the caller's tasks."""


class BulkResponseEnvelope(DataEnvelope[BulkResponse]):
    """Every bulk operation's result, in order."""


class ClearedCompletedEnvelope(DataEnvelope[ClearedCompleted]):
    """How many completed tasks were deleted."""


class AuthSessionEnvelope(DataEnvelope[AuthSession]):
    """The account and a bearer token for it."""


class UserEnvelope(DataEnvelope[UserPublic]):
    """The signed-in account."""


class HealthStatus(BaseModel):
    status: Literal["ok"] = Field(examples=["ok"])


class HealthEnvelope(DataEnvelope[HealthStatus]):
    """The process is alive."""


class ReadyStatus(BaseModel):
    status: Literal["ready"] = Field(examples=["ready"])
    database: Literal["ok"] = Field(examples=["ok"])
    migrations: Literal["current"] = Field(examples=["current"])


class ReadyEnvelope(DataEnvelope[ReadyStatus]):
    """The database is reachable and its migrations are current."""


class ChatEnvelope(DataEnvelope[ChatAnswer]):
    """A chat turn's answer."""


class ConversationsEnvelope(ListEnvelope[ConversationPublic]):
    """A page of your conversations, newest activity first."""


class MessagesEnvelope(ListEnvelope[MessagePublic]):
    """A page of a conversation's messages, oldest first."""


class ActivityEnvelope(ListEnvelope[ActivityItem]):
    """A page of activity, newest first."""


class StreamTicketEnvelope(DataEnvelope[StreamTicketPublic]):
    """A one-time ticket that opens your live change stream."""


class NotificationSettingsEnvelope(DataEnvelope[NotificationSettingsPublic]):
    """Your notification settings."""


class EmailConfirmedEnvelope(DataEnvelope[EmailConfirmed]):
    """The address a confirmation link confirmed."""
