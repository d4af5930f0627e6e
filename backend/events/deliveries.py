"""The reminder deliveries queue (`reminder_deliveries`: Web Push, email, address
confirmations): every statement on it the worker and the `events` commands run (specs/events.md,
"Reminder deliveries").
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sqlalchemy import Connection, Engine, literal_column, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.sql.visitors import replacement_traverse

from backend.config import Settings
from backend.db.engine import autocommitted
from backend.db.scope import OWNER
from backend.events import engine
from backend.events.bounds import HttpClient
from backend.events.engine import Lane, Receivers, Settled
from backend.events.health import WorkerMetrics
from backend.events.notify import Channels
from backend.models import Task
from backend.models.references import Action
from backend.services.statements.access import may


def _readable() -> str:
    """THE access predicate (`services.access.may`) as SQL on the lease's `t` (the task), with
    `l`'s (the row's) person where a request binds its caller: not restated here."""
    tasks = Task.__table__.alias("t")  # type: ignore[attr-defined]

    def person(element: Any, **_: Any) -> Any:
        if getattr(element, "__visit_name__", None) == "bindparam" and element.key == OWNER:
            return literal_column("l.user_id")
        return None

    predicate = replacement_traverse(may(tasks, Action.LIST_READ), {}, person)
    dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
    compiled = predicate.compile(dialect=dialect, compile_kwargs={"literal_binds": True})
    return f"({compiled})"


# Due rows, skipping pushes to a full push service (`:busy`); one in its person's quiet hours
# is moved to the window's end uncounted and not sent (`held`). `READABLE`: `_readable()`.
_LEASE = """
WITH due AS (
    SELECT id, CASE WHEN channel <> 'confirm'
        THEN quiet_until(user_id, clock_timestamp()) END AS quiet
    FROM reminder_deliveries
    WHERE state = 'pending' AND next_attempt_at <= clock_timestamp()
    AND attempts < :max_attempts
    AND (cardinality(CAST(:busy AS text[])) = 0 OR NOT EXISTS (
        SELECT 1 FROM push_subscriptions AS b
        WHERE b.user_id = reminder_deliveries.user_id
        AND b.id = reminder_deliveries.subscription_id
        AND split_part(b.endpoint, '/', 3) = ANY(CAST(:busy AS text[]))
    ))
    ORDER BY next_attempt_at
    LIMIT :batch
    FOR UPDATE OF reminder_deliveries SKIP LOCKED
), leased AS (
    UPDATE reminder_deliveries AS d
    SET next_attempt_at = coalesce(
            due.quiet, clock_timestamp() + make_interval(secs => :lease)),
        attempts = d.attempts + CASE WHEN due.quiet IS NULL THEN 1 ELSE 0 END
    FROM due
    WHERE d.id = due.id
    RETURNING d.id, d.user_id, d.event_id, d.task_id, d.channel, d.subscription_id,
        d.payload, d.attempts, due.quiet IS NOT NULL AS held
)
SELECT l.id, l.user_id, l.event_id, l.task_id, l.channel, l.subscription_id, l.payload,
    l.attempts, l.held, s.endpoint, s.p256dh, s.auth,
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
# Out of attempts, the last one's outcome never recorded (its lease ended): dead, not sent.
_EXHAUSTED = """
UPDATE reminder_deliveries
SET state = 'dead', last_error = 'no outcome recorded for its last attempt (its lease ended)'
WHERE state = 'pending' AND next_attempt_at <= clock_timestamp() AND attempts >= :max_attempts
"""
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
# Not tried (its push service had no room): not an attempt, due again at once.
_DEFERRED = """
UPDATE reminder_deliveries
SET attempts = attempts - 1, next_attempt_at = clock_timestamp()
WHERE id = ANY(CAST(:deferred AS bigint[]))
"""
_DEAD = """
UPDATE reminder_deliveries AS d SET state = 'dead', last_error = r.error
FROM unnest(CAST(:dead_ids AS bigint[]), CAST(:dead_errors AS text[])) AS r(id, error)
WHERE d.id = r.id
"""

# Each outcome's statement and the arrays it binds, in the order they run.
_RECORDED = (
    (_DELIVERED, ("finished",)),
    (_GONE, ("users", "subscriptions")),
    (_RETRY, ("ids", "waits", "errors")),
    (_DEAD, ("dead_ids", "dead_errors")),
    (_DEFERRED, ("deferred",)),
)


