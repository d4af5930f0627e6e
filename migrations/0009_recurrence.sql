-- depends: 0008_task_events
-- Recurring tasks (backend/recurrence.py, specs/data-model.md "Recurrence").
--
-- `recurrence` is the task's RRULE as the API stores it (RFC 5545, without the RRULE: prefix),
-- evaluated in `time_zone` from `series_start` (the series' first due date, the rule's
-- DTSTART; COUNT counts from it). `next_due_date` is the occurrence after this one, computed
-- by the API whenever the rule, the zone, the start or the due date changes; completing the
-- task inserts its successor, due then, in the same transaction. `series_id` is shared by the
-- series' occurrences.
--
-- Exactly one successor: it names its predecessor in `previous_task_id`, which is unique, and
-- is inserted with ON CONFLICT DO NOTHING. However a completion is retried, raced or undone
-- and redone (reopen, complete again), a second successor of the same occurrence cannot
-- exist. No foreign key: deleting an occurrence leaves its successor as it is.
--
-- `reminders` is data only (delivery is not part of this migration): a JSON array of up to
-- five objects, {"minutes_before_due": n} or {"at": "<instant>"}.
--
-- Every new column is nullable or has a constant default: ADD COLUMN rewrites nothing.
ALTER TABLE tasks
    ADD COLUMN recurrence       TEXT,
    ADD COLUMN time_zone        TEXT        NOT NULL DEFAULT 'UTC',
    ADD COLUMN reminders        JSONB       NOT NULL DEFAULT '[]'::jsonb,
    ADD COLUMN series_id        UUID,
    ADD COLUMN series_start     TIMESTAMPTZ,
    ADD COLUMN next_due_date    TIMESTAMPTZ,
    ADD COLUMN previous_task_id BIGINT,
    ADD CONSTRAINT uq_tasks_previous_task_id UNIQUE (previous_task_id),
    -- The API's limits, backed here (backend/recurrence.py, backend/models/task.py).
    ADD CONSTRAINT ck_tasks_recurrence_length
        CHECK (char_length(recurrence) BETWEEN 1 AND 500),
    ADD CONSTRAINT ck_tasks_time_zone_length CHECK (char_length(time_zone) BETWEEN 1 AND 64),
    ADD CONSTRAINT ck_tasks_reminders_array CHECK (
        CASE WHEN jsonb_typeof(reminders) = 'array'
            THEN jsonb_array_length(reminders) <= 5
            ELSE false
        END
    ),
    -- A recurring task has a due date and a whole series; a task that does not recur has
    -- neither a series nor a next occurrence.
    ADD CONSTRAINT ck_tasks_recurrence_series CHECK (
        CASE WHEN recurrence IS NULL
            THEN series_id IS NULL AND series_start IS NULL AND next_due_date IS NULL
            ELSE due_date IS NOT NULL AND series_id IS NOT NULL AND series_start IS NOT NULL
        END
    ),
    ADD CONSTRAINT ck_tasks_next_due_date_later CHECK (next_due_date > due_date);
