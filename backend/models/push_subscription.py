"""Web Push subscriptions (specs/api-contract.md, "Push subscriptions"): the table and the
schemas; the keys checked as RFC 8291 needs them, the endpoint's host by delivery/push_endpoints.py.
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Annotated, Any

from cryptography.hazmat.primitives.asymmetric import ec
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints
from sqlalchemy import CheckConstraint, Text, UniqueConstraint
from sqlmodel import SQLModel

from backend.models.columns import INSTANT, column, id_column, now_column, user_id_column
from backend.models.common import UtcDatetime
from backend.models.types import TASK_ID_MAX

# Push services' endpoints are a few hundred characters; a longer one is no browser's.
ENDPOINT_MAX_LENGTH = 2048
PUSH_SUBSCRIPTIONS_PER_USER = 20
PUSH_SUBSCRIPTION_ID_MAX = TASK_ID_MAX
# Printable ASCII only: nothing that could end a header or request line.
ENDPOINT_PATTERN = r"^https?://[!-~]+$"
BASE64URL_PATTERN = r"^[A-Za-z0-9_-]+={0,2}$"


def b64url_decode(value: str) -> bytes:
    """base64url with or without padding (browsers leave it out)."""
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


def _p256_point(value: str) -> str:
    try:
        raw = b64url_decode(value)
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), raw)
    except (ValueError, binascii.Error) as exc:
        raise ValueError("not a P-256 public key (65 bytes, uncompressed, base64url)") from exc
    if len(raw) != 65:
        raise ValueError("not an uncompressed P-256 public key (65 bytes, base64url)")
    return value


def _auth_secret(value: str) -> str:
    try:
        raw = b64url_decode(value)
    except (ValueError, binascii.Error) as exc:
        raise ValueError("not base64url") from exc
    if len(raw) != 16:
        raise ValueError("the auth secret is 16 bytes, base64url")
    return value


P256dh = Annotated[
    str,
    StringConstraints(min_length=86, max_length=88, pattern=BASE64URL_PATTERN),
    AfterValidator(_p256_point),
]
AuthSecret = Annotated[
    str,
    StringConstraints(min_length=22, max_length=24, pattern=BASE64URL_PATTERN),
    AfterValidator(_auth_secret),
]
Endpoint = Annotated[
    str, StringConstraints(min_length=10, max_length=ENDPOINT_MAX_LENGTH, pattern=ENDPOINT_PATTERN)
]

EXAMPLE_ENDPOINT = "https://fcm.googleapis.com/fcm/send/dX3k9bYlQ0c:APA91bHm2Example"
EXAMPLE_KEYS: dict[str, Any] = {
    "p256dh": "BNcRdreALRFXTkOOUHK1EtK2wtaz5Ry4YfYCA_0QTpQtUbVlUls0VJXg7A8u-"
    "Ts1XbjhazAkj7I99e8QcYP7DkM",
    "auth": "tBHItJI5svbpez7KI4CCXg",
}


class PushSubscription(SQLModel, table=True):
    __tablename__ = "push_subscriptions"
    __table_args__ = (
        UniqueConstraint("user_id", "id", name="uq_push_subscriptions_user_id_id"),
        UniqueConstraint("user_id", "endpoint", name="uq_push_subscriptions_user_id_endpoint"),
        CheckConstraint(
            f"char_length(endpoint) <= {ENDPOINT_MAX_LENGTH}",
            name="ck_push_subscriptions_endpoint_length",
        ),
    )

    id: int | None = id_column()
    user_id: str = user_id_column()
    endpoint: str = column(Text, nullable=False)
    # The browser's keys (RFC 8291), base64url: secrets that never leave the server again.
    p256dh: str = column(Text, nullable=False)
    auth: str = column(Text, nullable=False)
    expires_at: datetime | None = column(INSTANT, default=None)
    created_at: datetime | None = now_column()
    updated_at: datetime | None = now_column()


class PushKeys(BaseModel):
    model_config = ConfigDict(extra="forbid")

    p256dh: P256dh = Field(
        description="The browser's P-256 public key: 65 bytes, uncompressed, base64url.",
        examples=[EXAMPLE_KEYS["p256dh"]],
    )
    auth: AuthSecret = Field(
        description="The browser's 16-byte authentication secret, base64url.",
        examples=[EXAMPLE_KEYS["auth"]],
    )


class PushSubscriptionCreate(BaseModel):
    """`PushSubscription.toJSON()` as a browser gives it."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"endpoint": EXAMPLE_ENDPOINT, "expirationTime": None, "keys": dict(EXAMPLE_KEYS)}
            ]
        },
    )

    endpoint: Endpoint = Field(
        description="The push service's URL for this browser: https, on a push service's host "
        "(FCM, Mozilla, Apple, Windows by default), at most 2048 characters.",
        examples=[EXAMPLE_ENDPOINT],
    )
    expirationTime: float | None = Field(  # noqa: N815 (the browser's name)
        default=None,
        ge=0,
        le=253402300799000,  # 9999-12-31
        description="When the subscription ends, in milliseconds since 1970 (null: unknown).",
        examples=[None],
    )
    keys: PushKeys


class PushSubscriptionPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int = Field(examples=[4])
    endpoint: str = Field(examples=[EXAMPLE_ENDPOINT])
    created_at: UtcDatetime = Field(examples=["2026-11-27T09:00:00Z"])


class PushPublicKey(BaseModel):
    public_key: str = Field(
        description="The server's VAPID public key: an uncompressed P-256 point, base64url without "
        "padding; a page passes it as `applicationServerKey` to `PushManager.subscribe`.",
        examples=[
            "BEl62iUYgUivxIkv69yViEuiBIa-Ib9-SkvMeAtA3LFgDzkrxZJjSgSnfckjBJuBkr3qBUYIHBQFLXYp5Nksh8U"
        ],
    )
