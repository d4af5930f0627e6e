-- depends: 0010_reminders
-- Dead letters, found without reading the outbox: the worker reports how many there are on
-- every poll (metrics, /health/ready, `events status`), and delivered rows stay for the
-- retention period (a week by default), so counting them by a scan read the whole table each
-- second. Dead rows are few; the index is as small.
CREATE INDEX ix_task_events_dead_id ON task_events (id) WHERE state = 'dead';
