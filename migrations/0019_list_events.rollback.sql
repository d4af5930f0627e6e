DROP TRIGGER task_lists_record_event ON task_lists;
DROP FUNCTION task_lists_record_event();
DROP INDEX ix_task_events_pending_list_id_id;
DELETE FROM task_events WHERE list_id IS NOT NULL;
ALTER TABLE task_events
    DROP CONSTRAINT ck_task_events_task_present,
    DROP CONSTRAINT ck_task_events_type,
    DROP COLUMN list,
    DROP COLUMN list_id,
    ALTER COLUMN task_id SET NOT NULL,
    ADD CONSTRAINT ck_task_events_type
        CHECK (type IN ('created', 'updated', 'completed', 'reopened', 'deleted', 'reminder')),
    ADD CONSTRAINT ck_task_events_task_present CHECK ((type = 'deleted') = (task IS NULL));
