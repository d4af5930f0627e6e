"""Reminders that reach a person: the events worker's push and email sink (issue 72;
specs/events.md, "Reminder deliveries").

A fired reminder's event makes one `reminder_deliveries` row per channel of its person (the
trigger of migration 0091, in the firing's transaction). The worker keeps up to
`EVENT_BATCH_SIZE` rows in flight (`Notifier.pump`, each cycle and whenever half of them have
returned), with no barrier per batch:

1. it leases due rows (their `next_attempt_at` moved a lease ahead, `attempts` counted),
   reading beside each what sending needs and whether its person still reaches the task (the
   owner, or a member of its list) and still wants the channel;
2. sends each, with no transaction and no pooled connection held: a Web Push (RFC 8030 POST
   to the subscription's checked address, RFC 8291 `aes128gcm` body, RFC 8292 VAPID header,
   `Topic` from the event id) or an email (backend/services/mail.py);
3. records the outcomes that have come back, grouped by kind, in the message that leases the
   next rows (one implicit transaction): a delivered row is deleted; a failure is retried
   after the outbox's backoff (a `Retry-After` is honoured, within the bound) until
   `EVENT_MAX_ATTEMPTS`, then the row is `dead`; a push service's 404/410 deletes the
   subscription (and its pending rows); a row no longer for its person is deleted unsent.

At least once: a worker killed after sending and before recording sends again when the lease
ends; the repeat carries the same `Topic` (a push service replaces an undelivered one) and the
same `Message-ID`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from functools import partial
from typing import Any

import http_ece
import httpx
from cryptography.hazmat.primitives.asymmetric import ec
from py_vapid import Vapid02
from sqlalchemy import Engine, literal_column, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.sql.visitors import replacement_traverse

from backend.config import Settings
from backend.db.engine import autocommitted
from backend.db.scope import OWNER
from backend.events.bounds import Answer, post
from backend.events.health import WorkerMetrics
from backend.events.outbox import next_try
from backend.events.sinks import urls_kept_out_of_logs
from backend.models import Task
from backend.models.references import Action
from backend.services.access import may
from backend.services.mail import (
    MailFailed,
    MailSender,
    confirmation_message,
    reminder_message,
)
from backend.services.notification_settings import confirm_token, token_hash
from backend.services.push_endpoints import UnsafeEndpoint, resolve

logger = logging.getLogger(__name__)

PUSH, EMAIL, CONFIRM = "push", "email", "confirm"
# A push's payload stays under the 4 KB every push service takes: a longer title is cut.
TITLE_MAX_BYTES = 1000
# How long a push service keeps an undelivered push (RFC 8030 `TTL`): a day.
PUSH_TTL_SECONDS = 24 * 3600
# The VAPID JWT's lifetime (RFC 8292: at most 24 h).
VAPID_JWT_SECONDS = 12 * 3600


def _readable() -> str:
    """Whether the delivery's person may still read its task, as SQL on the lease's `t` (the
    task) and `l` (the row): THE access predicate (`services.access.may`, reading a list's
    tasks), with the row's person where a request binds its caller. Not restated here."""
    tasks = Task.__table__.alias("t")  # type: ignore[attr-defined]

    def person(element: Any, **_: Any) -> Any:
        if getattr(element, "__visit_name__", None) == "bindparam" and element.key == OWNER:
            return literal_column("l.user_id")
        return None

    predicate = replacement_traverse(may(tasks, Action.LIST_READ), {}, person)
    dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
    compiled = predicate.compile(dialect=dialect, compile_kwargs={"literal_binds": True})
    return f"({compiled})"


