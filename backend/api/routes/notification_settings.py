"""`/api/notification-settings` (specs/api-contract.md, "Notification settings"), and the two
links a mail carries (confirm an address; RFC 8058 one-click unsubscribe), which need no bearer
token: the link is the credential. A confirmation mail is queued by the PATCH's own statement
and sent by the events worker (specs/events.md, "Reminder deliveries").
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, status

from backend.api.deps import AnonymousDoor, Door, DoorRoute, SettingsDep, uses
from backend.api.responses import VALIDATION, ErrorExample, errors, ok, rate_limited
from backend.errors import InvalidRequest, NotFound
from backend.models.envelopes import EmailConfirmedEnvelope, NotificationSettingsEnvelope
from backend.models.notification_settings import (
    CONFIRM_TOKEN,
    UNSUBSCRIBE_TOKEN,
    USER_ID_IN_LINK,
    EmailConfirmed,
    NotificationSettingsUpdate,
)
from backend.services.delivery.notification_settings import (
    CONFIRM_FIRST,
    LINK_NOT_FOUND,
    NotificationSettingsService,
)
from backend.services.rate_limits import RateLimiter
from backend.services.unit_of_work import UnitOfWork

router = APIRouter(
    prefix="/api/notification-settings", tags=["notification-settings"], route_class=DoorRoute
)
TAGS = {
    "notification-settings": "Where your reminders go besides events: Web Push to your "
    "subscribed browsers, email to a confirmed address (docs/guides/reminders.md)."
}
NO_LINK = ErrorExample.of("notification_link_not_found", "No such link", NotFound(LINK_NOT_FOUND))
UNCONFIRMED = ErrorExample.of(
    "email_unconfirmed", "Address not confirmed", InvalidRequest.at("body.email", CONFIRM_FIRST)
)
LinkUser = Annotated[USER_ID_IN_LINK, Query(description="The account the link is for.")]


async def link_door(door: AnonymousDoor, user: LinkUser) -> UnitOfWork:
    """A mail link's unit of work: no caller, its services bound to the account it names."""
    door.acts_for(user)
    return door


@router.get(
    "",
    operation_id="getNotificationSettings",
    response_model=NotificationSettingsEnvelope,
    summary="Your notification settings",
    responses=ok(200, "Your settings (defaults where never set).") | errors(401, 503),
)
def get_notification_settings(
    notification_settings: Annotated[
        NotificationSettingsService, uses(NotificationSettingsService)
    ],
) -> NotificationSettingsEnvelope:
    return NotificationSettingsEnvelope(data=notification_settings.get())


@router.patch(
    "",
    operation_id="updateNotificationSettings",
    response_model=NotificationSettingsEnvelope,
    summary="Change your notification settings",
    description="Only the fields sent change. A new `email_address` is sent a confirmation "
    "link and receives nothing until it is opened (a changed address is unconfirmed again), "
    "unless it is the address the caller's identity provider's token says is verified "
    "(`email_verified: true`): then it is confirmed at once and email reminders are on. "
    "`email: true` needs an address: a confirmed one, or `email_address` in the same request "
    "(a settings form's one call: reminders start once its link is opened). A request that "
    "sends an address counts against the confirmation mails' bounds, per account and per "
    "address (`RATE_LIMIT_CONFIRMATION_MAILS_PER_HOUR`): over either, 429 with `Retry-After` "
    "and nothing is written.",
    responses=rate_limited(200, "Your settings.")
    | errors(400, 401, 413, 422, 429, 503, examples=(VALIDATION, UNCONFIRMED)),
)
def update_notification_settings(
    door: Door,
    notification_settings: Annotated[
        NotificationSettingsService, uses(NotificationSettingsService)
    ],
    limits: Annotated[RateLimiter, uses(RateLimiter)],
    data: NotificationSettingsUpdate,
) -> NotificationSettingsEnvelope:
    done = notification_settings.update(
        data, door.settings, verified=door.verified_email, limits=limits
    )
    return NotificationSettingsEnvelope(data=done.settings)


@router.get(
    "/confirm",
    operation_id="confirmNotificationEmail",
    response_model=EmailConfirmedEnvelope,
    summary="Confirm an address (the link in the confirmation mail)",
    description="No bearer token: the link is the credential. Turns email reminders on. "
    "Rate limited per client address (`RATE_LIMIT_MAIL_LINKS_PER_IP`).",
    responses=rate_limited(200, "Confirmed.") | errors(404, 422, 429, 503, examples=(NO_LINK,)),
)
def confirm_notification_email(
    limits: Annotated[RateLimiter, uses(RateLimiter, link_door)],
    linked: Annotated[NotificationSettingsService, uses(NotificationSettingsService, link_door)],
    token: Annotated[CONFIRM_TOKEN, Query(description="The link's token.")],
) -> EmailConfirmedEnvelope:
    limits.mail_link()
    address = linked.confirm(token)
    return EmailConfirmedEnvelope(data=EmailConfirmed(email_address=address, email_confirmed=True))


@router.post(
    "/unsubscribe",
    operation_id="unsubscribeNotificationEmail",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="One-click unsubscribe (RFC 8058) from email reminders",
    description="What a mail client POSTs (`List-Unsubscribe=One-Click`) to the "
    "`List-Unsubscribe` link of a reminder: email reminders off. No bearer token: the link "
    "carries an HMAC of the account's id; a forged one is 404 and changes nothing. Rate "
    "limited per client address (`RATE_LIMIT_MAIL_LINKS_PER_IP`).",
    responses=rate_limited(204, "Email reminders are off.")
    | errors(404, 422, 429, 503, examples=(NO_LINK,)),
)
def unsubscribe_notification_email(
    limits: Annotated[RateLimiter, uses(RateLimiter, link_door)],
    linked: Annotated[NotificationSettingsService, uses(NotificationSettingsService, link_door)],
    token: Annotated[UNSUBSCRIBE_TOKEN, Query(description="The link's proof.")],
    settings: SettingsDep,
) -> None:
    limits.mail_link()
    linked.unsubscribe(token, settings)
