-- Back to 0034's event: the zone set on every call, the diff over a copy without the
-- version and `updated_at`.
CREATE OR REPLACE FUNCTION task_events_record() RETURNS trigger
LANGUAGE plpgsql SET "TimeZone" TO 'UTC' AS $$
DECLARE
    change TEXT;
    was JSONB;
    now_ JSONB;
    changed JSONB;
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM task_events_lock(OLD.user_id);
        INSERT INTO task_events (user_id, task_id, list_id, type, actor_id)
        VALUES (OLD.user_id, OLD.id, OLD.list_id, 'deleted',
                nullif(current_setting('task_api.actor', true), ''));
        RETURN OLD;
    END IF;
    -- Counts the database keeps, and a transfer's exchange of the old and the new owner's
    -- reminders (no version change): no change of the task to record.
    IF TG_OP = 'UPDATE' AND NEW.version = OLD.version AND (
        NEW.subtask_count <> OLD.subtask_count OR NEW.open_subtask_count <> OLD.open_subtask_count
        OR NEW.reminders IS DISTINCT FROM OLD.reminders
    ) THEN
        RETURN NULL;
    END IF;
    PERFORM task_events_lock(NEW.user_id);
    now_ := to_jsonb(NEW) - 'subtask_count' - 'open_subtask_count';
    IF TG_OP = 'INSERT' THEN
        change := 'created';
    ELSE
        IF NEW.completed AND NOT OLD.completed THEN
            change := 'completed';
        ELSIF OLD.completed AND NOT NEW.completed THEN
            change := 'reopened';
        ELSE
            change := 'updated';
        END IF;
        -- The fields whose value changed, old and new (the version and `updated_at` change
        -- with every update: they say nothing).
        was := to_jsonb(OLD);
        SELECT jsonb_object_agg(n.key, jsonb_build_array(was -> n.key, n.value)) INTO changed
        FROM jsonb_each(now_ - 'version' - 'updated_at') AS n
        WHERE n.value IS DISTINCT FROM was -> n.key;
    END IF;
    INSERT INTO task_events (user_id, task_id, list_id, type, task, actor_id, changes)
    VALUES (NEW.user_id, NEW.id, NEW.list_id, change, now_,
            nullif(current_setting('task_api.actor', true), ''), changed);
    RETURN NEW;
END
$$;
