"""Reminders that reach a person: the engine's Web Push (RFC 8030/8291/8292) and email sink
adapters for `reminder_deliveries`, each answer classified as an `Outcome` (specs/events.md,
"Reminder deliveries"). A repeat carries the same push `Topic` and email `Message-ID`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.message import Message
from email.utils import parsedate_to_datetime
from functools import partial
from typing import Any
from urllib.parse import quote

import http_ece
import httpcore
from cryptography.hazmat.primitives.asymmetric import ec
from py_vapid import Vapid02

from backend.config import Settings
from backend.events.bounds import SEND_ERRORS, Answer, HttpClient
from backend.events.engine import DEAD, DELIVERED, DROPPED, GONE, RETRY, Outcome
from backend.events.health import WorkerMetrics
from backend.events.mail import MailFailed, MailSender, confirmation_message, reminder_message
from backend.services.delivery.notification_settings import confirm_token
from backend.services.delivery.push_endpoints import UnsafeEndpoint, resolve
from backend.services.statements.tokens import token_hash

logger = logging.getLogger(__name__)

PUSH, EMAIL, CONFIRM = "push", "email", "confirm"
# A push's payload stays under the 4 KB every push service takes: a longer title is cut.
TITLE_MAX_BYTES = 1000
# How long a push service keeps an undelivered push (RFC 8030 `TTL`): a day.
PUSH_TTL_SECONDS = 24 * 3600
# The VAPID JWT's lifetime (RFC 8292: at most 24 h).
VAPID_JWT_SECONDS = 12 * 3600
# Push services' origins whose JWT is kept (a handful in practice); past it all are dropped.
VAPID_ORIGINS_KEPT = 1024
# A path's characters sent as they are (RFC 3986's); any other is percent-encoded.
_URL_SAFE = "/?#[]@!$&'()*+,;=%:~-._"


def topic(event_id: Any) -> str:
    """RFC 8030 `Topic` (at most 32 base64url characters): the same for a reminder's every
    send, so a push service replaces an undelivered one with its repeat."""
    digest = hashlib.sha256(f"reminder:{event_id}".encode()).digest()[:24]
    return base64.urlsafe_b64encode(digest).decode()


def _cut(title: str) -> str:
    raw = title.encode()
    if len(raw) <= TITLE_MAX_BYTES:
        return title
    return raw[:TITLE_MAX_BYTES].decode(errors="ignore") + "…"


def push_payload(row: Any) -> dict[str, Any]:
    """What a service worker's `push` event reads (`event.data.json()`)."""
    stored = row.payload or {}
    return {
        "type": "reminder",
        "event_id": str(row.event_id),
        "task_id": row.task_id,
        "title": _cut(str(stored.get("title") or "")),
        "due_date": stored.get("due_at"),
        "remind_at": stored.get("remind_at"),
        "late": bool(stored.get("late")),
    }