# The statements of `Notifier._record`, sent as one message (an implicit transaction). Lease:
# due rows, oldest first, skipping those another worker holds.
# `READABLE`: the access predicate (`_readable`, compiled from our own statement, no value).
_LEASE = """
WITH due AS (
    SELECT id FROM reminder_deliveries
    WHERE state = 'pending' AND next_attempt_at <= clock_timestamp()
    ORDER BY next_attempt_at
    LIMIT :batch
    FOR UPDATE SKIP LOCKED
), leased AS (
    UPDATE reminder_deliveries AS d
    SET next_attempt_at = clock_timestamp() + make_interval(secs => :lease),
        attempts = d.attempts + 1
    FROM due
    WHERE d.id = due.id
    RETURNING d.id, d.user_id, d.event_id, d.task_id, d.channel, d.subscription_id,
        d.payload, d.attempts
)
SELECT l.id, l.user_id, l.event_id, l.task_id, l.channel, l.subscription_id, l.payload,
    l.attempts, s.endpoint, s.p256dh, s.auth,
    n.email_address, n.time_zone AS recipient_time_zone, t.time_zone AS task_time_zone,
    t.title AS current_title, n.confirm_token_hash, n.confirm_nonce,
    CASE l.channel
        -- An address's confirmation (migration 0097): still the address, still unconfirmed.
        WHEN 'confirm' THEN coalesce(
            n.email_address = l.payload ->> 'address' AND n.email_confirmed_at IS NULL, false)
        -- The channel rule the fan-out asked too (migration 0098), asked again when sent.
        ELSE reminder_channel_wanted(l.user_id, l.channel)
    END AS wanted,
    l.channel = 'confirm' OR coalesce(READABLE, false) AS reachable
FROM leased AS l
LEFT JOIN push_subscriptions AS s ON s.user_id = l.user_id AND s.id = l.subscription_id
LEFT JOIN notification_settings AS n ON n.user_id = l.user_id
LEFT JOIN tasks AS t ON t.id = l.task_id
""".replace("READABLE", _readable())
# Delivered or dropped: done with.
_DELIVERED = "DELETE FROM reminder_deliveries WHERE id = ANY(CAST(:finished AS bigint[]))"
# A push service's 404/410: the subscription and (its foreign key's cascade) its pending rows.
_GONE = """
DELETE FROM push_subscriptions AS s
USING unnest(CAST(:users AS text[]), CAST(:subscriptions AS bigint[])) AS g(user_id, id)
WHERE s.user_id = g.user_id AND s.id = g.id
"""
_RETRY = """
UPDATE reminder_deliveries AS d
SET next_attempt_at = clock_timestamp() + make_interval(secs => r.wait), last_error = r.error
FROM unnest(CAST(:ids AS bigint[]), CAST(:waits AS float8[]), CAST(:errors AS text[]))
    AS r(id, wait, error)
WHERE d.id = r.id
"""
_DEAD = """
UPDATE reminder_deliveries AS d SET state = 'dead', last_error = r.error
FROM unnest(CAST(:dead_ids AS bigint[]), CAST(:dead_errors AS text[])) AS r(id, error)
WHERE d.id = r.id
"""


_BACKLOG = """
SELECT count(*) FILTER (WHERE state = 'pending'), count(*) FILTER (WHERE state = 'dead')
FROM reminder_deliveries
"""


def delivery_backlog(conn: Any) -> tuple[int, int]:
    """Reminders' pushes and emails and address confirmations: (pending, dead), for `python
    -m backend events status` (the table holds only what is not yet delivered)."""
    pending, dead = conn.execute(text(_BACKLOG)).one()
    return int(pending), int(dead)


@dataclass
class Outcome:
    """What one attempt ended in: `delivered`, `retry` (after `wait` seconds at least),
    `dead`, `gone` (the subscription ended) or `dropped` (no longer for its person)."""

    kind: str
    error: str = ""
    wait: float | None = None


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


def retry_after(response: Answer | httpx.Response) -> float | None:
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
    """RFC 8291's `aes128gcm` message for a subscription (its `p256dh` and `auth`, base64url):
    ECDH with a fresh P-256 key of ours, by http-ece (RFC 8188). Its 86-byte header: a random
    16-byte salt, record size 4096, and as key id our ephemeral public key (65 bytes, the
    uncompressed point) the browser derives the secret with."""
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
    """One Web Push: encrypt with http-ece (`encrypt`), sign with py-vapid, POST with httpx to
    the endpoint's checked address (no redirects, the whole call bounded)."""

    def __init__(self, settings: Settings, client: httpx.Client) -> None:
        self._settings = settings
        self._vapid = Vapid02(private_key=settings.vapid_key())
        self._client = client

    def send(self, row: Any) -> Outcome:
        try:
            target = resolve(row.endpoint, self._settings)
        except UnsafeEndpoint as exc:
            return Outcome("dead", f"push: {exc}")
        body = json.dumps(push_payload(row), separators=(",", ":")).encode()
        encrypted = encrypt(body, row.p256dh, row.auth)
        claims = {
            "aud": target.origin,
            "exp": int(time.time()) + VAPID_JWT_SECONDS,
            "sub": self._settings.vapid_contact,
        }
        headers = {
            **self._vapid.sign(claims),
            "Content-Encoding": "aes128gcm",
            "Content-Type": "application/octet-stream",
            "TTL": str(PUSH_TTL_SECONDS),
            "Urgency": "high",
            "Topic": topic(row.event_id),
            "Host": target.origin.split("://", 1)[1],
        }
        try:
            response = post(
                self._client,
                target.url,
                seconds=self._settings.push_timeout_seconds,
                content=encrypted,
                headers=headers,
                extensions={"sni_hostname": target.host},
            )
        except httpx.HTTPError as exc:
            return Outcome("retry", f"push: {type(exc).__name__}")
        return self._judge(response)

    @staticmethod
    def _judge(response: Answer) -> Outcome:
        status = response.status_code
        if 200 <= status < 300:
            return Outcome("delivered")
        said = f"push: HTTP {status}"
        if status in (404, 410):
            return Outcome("gone", said)
        if status == 413:
            # The payload is bounded (`TITLE_MAX_BYTES`): the same bytes would be refused again.
            return Outcome("dead", f"{said} (payload too large)")
        if status == 429 or status >= 500:
            return Outcome("retry", said, retry_after(response))
        # 400, 401, 403 (a VAPID key the subscription was not made with): not for a retry.
        return Outcome("dead", said)


