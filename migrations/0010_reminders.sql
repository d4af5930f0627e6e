-- depends: 0009_recurrence
-- Reminders, delivered by the worker (backend/services/delivery/reminders.py, specs/events.md).
--
-- `task_reminders` is the schedule: one row per reminder instant of a task. A trigger on
-- `tasks` keeps it in step with the task in the writing transaction, whatever wrote it
-- (every route, bulk, MCP, a recurring task's next occurrence): a change of `due_date`,
-- `reminders` or `completed` drops the task's unsent reminders and schedules the current
-- ones, unless the task is completed; deleting the task deletes them (ON DELETE CASCADE).
-- A reminder whose instant has already passed when it is scheduled is not scheduled. One
-- already sent keeps its row, so the same instant is never scheduled (and sent) twice.
--
-- The worker fires due reminders with FOR UPDATE SKIP LOCKED, marking each fired and
-- writing its event into `task_events` (type `reminder`) in one transaction: however many
-- workers run, a reminder becomes one event, delivered like every other.
CREATE TABLE task_reminders (
    id         BIGINT      GENERATED ALWAYS AS IDENTITY,
    task_id    BIGINT      NOT NULL,
    user_id    TEXT        NOT NULL,
    remind_at  TIMESTAMPTZ NOT NULL,
    -- NULL until fired; then `sent`, `late` (sent past the grace period) or `skipped` (past
    -- the maximum lateness: not sent).
    fired_at   TIMESTAMPTZ,
    outcome    TEXT,
    CONSTRAINT pk_task_reminders PRIMARY KEY (id),
    CONSTRAINT uq_task_reminders_task_id_remind_at UNIQUE (task_id, remind_at),
    CONSTRAINT fk_task_reminders_task_id_tasks FOREIGN KEY (task_id)
        REFERENCES tasks (id) ON DELETE CASCADE,
    CONSTRAINT ck_task_reminders_outcome CHECK (
        (fired_at IS NULL AND outcome IS NULL)
        OR (fired_at IS NOT NULL AND outcome IN ('sent', 'late', 'skipped'))
    )
);

-- The worker's question, "what is due": unfired reminders by instant.
CREATE INDEX ix_task_reminders_due ON task_reminders (remind_at) WHERE fired_at IS NULL;

CREATE FUNCTION task_reminders_schedule() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        DELETE FROM task_reminders WHERE task_id = NEW.id AND fired_at IS NULL;
    END IF;
    IF NOT NEW.completed THEN
        INSERT INTO task_reminders (task_id, user_id, remind_at)
        SELECT NEW.id, NEW.user_id, instant
        FROM (
            SELECT CASE
                WHEN reminder ? 'at' THEN (reminder ->> 'at')::timestamptz
                ELSE NEW.due_date
                    - make_interval(mins => (reminder ->> 'minutes_before_due')::int)
            END AS instant
            FROM jsonb_array_elements(NEW.reminders) AS reminder
        ) AS wanted
        WHERE instant > clock_timestamp()
        ON CONFLICT (task_id, remind_at) DO NOTHING;
    END IF;
    RETURN NULL;
END
$$;

-- Only tasks that have (or had) reminders pay for the trigger.
CREATE TRIGGER tasks_schedule_reminders_on_insert AFTER INSERT ON tasks
    FOR EACH ROW WHEN (NEW.reminders <> '[]'::jsonb)
    EXECUTE FUNCTION task_reminders_schedule();
CREATE TRIGGER tasks_schedule_reminders_on_update AFTER UPDATE ON tasks
    FOR EACH ROW WHEN (
        (NEW.reminders <> '[]'::jsonb OR OLD.reminders <> '[]'::jsonb)
        AND (
            NEW.due_date IS DISTINCT FROM OLD.due_date
            OR NEW.reminders IS DISTINCT FROM OLD.reminders
            OR NEW.completed IS DISTINCT FROM OLD.completed
        )
    )
    EXECUTE FUNCTION task_reminders_schedule();

-- Reminder events share the outbox (and so its delivery, retries and dead-lettering), but
-- not the change feed: the feed and its positions count changes only.
ALTER TABLE task_events DROP CONSTRAINT ck_task_events_type;
ALTER TABLE task_events ADD CONSTRAINT ck_task_events_type
    CHECK (type IN ('created', 'updated', 'completed', 'reopened', 'deleted', 'reminder'));

-- Changes recorded before 0009 hold the task without its recurrence columns; the feed and the
-- worker render every recorded task with the current task schema, so give those the values
-- 0009 gave their tasks (a task that does not recur).
UPDATE task_events
SET task = jsonb_build_object(
        'recurrence', NULL, 'time_zone', 'UTC', 'reminders', '[]'::jsonb, 'series_id', NULL,
        'series_start', NULL, 'next_due_date', NULL, 'previous_task_id', NULL
    ) || task
WHERE task IS NOT NULL AND type <> 'reminder' AND NOT task ? 'time_zone';