def retry_after(response: Answer) -> float | None:
    """A `Retry-After` in seconds (delta or HTTP date); None when absent or unreadable."""
    value = response.headers.get("retry-after")
    if not value:
        return None
    if value.strip().isdigit():
        return float(value.strip())
    try:
        return max(0.0, (parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds())
    except (TypeError, ValueError):
        return None


def _unpadded(value: str) -> bytes:
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


def encrypt(body: bytes, p256dh: str, auth: str) -> bytes:
    """RFC 8291's `aes128gcm` message for a subscription (its `p256dh` and `auth`, base64url),
    by http-ece with a fresh P-256 key of ours as the key id."""
    ours = ec.generate_private_key(ec.SECP256R1())
    encrypted: bytes = http_ece.encrypt(
        body,
        private_key=ours,
        dh=_unpadded(p256dh),
        auth_secret=_unpadded(auth),
        version="aes128gcm",
        rs=4096,
    )
    return encrypted


class PushSender:
    """One Web Push to the endpoint's checked address (no redirects, the whole call bounded:
    `HttpClient`)."""

    def __init__(self, settings: Settings, client: HttpClient) -> None:
        self._settings = settings
        self._vapid = Vapid02(private_key=settings.vapid_key())
        self._client = client
        # A push service's origin -> its VAPID `Authorization` and when to sign anew.
        self._signed: dict[str, tuple[str, float]] = {}
        self._signing = threading.Lock()

    def authorization(self, origin: str) -> str:
        """The VAPID `Authorization` for `origin`, reused while more than half its lifetime is
        left, as RFC 8292 allows (~0.1 ms of CPU a push saved)."""
        now = time.time()
        kept = self._signed.get(origin)
        if kept is not None and now < kept[1]:
            return kept[0]
        with self._signing:
            claims = {
                "aud": origin,
                "exp": int(now) + VAPID_JWT_SECONDS,
                "sub": self._settings.vapid_contact,
            }
            header = str(self._vapid.sign(claims)["Authorization"])
            if len(self._signed) >= VAPID_ORIGINS_KEPT:
                self._signed.clear()
            self._signed[origin] = (header, now + VAPID_JWT_SECONDS / 2)
        return header

    def send(self, row: Any) -> Outcome:
        try:
            target = resolve(row.endpoint, self._settings)
        except UnsafeEndpoint as exc:
            return Outcome(DEAD, f"push: {exc}")
        body = json.dumps(push_payload(row), separators=(",", ":")).encode()
        encrypted = encrypt(body, row.p256dh, row.auth)
        origin = target.origin
        headers = {
            "Host": origin.split("://", 1)[1],
            "Authorization": self.authorization(origin),
            "Content-Encoding": "aes128gcm",
            "Content-Type": "application/octet-stream",
            "TTL": str(PUSH_TTL_SECONDS),
            "Urgency": "high",
            "Topic": topic(row.event_id),
        }
        url = httpcore.URL(
            scheme=target.scheme.encode(),
            host=target.address.encode(),
            port=target.port,
            target=quote(target.path, safe=_URL_SAFE).encode(),
        )
        try:
            response = self._client.post(
                url, headers, encrypted, extensions={"sni_hostname": target.host}
            )
        except SEND_ERRORS as exc:
            return Outcome(RETRY, f"push: {type(exc).__name__}")
        return self._judge(response)

    @staticmethod
    def _judge(response: Answer) -> Outcome:
        status = response.status_code
        if 200 <= status < 300:
            return Outcome(DELIVERED)
        said = f"push: HTTP {status}"
        if status in (404, 410):
            return Outcome(GONE, said)
        if status == 413:
            # The payload is bounded (`TITLE_MAX_BYTES`): the same bytes would be refused again.
            return Outcome(DEAD, f"{said} (payload too large)")
        if status == 429 or status >= 500:
            return Outcome(RETRY, said, retry_after(response))
        # 400, 401, 403 (a VAPID key the subscription was not made with): not for a retry.
        return Outcome(DEAD, said)


def _mailed(mail: MailSender, message: Message) -> Outcome:
    try:
        mail.deliver(message)
    except MailFailed as exc:
        return Outcome(DEAD if exc.permanent else RETRY, str(exc))
    return Outcome(DELIVERED)


def send_email(mail: MailSender, row: Any) -> Outcome:
    return _mailed(mail, reminder_message(mail.settings, row))


def send_confirmation(mail: MailSender, row: Any) -> Outcome:
    """An address's confirmation link, its token derived from the settings' nonce; dropped
    when a later PATCH replaced the link."""
    if row.confirm_nonce is None:
        return Outcome(DROPPED)
    token = confirm_token(mail.settings, row.user_id, row.confirm_nonce)
    if row.confirm_token_hash != token_hash(token):
        return Outcome(DROPPED)
    address = str((row.payload or {}).get("address"))
    message = confirmation_message(mail.settings, row.user_id, address, token, row.event_id)
    return _mailed(mail, message)


class Channels:
    """The sink adapter of `reminder_deliveries`: each row by its channel's sender."""

    def __init__(self, settings: Settings, client: HttpClient, metrics: WorkerMetrics) -> None:
        self._metrics = metrics
        self._senders: dict[str, Callable[[Any], Outcome]] = {}
        if settings.push_on:
            self._senders[PUSH] = PushSender(settings, client).send
        mail = MailSender.configured(settings, keep=True)
        if mail is not None:
            self._senders[EMAIL] = partial(send_email, mail)
            self._senders[CONFIRM] = partial(send_confirmation, mail)

    @property
    def channels(self) -> list[str]:
        """The channels this worker sends (`confirm`, `email`, `push`)."""
        return sorted(self._senders)

    def send(self, row: Any) -> Outcome:
        if not row.reachable or not row.wanted:
            return Outcome(DROPPED)
        if row.channel == PUSH and row.endpoint is None:
            return Outcome(DROPPED)  # the subscription went between fan-out and lease
        sender = self._senders.get(row.channel)
        if sender is None:
            return Outcome(RETRY, f"{row.channel}: not configured on this worker")
        outcome = sender(row)
        if outcome.kind == DELIVERED:
            self._observe(row)
        return outcome

    def _observe(self, row: Any) -> None:
        remind_at = (row.payload or {}).get("remind_at")
        if not remind_at:
            return
        moment = datetime.fromisoformat(remind_at.replace("Z", "+00:00"))
        delay = (datetime.now(UTC) - moment) / timedelta(seconds=1)
        self._metrics.notification_delay.labels(row.channel).observe(max(delay, 0.0))
