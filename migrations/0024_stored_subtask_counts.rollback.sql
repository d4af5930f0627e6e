-- The counts computed where a task is read again: no columns, no trigger; 0008's event and
-- 0022's set of columns a successor does not copy.
DROP TRIGGER tasks_count_subtasks_on_insert ON tasks;
DROP TRIGGER tasks_count_subtasks_on_update ON tasks;
DROP TRIGGER tasks_count_subtasks_on_delete ON tasks;
DROP FUNCTION tasks_count_subtasks();
DROP FUNCTION tasks_recount_subtasks();

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

CREATE OR REPLACE FUNCTION tasks_not_copied() RETURNS name[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT ARRAY[
        'id', 'user_id',                         -- its own row, the caller's (same) owner
        'created_at', 'updated_at', 'version',   -- its own history
        'completed', 'completed_at',             -- it starts pending
        'due_date', 'next_due_date', 'reminders', -- moved by the schedule
        'previous_task_id',                      -- names the occurrence it continues
        'position'                               -- placed where it goes
    ]::name[]
$$;

ALTER TABLE tasks DROP COLUMN subtask_count, DROP COLUMN open_subtask_count;
