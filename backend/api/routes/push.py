"""Web Push (specs/api-contract.md, "Push subscriptions"): the server's VAPID public key and the
caller's subscriptions, whose keys are taken, never shown (no MCP or chat tool reaches them).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request, Response, status

from backend.api.deps import Door, DoorRoute, SettingsDep, uses
from backend.api.responses import VALIDATION, ErrorExample, errors, ok, rate_limited
from backend.errors import ServiceUnavailable
from backend.models.common import DecimalDigits
from backend.models.envelopes import (
    CountMeta,
    PushPublicKeyEnvelope,
    PushSubscriptionEnvelope,
    PushSubscriptionsEnvelope,
)
from backend.models.push_subscription import (
    PUSH_SUBSCRIPTION_ID_MAX,
    PushPublicKey,
    PushSubscription,
    PushSubscriptionCreate,
    PushSubscriptionPublic,
)
from backend.models.references import Reference
from backend.services.delivery.push_endpoints import public_key
from backend.services.delivery.push_subscriptions import ROWS, PushSubscriptionService

router = APIRouter(
    prefix="/api/push-subscriptions", tags=["push-subscriptions"], route_class=DoorRoute
)
keys = APIRouter(prefix="/api/push", tags=["push-subscriptions"])
ROUTERS = (keys, router)
TAGS = {
    "push-subscriptions": "Web Push (RFC 8030, 8291, 8292): a page subscribes its browser "
    "with the server's VAPID public key and posts the subscription here; reminders then reach "
    "that browser as notifications (docs/guides/reminders.md). At most 20 per account; the "
    "same endpoint again is the same subscription."
}

NOT_FOUND = ErrorExample.of("push_subscription_not_found", "No such subscription", ROWS.not_found())
FULL = ErrorExample.of("too_many_push_subscriptions", "The most", ROWS.too_many(ROWS.limit))
PUSH_OFF = ServiceUnavailable("Web Push is not enabled on this server")

PushSubscriptionId = Annotated[
    int,
    Path(ge=1, le=PUSH_SUBSCRIPTION_ID_MAX, description="The subscription's id.", examples=[4]),
    DecimalDigits,
    Reference(PushSubscription.__tablename__, None),  # the caller's own
]


@keys.get(
    "/public-key",
    operation_id="getPushPublicKey",
    response_model=PushPublicKeyEnvelope,
    summary="The server's VAPID public key",
    description="What a page passes as `applicationServerKey` to `PushManager.subscribe`. "
    "Public: no bearer token needed. 503 where Web Push is off.",
    responses=ok(200, "The key.") | errors(503),
)
async def push_public_key(settings: SettingsDep) -> PushPublicKeyEnvelope:
    if not settings.push_on:
        raise PUSH_OFF
    return PushPublicKeyEnvelope(data=PushPublicKey(public_key=public_key(settings)))


@router.post(
    "",
    operation_id="createPushSubscription",
    status_code=status.HTTP_201_CREATED,
    response_model=PushSubscriptionEnvelope,
    summary="Subscribe a browser to your reminders",
    description="The body is `PushSubscription.toJSON()` as the browser gives it. The "
    "endpoint must be https on a push service's host (FCM, Mozilla, Apple, Windows unless the "
    "server says otherwise); its keys are checked as RFC 8291 needs them. The same endpoint "
    "again is the same subscription (its keys refreshed): 200 with it instead of 201. 503 "
    "where Web Push is off.",
    responses=rate_limited(201, "Subscribed; `Location` is its path.", "Location")
    | rate_limited(200, "Already subscribed: the same subscription, its keys refreshed.")
    | errors(400, 401, 413, 422, 429, 503, examples=(VALIDATION, FULL)),
)
def create_push_subscription(
    door: Door,
    push_subscriptions: Annotated[PushSubscriptionService, uses(PushSubscriptionService)],
    request: Request,
    response: Response,
    data: PushSubscriptionCreate,
) -> PushSubscriptionEnvelope:
    if not door.settings.push_on:
        raise PUSH_OFF  # nothing would ever be sent to it
    done = push_subscriptions.subscribe(data, door.settings)
    public = PushSubscriptionPublic.model_validate(done.row)
    root = request.scope.get("root_path", "")
    response.headers["Location"] = f"{root}/api/push-subscriptions/{public.id}"
    if not done.created:
        response.status_code = status.HTTP_200_OK
    return PushSubscriptionEnvelope(data=public)


@router.get(
    "",
    operation_id="listPushSubscriptions",
    response_model=PushSubscriptionsEnvelope,
    summary="List your push subscriptions",
    description="Oldest first; never their keys.",
    responses=ok(200, "Your push subscriptions.") | errors(401, 503),
)
def list_push_subscriptions(
    push_subscriptions: Annotated[PushSubscriptionService, uses(PushSubscriptionService)],
) -> PushSubscriptionsEnvelope:
    rows = push_subscriptions.mine()
    data = [PushSubscriptionPublic.model_validate(row) for row in rows]
    return PushSubscriptionsEnvelope(data=data, meta=CountMeta(count=len(data)))


@router.delete(
    "/{push_subscription_id}",
    operation_id="deletePushSubscription",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Unsubscribe a browser",
    description="Its pending pushes are dropped; the page should also call "
    "`PushSubscription.unsubscribe()`.",
    responses=rate_limited(204, "Deleted.")
    | errors(401, 404, 422, 429, 503, examples=(NOT_FOUND,)),
)
def delete_push_subscription(
    push_subscriptions: Annotated[PushSubscriptionService, uses(PushSubscriptionService)],
    push_subscription_id: PushSubscriptionId,
) -> None:
    push_subscriptions.remove(push_subscription_id)
