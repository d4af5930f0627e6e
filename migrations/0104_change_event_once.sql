-- depends: 0103_place_without_a_scan
-- A change's event built with less work (issue 83), the same row: `task_events_record` no
-- longer carries `SET "TimeZone" TO 'UTC'`, whose save, parse and restore of the setting every
-- call paid even when the request had set UTC already (every message through the door does,
-- `SET LOCAL TimeZone`); it sets UTC itself only when the zone is another one, and puts that
-- zone back after its INSERT (whose triggers see UTC, as they did), so a writer outside the
-- door keeps its own (and the event's instants are UTC either way). The snapshot drops both
-- counts with one `-` (one copy of the JSON, not two), and the diff compares every key but
-- `version` and `updated_at` without first copying the snapshot without them.
CREATE OR REPLACE FUNCTION task_events_record() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    change TEXT;
    was JSONB;
    now_ JSONB;
    changed JSONB;
    zone TEXT;
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
    -- The row's instants in UTC, as the change feed and the sinks show them.
    zone := current_setting('TimeZone');
    IF zone <> 'UTC' THEN
        PERFORM set_config('TimeZone', 'UTC', true);
    END IF;
    now_ := to_jsonb(NEW) - '{subtask_count,open_subtask_count}'::text[];
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
        FROM jsonb_each(now_) AS n
        WHERE n.key <> ALL ('{version,updated_at}'::text[])
          AND n.value IS DISTINCT FROM was -> n.key;
    END IF;
    INSERT INTO task_events (user_id, task_id, list_id, type, task, actor_id, changes)
    VALUES (NEW.user_id, NEW.id, NEW.list_id, change, now_,
            nullif(current_setting('task_api.actor', true), ''), changed);
    IF zone <> 'UTC' THEN
        PERFORM set_config('TimeZone', zone, true);
    END IF;
    RETURN NEW;
END
$$;