class DeliveryQueue:
    """`reminder_deliveries`: one row, one channel (`push`, `email`, `confirm`)."""

    name = "reminder deliveries"

    def __init__(self, max_attempts: int, busy: Callable[[], list[str]] = list) -> None:
        self._max_attempts = max_attempts
        self._busy = busy

    def exchange(
        self, db: Engine, settled: Sequence[Settled], lease: int, seconds: float
    ) -> tuple[list[Any], int]:
        """One message: the outcomes, grouped by kind, then the lease of up to `lease` rows."""
        values: dict[str, list[Any]] = {name: [] for _, names in _RECORDED for name in names}
        for done in settled:
            row, kind = done.row, done.kind
            if kind in (engine.DELIVERED, engine.DROPPED):
                values["finished"].append(row.id)
            elif kind == engine.GONE:
                values["users"].append(row.user_id)
                values["subscriptions"].append(row.subscription_id)
            elif kind == engine.DEFERRED:
                values["deferred"].append(row.id)
            elif kind == engine.RETRY:
                values["ids"].append(row.id)
                values["waits"].append(done.retry_in)
                values["errors"].append(done.outcome.error)
            else:
                values["dead_ids"].append(row.id)
                values["dead_errors"].append(done.outcome.error)
        recorded = [(sql, names) for sql, names in _RECORDED if values[names[0]]]
        parts = [sql for sql, _ in recorded]
        bound: dict[str, Any] = {name: values[name] for _, names in recorded for name in names}
        if lease:
            parts += [_EXHAUSTED, _LEASE]
            bound.update({"batch": lease, "lease": seconds, "busy": self._busy()})
            bound["max_attempts"] = self._max_attempts
        if not parts:
            return [], 0
        with autocommitted(db) as conn:
            result = conn.execute(text(";\n".join(parts)), bound)
            rows = list(result.all()) if lease else []
        return [row for row in rows if not row.held], len(rows)

    def observe(self, metrics: WorkerMetrics, settled: Settled) -> None:
        if settled.kind == engine.DEFERRED:
            return
        counted = "retried" if settled.kind == engine.RETRY else settled.kind
        metrics.notifications.labels(settled.row.channel, counted).inc()

    def describe(self, row: Any) -> str:
        return f"reminder delivery {row.id} ({row.channel})"


def push_origin(row: Any) -> str | None:
    """The push service a delivery calls (its endpoint's host and port, as the lease's
    `split_part(endpoint, '/', 3)`), or None: not a push."""
    endpoint = getattr(row, "endpoint", None)
    if row.channel != "push" or not endpoint:
        return None
    parts = endpoint.split("/")
    return parts[2] if len(parts) > 2 else ""


class PerService:
    """`Channels.send` with at most half the lane's capacity per push service (`Receivers`,
    `engine.receiver_share`: half its threads or of its window, the smaller), so a stalled one
    holds no more; emails go to the one configured server, unbounded here."""

    def __init__(self, channels: Channels, parallel: int, window: int) -> None:
        self._channels = channels
        self.receivers = Receivers(engine.receiver_share(parallel, window))

    def send(self, row: Any) -> engine.Outcome:
        origin = push_origin(row)
        if origin is None:
            return self._channels.send(row)
        began = self.receivers.enter(origin)
        if began is None:
            return engine.Outcome(engine.DEFERRED)
        outcome = engine.Outcome(engine.RETRY)
        try:
            outcome = self._channels.send(row)
            return outcome
        finally:
            ok = outcome.kind in (engine.DELIVERED, engine.GONE, engine.DROPPED)
            self.receivers.leave(origin, began, ok)


def reminder_lane(
    db: Engine,
    settings: Settings,
    metrics: WorkerMetrics,
    pool: ThreadPoolExecutor,
    client: HttpClient,
    *,
    parallel: int,
    room: Any = None,
) -> Lane:
    """The engine's lane for reminders' pushes and emails and address confirmations."""
    channels = Channels(settings, client, metrics)
    bounded = PerService(channels, parallel, settings.event_batch_size)
    slowest = max(settings.push_timeout_seconds, settings.smtp_timeout_seconds)
    return Lane(
        db,
        settings,
        metrics,
        DeliveryQueue(settings.event_max_attempts, bounded.receivers.busy),
        bounded.send,
        pool,
        parallel=parallel,
        slowest_row_seconds=slowest,
        room=room,
        names=channels.channels,
    )


_DEAD_ROWS = """
SELECT id, event_id, channel, task_id, user_id, attempts, created_at, last_error
FROM reminder_deliveries WHERE state = 'dead' ORDER BY id LIMIT :limit
"""
_REQUEUE = """
UPDATE reminder_deliveries
SET state = 'pending', attempts = 0, next_attempt_at = clock_timestamp(), last_error = NULL
WHERE state = 'dead' AND (CAST(:all AS boolean) OR id = ANY(CAST(:ids AS bigint[])))
"""


def dead_letters(conn: Connection, limit: int) -> Sequence[Any]:
    """Dead deliveries, oldest first (for `python -m backend events dead`)."""
    return conn.execute(text(_DEAD_ROWS), {"limit": limit}).all()


def requeue(conn: Connection, ids: Sequence[int] | None) -> int:
    """Dead deliveries (those named, or all) back to pending, with fresh attempts."""
    chosen = {"all": ids is None, "ids": list(ids or [])}
    return int(conn.execute(text(_REQUEUE), chosen).rowcount)
