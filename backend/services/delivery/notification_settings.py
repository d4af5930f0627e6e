"""Notification settings (specs/api-contract.md, "Notification settings"), one message a request. A
new address is unconfirmed until its link is opened, unless the identity provider says it is
verified; `email: true` needs a confirmed address (or one sent with it), else 422."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import time
from typing import Any

from sqlalchemy import Boolean, Text, Time, bindparam, text

from backend.config import Settings
from backend.db.scope import Scoped
from backend.errors import InvalidRequest, NotFound
from backend.models.notification_settings import (
    NotificationSettingsPublic,
    NotificationSettingsUpdate,
    QuietHours,
)
from backend.services.rate_limits import RateLimiter
from backend.services.statements.tokens import token_hash

# A confirmation link works this long after it was sent.
CONFIRM_DAYS = 7
DEFAULTS = NotificationSettingsPublic(
    push=True, email=False, email_address=None, email_confirmed=False, time_zone=None
)

LINK_NOT_FOUND = "No such link (it may have expired or been replaced)"
CONFIRM_FIRST = (
    "Email reminders need an address: send `email_address` too, or confirm the stored one "
    "by the link sent to it"
)

_READ = text(
    """
SELECT push, email, email_address, email_confirmed_at IS NOT NULL AS email_confirmed, time_zone,
    quiet_start, quiet_end
FROM notification_settings WHERE notification_settings.user_id = :owner
"""
)
# A confirmation's column: kept where the address is not sent or stays confirmed, else new.
_CONFIRMING = """{0} = CASE
        WHEN NOT :address_sent THEN n.{0}
        WHEN :email_address IS NULL THEN NULL
        WHEN n.email_address = :email_address AND n.email_confirmed_at IS NOT NULL
            THEN n.{0}
        WHEN :verified THEN NULL
        ELSE {1}
    END"""
# A field not sent (its `*_sent` flag) keeps the stored value; `verified` turns email on as a link
# would. The upsert's triggers queue a new address's link; its token is derived, never stored.
_WRITE_SQL = """
INSERT INTO notification_settings AS n
    (user_id, push, email, email_address, email_confirmed_at, confirm_token_hash,
     confirm_sent_at, time_zone, confirm_nonce, quiet_start, quiet_end)
SELECT :owner, coalesce(:push, true), coalesce(:email, :verified), :email_address,
    CASE WHEN :verified THEN now() END,
    CASE WHEN :email_address IS NULL OR :verified THEN NULL ELSE :token_hash END,
    CASE WHEN :email_address IS NULL OR :verified THEN NULL ELSE now() END,
    :time_zone,
    CASE WHEN :email_address IS NULL OR :verified THEN NULL ELSE :nonce END,
    :quiet_start, :quiet_end
WHERE NOT coalesce(:email, false) OR :verified OR :email_address IS NOT NULL OR EXISTS (
    SELECT 1 FROM notification_settings AS c
    WHERE c.user_id = :owner AND c.email_confirmed_at IS NOT NULL
      AND (NOT :address_sent OR c.email_address = :email_address)
)
ON CONFLICT (user_id) DO UPDATE SET
    push = coalesce(:push, n.push),
    time_zone = CASE WHEN :time_zone_sent THEN :time_zone ELSE n.time_zone END,
    quiet_start = CASE WHEN :quiet_sent THEN :quiet_start ELSE n.quiet_start END,
    quiet_end = CASE WHEN :quiet_sent THEN :quiet_end ELSE n.quiet_end END,
    email_address = CASE WHEN :address_sent THEN :email_address ELSE n.email_address END,
    email_confirmed_at = CASE
        WHEN NOT :address_sent OR n.email_address = :email_address
            THEN coalesce(n.email_confirmed_at, CASE WHEN :verified THEN now() END)
        WHEN :verified THEN now()
    END,
    {token_hash},
    {sent_at},
    {nonce},
    email = CASE
        WHEN :email IS NOT NULL THEN :email
        WHEN :address_sent AND :email_address IS NULL THEN false
        WHEN :verified AND n.email_confirmed_at IS NULL THEN true
        WHEN :verified AND n.email_address IS DISTINCT FROM :email_address THEN true
        ELSE n.email
    END,
    updated_at = now()
WHERE n.user_id = :owner
RETURNING push, email, email_address, email_confirmed_at IS NOT NULL AS email_confirmed,
    time_zone, quiet_start, quiet_end
