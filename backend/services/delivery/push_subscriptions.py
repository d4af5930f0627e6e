"""Web Push subscriptions (specs/api-contract.md, "Push subscriptions"): one upsert per endpoint, a
new row only under the limit (`PrivateRows.room`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, Text, bindparam, func, literal_column, select
from sqlalchemy.dialects.postgresql import insert as pg_insert

from backend.config import Settings
from backend.db.scope import OWNER, Scoped, owned
from backend.models.push_subscription import (
    PUSH_SUBSCRIPTIONS_PER_USER,
    PushSubscription,
    PushSubscriptionCreate,
)
from backend.services.delivery.push_endpoints import check_endpoint
from backend.services.statements.named_rows import PrivateRows

ROWS = PrivateRows(
    PushSubscription,
    noun="push subscription",
    plural="push subscriptions",
    limit=PUSH_SUBSCRIPTIONS_PER_USER,
)
_C = ROWS.table.c
# What an answer shows of a row (never its keys).
_PUBLIC = (_C.id, _C.endpoint, _C.created_at)
_VALUES = {
    "endpoint": bindparam("endpoint", type_=Text),
    "p256dh": bindparam("p256dh", type_=Text),
    "auth": bindparam("auth", type_=Text),
    "expires_at": bindparam("expires_at", type_=DateTime(timezone=True)),
}
_ROW_EXISTS = owned(select(_C.id), _C.user_id).where(_C.endpoint == _VALUES["endpoint"])
_CHOSEN = select(bindparam(OWNER, type_=Text), *_VALUES.values()).where(
    ROWS.room | _ROW_EXISTS.exists()
)
_INSERT = pg_insert(ROWS.table).from_select(["user_id", *_VALUES], _CHOSEN)
_UPSERT = _INSERT.on_conflict_do_update(
    index_elements=["user_id", "endpoint"],
    set_={
        "p256dh": _INSERT.excluded.p256dh,
        "auth": _INSERT.excluded.auth,
        "expires_at": _INSERT.excluded.expires_at,
        "updated_at": func.now(),
    },
    where=_C.user_id == bindparam(OWNER, type_=Text),
).returning(*_PUBLIC, literal_column("(xmax = 0)").label("inserted"))
_MINE = owned(select(*_PUBLIC), _C.user_id).order_by(_C.id)


@dataclass(frozen=True)
class Subscribed:
    row: Any
    created: bool


class PushSubscriptionService(Scoped):
    def subscribe(self, data: PushSubscriptionCreate, settings: Settings) -> Subscribed:
        """Store the browser's subscription (the same endpoint again: the same row)."""
        check_endpoint(data.endpoint, settings)
        expires = data.expirationTime
        rows = self._write(
            _UPSERT,
            endpoint=data.endpoint,
            p256dh=data.keys.p256dh,
            auth=data.keys.auth,
            expires_at=None if expires is None else datetime.fromtimestamp(expires / 1000, UTC),
            last=True,
        )
        row = rows.first()
        if row is None:
            raise ROWS.too_many(ROWS.limit)
        return Subscribed(row, bool(row.inserted))

    def mine(self) -> Sequence[Any]:
        """The caller's subscriptions, oldest first; never their keys."""
        return self._read(_MINE).all()

    def remove(self, subscription_id: int) -> None:
        if not self._write(ROWS.remove, row_id=subscription_id, last=True):
            raise ROWS.not_found()
