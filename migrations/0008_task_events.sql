-- depends: 0007_idempotency_keys
-- The transactional outbox: one row per change to a task, written by a trigger on `tasks`
-- in the transaction that makes the change, so a rolled-back change leaves no row and a
-- committed one always has one, whichever code path (or SQL session) made it. The change
-- feed (GET /api/tasks/changes) reads it; `python -m backend worker` delivers it to the event
-- sinks (specs/events.md).
--
-- Order: `id` is taken at insert time, which alone is not commit order. Every transaction
-- that records a change for a user holds that user's transaction-level advisory lock
-- (`task_events_lock`) from before its first change until it ends, so one user's changes are
-- inserted and committed one transaction at a time: within a user, `id` order is commit
-- order, and a reader that sees a user's row `n` sees every row of that user below `n`.
-- Requests take the lock when they enter (backend/services/accounts/users.py, with the account
-- check), before any row lock; the trigger takes it again (a no-op then) for any other writer.
CREATE TABLE task_events (
    id              BIGINT      GENERATED ALWAYS AS IDENTITY,
    event_id        UUID        NOT NULL DEFAULT gen_random_uuid(),
    user_id         TEXT        NOT NULL,
    task_id         BIGINT      NOT NULL,
    type            TEXT        NOT NULL,
    -- The task as the change left it (its row); NULL for `deleted`.
    task            JSONB,
    -- When the change was made, inside its transaction (retention counts from it).
    occurred_at     TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
    -- Delivery by the worker: pending -> delivered, or dead after too many failed attempts.
    state           TEXT        NOT NULL DEFAULT 'pending',
    attempts        INTEGER     NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
    -- The sinks that accepted it: a retry skips them.
    delivered_to    TEXT[]      NOT NULL DEFAULT '{}',
    last_error      TEXT,
    delivered_at    TIMESTAMPTZ,
    CONSTRAINT pk_task_events PRIMARY KEY (id),
    CONSTRAINT uq_task_events_event_id UNIQUE (event_id),
    CONSTRAINT ck_task_events_type
        CHECK (type IN ('created', 'updated', 'completed', 'reopened', 'deleted')),
    CONSTRAINT ck_task_events_task_present CHECK ((type = 'deleted') = (task IS NULL)),
    CONSTRAINT ck_task_events_state CHECK (state IN ('pending', 'delivered', 'dead'))
);

-- The feed: one user's changes in order.
CREATE INDEX ix_task_events_user_id_id ON task_events (user_id, id);
-- The worker's claim: pending rows in order, and "is there an earlier pending change of the
-- same task" (per-task delivery order).
CREATE INDEX ix_task_events_pending_id ON task_events (id) WHERE state = 'pending';
CREATE INDEX ix_task_events_pending_task_id_id ON task_events (task_id, id) WHERE state = 'pending';
-- Pruning past retention, oldest first.
CREATE INDEX ix_task_events_occurred_at ON task_events (occurred_at);

-- How far pruning has gone, per user: the highest id deleted. A feed cursor below it may have
-- missed changes (410); pruning updates it in the statement that deletes.
CREATE TABLE task_events_pruned (
    user_id     TEXT   NOT NULL,
    through_id  BIGINT NOT NULL,
    CONSTRAINT pk_task_events_pruned PRIMARY KEY (user_id)
);

-- One user's change lock (see above). Namespaced, so it cannot meet the idempotency keys'
-- advisory locks.
CREATE FUNCTION task_events_lock(owner TEXT) RETURNS void
LANGUAGE sql VOLATILE PARALLEL UNSAFE AS $$
    SELECT pg_advisory_xact_lock(hashtextextended('task-api:task-events:' || owner, 0))
$$;

-- UTC for the duration of the trigger: the task's timestamps are recorded in UTC whatever the
-- writing session's time zone.
CREATE FUNCTION task_events_record() RETURNS trigger
LANGUAGE plpgsql SET TimeZone = 'UTC' AS $$
DECLARE
    change TEXT;
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM task_events_lock(OLD.user_id);
        INSERT INTO task_events (user_id, task_id, type) VALUES (OLD.user_id, OLD.id, 'deleted');
        RETURN OLD;
    END IF;
    PERFORM task_events_lock(NEW.user_id);
    IF TG_OP = 'INSERT' THEN
        change := 'created';
    ELSIF NEW.completed AND NOT OLD.completed THEN
        change := 'completed';
    ELSIF OLD.completed AND NOT NEW.completed THEN
        change := 'reopened';
    ELSE
        change := 'updated';
    END IF;
    INSERT INTO task_events (user_id, task_id, type, task)
    VALUES (NEW.user_id, NEW.id, change, to_jsonb(NEW));
    RETURN NEW;
END
$$;

-- Also fires for the rows an account deletion removes (ON DELETE CASCADE).
CREATE TRIGGER tasks_record_event AFTER INSERT OR UPDATE OR DELETE ON tasks
    FOR EACH ROW EXECUTE FUNCTION task_events_record();
