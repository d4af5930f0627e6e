-- depends: 0018_task_tree
-- List changes are events too (specs/events.md, "List events"): `list.created`,
-- `list.updated`, `list.deleted`, recorded in the same outbox as task changes by a trigger on
-- `task_lists`, in the transaction of the change, under the same per-user change lock, and
-- delivered by the same worker. A list event names its list (`list_id`) instead of a task, and
-- holds the list as the change left it (`list`; NULL for `list.deleted`). The change feed
-- (GET /api/tasks/changes) shows task changes only, as it always has: a list's tasks carry its
-- id, and deleting a list records a `deleted` change for each of its tasks.
--
-- The worker delivers one list's events in order, as it does one task's: only the first
-- pending event of a list is claimable (`ix_task_events_pending_list_id_id`).
ALTER TABLE task_events
    ALTER COLUMN task_id DROP NOT NULL,
    ADD COLUMN list_id BIGINT,
    ADD COLUMN list JSONB,
    DROP CONSTRAINT ck_task_events_type,
    DROP CONSTRAINT ck_task_events_task_present,
    ADD CONSTRAINT ck_task_events_type CHECK (type IN (
        'created', 'updated', 'completed', 'reopened', 'deleted', 'reminder',
        'list.created', 'list.updated', 'list.deleted'
    )),
    -- A task's change holds the task (but for a deletion); a list's holds the list.
    ADD CONSTRAINT ck_task_events_task_present CHECK (
        CASE WHEN type LIKE 'list.%'
            THEN task_id IS NULL AND task IS NULL AND list_id IS NOT NULL
                AND (type = 'list.deleted') = (list IS NULL)
            ELSE task_id IS NOT NULL AND list_id IS NULL AND list IS NULL
                AND (type = 'deleted') = (task IS NULL)
        END
    );

CREATE INDEX ix_task_events_pending_list_id_id ON task_events (list_id, id)
    WHERE state = 'pending' AND list_id IS NOT NULL;

-- UTC for the duration of the trigger, as for tasks (migration 0008). `name_key` is the API's
-- lookup key, not part of the list.
CREATE FUNCTION task_lists_record_event() RETURNS trigger
LANGUAGE plpgsql SET TimeZone = 'UTC' AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM task_events_lock(OLD.user_id);
        INSERT INTO task_events (user_id, list_id, type)
        VALUES (OLD.user_id, OLD.id, 'list.deleted');
        RETURN OLD;
    END IF;
    PERFORM task_events_lock(NEW.user_id);
    INSERT INTO task_events (user_id, list_id, type, list)
    VALUES (
        NEW.user_id,
        NEW.id,
        CASE TG_OP WHEN 'INSERT' THEN 'list.created' ELSE 'list.updated' END,
        to_jsonb(NEW) - 'name_key'
    );
    RETURN NEW;
END
$$;

-- Deleting a list records `list.deleted`, then (the foreign key's cascade) a `deleted` change
-- for each of its tasks, in the same transaction.
CREATE TRIGGER task_lists_record_event AFTER INSERT OR UPDATE OR DELETE ON task_lists
    FOR EACH ROW EXECUTE FUNCTION task_lists_record_event();