def send_email(mail: MailSender, row: Any) -> Outcome:
    try:
        mail.deliver(reminder_message(mail.settings, row))
    except MailFailed as exc:
        return Outcome("dead" if exc.permanent else "retry", str(exc))
    return Outcome("delivered")


def send_confirmation(mail: MailSender, row: Any) -> Outcome:
    """An address's confirmation link, queued by the PATCH that stored the address (migration
    0097): its token derived from the settings' nonce; dropped when the link is no longer
    the one stored (a later PATCH replaced it). The same `Message-ID` on every send of one
    row."""
    stored = row.payload or {}
    if row.confirm_nonce is None:
        return Outcome("dropped")
    token = confirm_token(mail.settings, row.user_id, row.confirm_nonce)
    if row.confirm_token_hash != token_hash(token):
        return Outcome("dropped")
    message = confirmation_message(
        mail.settings, row.user_id, str(stored.get("address")), token, row.event_id
    )
    try:
        mail.deliver(message)
    except MailFailed as exc:
        return Outcome("dead" if exc.permanent else "retry", str(exc))
    return Outcome("delivered")


Sender = Callable[[Any], Outcome]


@dataclass
class _Flight:
    """A leased row on its way: its send's future and when its lease began (monotonic)."""

    row: Any
    leased_at: float
    future: Future[Outcome]


