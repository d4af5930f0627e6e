DROP INDEX ix_task_events_dead_id;
