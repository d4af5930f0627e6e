DROP TRIGGER tasks_record_event ON tasks;
DROP FUNCTION task_events_record();
DROP FUNCTION task_events_lock(TEXT);
DROP TABLE task_events_pruned;
DROP TABLE task_events;