class Notifier:
    """The push and email sink of the events worker, pipelined: at most `window` rows in
    flight, more leased whenever they have fallen to half (`pump`), outcomes recorded as
    they finish, in the same message as the next lease; no batch waits for its slowest send.

    A lease outlasts what may be ahead of a row twice over: every call at its timeout, as
    many waves as the pool needs for a window. An outcome is recorded only within half the
    lease; a send still running then keeps its row leased until the lease ends, and counts
    against the window until it returns (its thread is busy)."""

    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        metrics: WorkerMetrics,
        pool: ThreadPoolExecutor,
        client: httpx.Client,
        senders: dict[str, Sender] | None = None,
        *,
        parallel: int,
    ) -> None:
        urls_kept_out_of_logs()  # a push endpoint's path is its subscription's capability
        self._engine = engine
        self._settings = settings
        self._metrics = metrics
        self._pool = pool
        if senders is None:
            senders = {}
            if settings.push_on:
                senders[PUSH] = PushSender(settings, client).send
            mail = MailSender.configured(settings, keep=True)
            if mail is not None:
                senders[EMAIL] = partial(send_email, mail)
                senders[CONFIRM] = partial(send_confirmation, mail)
        self._senders = senders
        self.window = settings.event_batch_size
        # `parallel`: the pool's threads, so the lease covers the window's waves of sends.
        waves = -(-self.window // parallel)
        slowest = max(settings.push_timeout_seconds, settings.smtp_timeout_seconds)
        self.lease_seconds = 2 * slowest * waves
        self._flights: dict[int, _Flight] = {}
        self._lock = threading.Lock()
        self._sending = 0  # sends not yet returned (under `_lock`)
        self._more = False  # the last lease took all it asked for: more may be due
        # Set when the sends in flight have fallen to half the window (more may be due: the
        # next lease) or to none (all to record): the worker's loop then pumps again.
        self.room = threading.Event()

    @property
    def channels(self) -> list[str]:
        """The channels this worker sends (`push`, `email`)."""
        return sorted(self._senders)

    @property
    def in_flight(self) -> int:
        """Rows leased by this worker and not yet recorded."""
        return len(self._flights)

    def pump(self, lease: bool = True) -> int:
        """Record the sends that finished and, when at most half the window is in flight
        (and `lease`), lease up to the window's room, in one message; returns how many rows
        it leased. Never waits for a send."""
        self.room.clear()
        now = time.monotonic()
        finished = [f for f in self._flights.values() if f.future.done()]
        outcomes: dict[int, Outcome] = {}
        for flight in finished:
            del self._flights[flight.row.id]
            # Past half its lease another worker may lease it soon: its outcome is left
            # unrecorded, and the row is leased again when the lease ends (at least once).
            if now - flight.leased_at < self.lease_seconds / 2:
                outcomes[flight.row.id] = flight.future.result()
        room = self.window - len(self._flights)
        wanted = room if lease and room * 2 >= self.window else 0
        rows = self._record(
            [f.row for f in finished if f.row.id in outcomes], outcomes, lease=wanted
        )
        if wanted:
            with self._lock:
                self._more = wanted == len(rows)
        for row in rows:
            with self._lock:
                self._sending += 1
            future = self._pool.submit(self._attempt, row)
            future.add_done_callback(self._returned)
            # The lease began in the statement: `now`, taken before, is on the safe side.
            self._flights[row.id] = _Flight(row, now, future)
        return len(rows)

    def run(self) -> int:
        """Lease, send and record one batch, waiting for it (within half the lease): the
        pump's steps in turn, for tests and tools; returns how many rows it leased."""
        leased = self.pump()
        self.finish()
        return leased

    def finish(self) -> None:
        """Wait for the sends in flight (each within half its lease) and record them."""
        if not self._flights:
            return
        oldest = min(f.leased_at for f in self._flights.values())
        wait(
            [f.future for f in self._flights.values()],
            timeout=max(0.0, oldest + self.lease_seconds / 2 - time.monotonic()),
        )
        self.pump(lease=False)

    def _returned(self, _: Future[Outcome]) -> None:
        with self._lock:
            self._sending -= 1
            if self._sending == 0 or (self._more and self._sending * 2 <= self.window):
                self.room.set()

    def _attempt(self, row: Any) -> Outcome:
        if not row.reachable or not row.wanted:
            return Outcome("dropped")
        if row.channel == PUSH and row.endpoint is None:
            return Outcome("dropped")  # the subscription went between fan-out and lease
        sender = self._senders.get(row.channel)
        if sender is None:
            return Outcome("retry", f"{row.channel}: not configured on this worker")
        try:
            outcome = sender(row)
        except Exception as exc:  # a bug, not the receiver: say where, retry within the bound
            logger.exception("reminder delivery %s (%s) failed", row.id, row.channel)
            return Outcome("retry", f"{row.channel}: {type(exc).__name__}")
        if outcome.kind == "delivered":
            self._observe(row)
        return outcome

    def _record(self, rows: Sequence[Any], outcomes: dict[int, Outcome], lease: int) -> list[Any]:
        """One message, one transaction (autocommitted): the outcomes, grouped by kind,
        then the lease of up to `lease` rows; returns the leased rows."""
        settings = self._settings
        finished: list[int] = []
        retry: dict[str, list[Any]] = {"ids": [], "waits": [], "errors": []}
        dead: dict[str, list[Any]] = {"dead_ids": [], "dead_errors": []}
        gone: dict[str, list[Any]] = {"users": [], "subscriptions": []}
        for row in rows:
            outcome = outcomes[row.id]
            counted = outcome.kind
            if outcome.kind in ("delivered", "dropped"):
                finished.append(row.id)
            elif outcome.kind == "gone":
                gone["users"].append(row.user_id)
                gone["subscriptions"].append(row.subscription_id)
            elif (
                outcome.kind == "retry"
                and (retry_in := next_try(settings, row.attempts, outcome.wait)) is not None
            ):
                retry["ids"].append(row.id)
                retry["waits"].append(retry_in.total_seconds())
                retry["errors"].append(outcome.error)
                counted = "retried"
            else:
                dead["dead_ids"].append(row.id)
                dead["dead_errors"].append(outcome.error)
                counted = "dead"
                logger.warning(
                    "reminder delivery %s dead after %d attempts: %s",
                    row.id,
                    row.attempts,
                    outcome.error,
                )
            self._metrics.notifications.labels(row.channel, counted).inc()
        parts: list[str] = []
        values: dict[str, Any] = {}
        groups: list[tuple[str, dict[str, list[Any]]]] = [
            (_DELIVERED, {"finished": finished}),
            (_GONE, gone),
            (_RETRY, retry),
            (_DEAD, dead),
        ]
        for sql, group in groups:
            if any(group.values()):
                parts.append(sql)
                values.update(group)
        if lease:
            parts.append(_LEASE)
            values.update({"batch": lease, "lease": self.lease_seconds})
        if not parts:
            return []
        with autocommitted(self._engine) as conn:
            result = conn.execute(text(";\n".join(parts)), values)
            return list(result.all()) if lease else []

    def _observe(self, row: Any) -> None:
        remind_at = (row.payload or {}).get("remind_at")
        if not remind_at:
            return
        moment = datetime.fromisoformat(remind_at.replace("Z", "+00:00"))
        delay = (datetime.now(UTC) - moment) / timedelta(seconds=1)
        self._metrics.notification_delay.labels(row.channel).observe(max(delay, 0.0))
