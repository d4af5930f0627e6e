-- depends: 0023_cheap_writes
-- A task's subtask counts kept on its row (issue 31, item 3).
--
-- Every task the API answers with carries `subtask_count` and `open_subtask_count`. They were
-- two correlated subqueries in every statement that returned a task (a GET, a list page, the
-- RETURNING of every write): half of what a GET cost PostgreSQL and a quarter of a PATCH,
-- mostly planning them (specs/benchmark.md). Now they are columns, kept by a row trigger that
-- only a subtask's insert, delete, completion change or move fires, so a task without
-- subtasks (most of them) pays nothing, and a read pays a column.
--
-- The counts are not the task's own state: changing them bumps no version (the ETag is the
-- task's, as before), touches no `updated_at` and records no change event (an event holds the
-- task's own fields; its counts stay null in the feed, as they were). A successor does not
-- take them from its predecessor (its copied subtasks count themselves in).
--
-- Nested writes keep them right: completing a task completes its open subtasks
-- (`tasks_subtasks_complete`), each of which takes one off its parent's open count; deleting a
-- task deletes its subtasks by the parent key's cascade, whose count updates then find no
-- parent (deleted by the same statement) and change nothing. The RETURNING of the statement
-- that completes a task still sees its open count from before its subtasks' completion (they
-- run after the statement), so a completed task answers 0 open (`TASK_VIEW`), as before.

ALTER TABLE tasks
    ADD COLUMN subtask_count INTEGER NOT NULL DEFAULT 0,
    ADD COLUMN open_subtask_count INTEGER NOT NULL DEFAULT 0;

CREATE FUNCTION tasks_count_subtasks() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.parent_id = NEW.parent_id THEN
        -- Completed or reopened under the same parent.
        UPDATE tasks
        SET open_subtask_count = open_subtask_count
            + (NOT NEW.completed)::integer - (NOT OLD.completed)::integer
        WHERE user_id = NEW.user_id AND id = NEW.parent_id;
        RETURN NULL;
    END IF;
    IF TG_OP <> 'INSERT' AND OLD.parent_id IS NOT NULL THEN
        UPDATE tasks
        SET subtask_count = subtask_count - 1,
            open_subtask_count = open_subtask_count - (NOT OLD.completed)::integer
        WHERE user_id = OLD.user_id AND id = OLD.parent_id;
    END IF;
    IF TG_OP <> 'DELETE' AND NEW.parent_id IS NOT NULL THEN
        UPDATE tasks
        SET subtask_count = subtask_count + 1,
            open_subtask_count = open_subtask_count + (NOT NEW.completed)::integer
        WHERE user_id = NEW.user_id AND id = NEW.parent_id;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER tasks_count_subtasks_on_insert AFTER INSERT ON tasks
    FOR EACH ROW WHEN (NEW.parent_id IS NOT NULL) EXECUTE FUNCTION tasks_count_subtasks();
CREATE TRIGGER tasks_count_subtasks_on_update AFTER UPDATE OF parent_id, completed ON tasks
    FOR EACH ROW WHEN (
        (OLD.parent_id IS NOT NULL OR NEW.parent_id IS NOT NULL)
        AND (OLD.parent_id IS DISTINCT FROM NEW.parent_id OR OLD.completed <> NEW.completed)
    )
    EXECUTE FUNCTION tasks_count_subtasks();
CREATE TRIGGER tasks_count_subtasks_on_delete AFTER DELETE ON tasks
    FOR EACH ROW WHEN (OLD.parent_id IS NOT NULL) EXECUTE FUNCTION tasks_count_subtasks();

-- 0008's event, but for the trigger above's UPDATE (the counts changed, the version did not:
-- every change of the task's own fields bumps it, migration 0006), and without the counts in
-- the recorded row.
CREATE OR REPLACE FUNCTION task_events_record() RETURNS trigger
LANGUAGE plpgsql SET TimeZone = 'UTC' AS $$
DECLARE
    change TEXT;
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM task_events_lock(OLD.user_id);
        INSERT INTO task_events (user_id, task_id, type) VALUES (OLD.user_id, OLD.id, 'deleted');
        RETURN OLD;
    END IF;
    IF TG_OP = 'UPDATE' AND NEW.version = OLD.version AND (
        NEW.subtask_count <> OLD.subtask_count OR NEW.open_subtask_count <> OLD.open_subtask_count
    ) THEN
        RETURN NULL;
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
    VALUES (NEW.user_id, NEW.id, change, to_jsonb(NEW) - 'subtask_count' - 'open_subtask_count');
    RETURN NEW;
END
$$;

-- 0022's set, and the counts.
CREATE OR REPLACE FUNCTION tasks_not_copied() RETURNS name[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT ARRAY[
        'id', 'user_id',                         -- its own row, the caller's (same) owner
        'created_at', 'updated_at', 'version',   -- its own history
        'completed', 'completed_at',             -- it starts pending
        'due_date', 'next_due_date', 'reminders', -- moved by the schedule
        'previous_task_id',                      -- names the occurrence it continues
        'position',                              -- placed where it goes
        'subtask_count', 'open_subtask_count'    -- its own subtasks count themselves in
    ]::name[]
$$;

-- Every task's counts from its subtasks as they are: the backfill below, and a bulk load that
-- wrote tasks with the triggers off (scripts/seeding.py). An UPDATE only of the counts: the
-- event trigger above records nothing for it. Absolute values from one snapshot, so writers
-- are shut out until the transaction ends (reads go on): a subtask added meanwhile would be
-- lost from its parent's count.
CREATE FUNCTION tasks_recount_subtasks() RETURNS void
LANGUAGE sql AS $$
    LOCK TABLE tasks IN EXCLUSIVE MODE;
    UPDATE tasks AS t
    SET subtask_count = c.total, open_subtask_count = c.open
    FROM (
        SELECT p.id, count(child.id) AS total,
               count(child.id) FILTER (WHERE NOT child.completed) AS open
        FROM tasks AS p
        LEFT JOIN tasks AS child ON child.user_id = p.user_id AND child.parent_id = p.id
        GROUP BY p.id
    ) AS c
    WHERE t.id = c.id
      AND (t.subtask_count, t.open_subtask_count) IS DISTINCT FROM (c.total, c.open)
$$;

DO $$ BEGIN PERFORM tasks_recount_subtasks(); END $$;
