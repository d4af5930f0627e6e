"""Firing due reminders, each one `reminder` event in its recipient's outbox. One statement claims
them (FOR UPDATE SKIP LOCKED), marks them fired and inserts their events, so none fires twice and a
killed worker's fire nothing; a late one is marked `late`, a very late one skipped."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine, text

from backend.config import Settings

# As the API prints them, whatever the session's zone: instants in UTC with Z, a day as a date.
_FIRE = text(
    """
WITH due AS (
    SELECT id FROM task_reminders
    WHERE fired_at IS NULL AND remind_at <= clock_timestamp()
    ORDER BY remind_at
    LIMIT :batch
    FOR UPDATE SKIP LOCKED
), fired AS (
    UPDATE task_reminders AS r
    SET fired_at = clock_timestamp(),
        outcome = CASE
            WHEN :max_lateness > 0
                AND clock_timestamp() - r.remind_at > make_interval(secs => :max_lateness)
                THEN 'skipped'
            WHEN clock_timestamp() - r.remind_at > make_interval(secs => :grace) THEN 'late'
            ELSE 'sent'
        END
    FROM due
    WHERE r.id = due.id
    RETURNING r.task_id, coalesce(r.recipient_id, r.user_id) AS user_id, r.remind_at, r.outcome
), sent AS (
    INSERT INTO task_events (user_id, task_id, type, task)
    SELECT fired.user_id, fired.task_id, 'reminder', jsonb_build_object(
        'task_id', fired.task_id,
        'title', tasks.title,
        'due_at', CASE WHEN tasks.all_day
            THEN to_char(tasks.due_date AT TIME ZONE tasks.time_zone, 'YYYY-MM-DD')
            ELSE to_char(tasks.due_date AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') END,
        'remind_at',
            to_char(fired.remind_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
        'user_id', fired.user_id,
        'late', fired.outcome = 'late'
    )
    FROM fired JOIN tasks ON tasks.id = fired.task_id
    WHERE fired.outcome <> 'skipped' AND NOT tasks.completed
    RETURNING 1
)
SELECT
    (SELECT count(*) FROM fired) AS fired,
    (SELECT count(*) FROM sent) AS sent,
    (SELECT count(*) FROM fired WHERE outcome = 'skipped') AS skipped
"""
)


@dataclass(frozen=True)
class Fired:
    fired: int
    sent: int
    skipped: int


def fire_due(engine: Engine, settings: Settings, batch: int = 500) -> Fired:
    """Turn up to `batch` due reminders into events, in one transaction."""
    values = {
        "batch": batch,
        "grace": settings.reminder_grace_seconds,
        "max_lateness": settings.reminder_max_lateness_seconds,
    }
    with engine.begin() as conn:
        fired, sent, skipped = conn.execute(_FIRE, values).one()
    return Fired(fired=int(fired), sent=int(sent), skipped=int(skipped))