"""
_WRITE = text(
    _WRITE_SQL.format(
        token_hash=_CONFIRMING.format("confirm_token_hash", ":token_hash"),
        sent_at=_CONFIRMING.format("confirm_sent_at", "now()"),
        nonce=_CONFIRMING.format("confirm_nonce", ":nonce"),
    )
).bindparams(
    *(
        bindparam(name, type_=Boolean)
        for name in ("push", "email", "address_sent", "verified", "time_zone_sent", "quiet_sent")
    ),
    bindparam("quiet_start", type_=Time),
    bindparam("quiet_end", type_=Time),
    bindparam("email_address", type_=Text),
    bindparam("time_zone", type_=Text),
    bindparam("token_hash", type_=Text),
    bindparam("nonce", type_=Text),
)
_CONFIRM = text(
    """
UPDATE notification_settings
SET email_confirmed_at = coalesce(email_confirmed_at, now()),
    email = email OR email_confirmed_at IS NULL, updated_at = now()
WHERE notification_settings.user_id = :owner AND confirm_token_hash = :token_hash
  AND confirm_sent_at > now() - make_interval(days => :days)
RETURNING email_address
"""
)
_UNSUBSCRIBE = text(
    """
UPDATE notification_settings SET email = false, updated_at = now()
WHERE notification_settings.user_id = :owner
RETURNING email
"""
)


def confirm_token(settings: Settings, user_id: str, nonce: str) -> str:
    """A confirmation link's token: an HMAC of the user id and the row's nonce under the
    server's signing secret, so the worker derives it and only its SHA-256 is stored."""
    key = settings.signing_secret().encode()
    digest = hmac.new(key, f"confirm-email:{user_id}:{nonce}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def unsubscribe_token(settings: Settings, user_id: str) -> str:
    """The one-click link's proof: an HMAC of the user id (nothing stored)."""
    key = settings.signing_secret().encode()
    return hmac.new(key, f"unsubscribe-email:{user_id}".encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Updated:
    settings: NotificationSettingsPublic


def _public(row: Any) -> NotificationSettingsPublic:
    return NotificationSettingsPublic(
        push=row.push,
        email=row.email,
        email_address=row.email_address,
        email_confirmed=row.email_confirmed,
        time_zone=row.time_zone,
        quiet_hours=None
        if row.quiet_start is None
        else QuietHours(start=f"{row.quiet_start:%H:%M}", end=f"{row.quiet_end:%H:%M}"),
    )


class NotificationSettingsService(Scoped):
    def get(self) -> NotificationSettingsPublic:
        row = self._read(_READ).first()
        return DEFAULTS if row is None else _public(row)

    def update(
        self,
        data: NotificationSettingsUpdate,
        settings: Settings,
        verified: str | None = None,
        limits: RateLimiter | None = None,
    ) -> Updated:
        """`verified`: the address the identity provider vouches for (confirmed at once when
        sent). Any other address sent is counted first against `limits` (429, nothing written)."""
        sent = data.model_fields_set
        address = str(data.email_address).lower() if data.email_address is not None else None
        if "email_address" in sent and address is not None and not settings.smtp_host:
            raise InvalidRequest.at(
                "body.email_address", "This server sends no email (SMTP_HOST is not set)"
            )
        if address is not None and address != verified and limits is not None:
            limits.confirmation_mail(self.user_id, address)
        quiet = data.quiet_hours
        nonce = secrets.token_urlsafe(32)
        token = confirm_token(settings, self.user_id, nonce)
        row = self._write(
            _WRITE,
            push=data.push if "push" in sent else None,
            email=data.email if "email" in sent else None,
            address_sent="email_address" in sent,
            email_address=address,
            verified=address is not None and address == verified,
            time_zone_sent="time_zone" in sent,
            time_zone=data.time_zone,
            quiet_sent="quiet_hours" in sent,
            quiet_start=None if quiet is None else time.fromisoformat(quiet.start),
            quiet_end=None if quiet is None else time.fromisoformat(quiet.end),
            token_hash=token_hash(token),
            nonce=nonce,
            last=True,
        ).first()
        if row is None:
            raise InvalidRequest.at("body.email", CONFIRM_FIRST)
        return Updated(_public(row))

    def confirm(self, token: str) -> str:
        """Confirm the address by the link's token; returns it. Opened again it changes nothing."""
        row = self._write(
            _CONFIRM, token_hash=token_hash(token), days=CONFIRM_DAYS, last=True
        ).first()
        if row is None:
            raise NotFound(LINK_NOT_FOUND)
        return str(row.email_address)

    def unsubscribe(self, token: str, settings: Settings) -> None:
        """RFC 8058's one-click: email reminders off, if the link's proof is the account's."""
        if not hmac.compare_digest(token, unsubscribe_token(settings, self.user_id)):
            raise NotFound(LINK_NOT_FOUND)
        self._write(_UNSUBSCRIBE, last=True)
