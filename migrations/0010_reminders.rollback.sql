DELETE FROM task_events WHERE type = 'reminder';
ALTER TABLE task_events DROP CONSTRAINT ck_task_events_type;
ALTER TABLE task_events ADD CONSTRAINT ck_task_events_type
    CHECK (type IN ('created', 'updated', 'completed', 'reopened', 'deleted'));
DROP TRIGGER tasks_schedule_reminders_on_update ON tasks;
DROP TRIGGER tasks_schedule_reminders_on_insert ON tasks;
DROP FUNCTION task_reminders_schedule();
DROP TABLE task_reminders;
