CREATE INDEX ix_rate_limits_window_end ON rate_limits (window_end);

DROP TRIGGER tasks_record_event_on_update ON tasks;
DROP TRIGGER tasks_record_event ON tasks;
CREATE TRIGGER tasks_record_event AFTER INSERT OR UPDATE OR DELETE ON tasks
    FOR EACH ROW EXECUTE FUNCTION task_events_record();

ALTER TABLE task_events ADD CONSTRAINT uq_task_events_event_id UNIQUE (event_id);
