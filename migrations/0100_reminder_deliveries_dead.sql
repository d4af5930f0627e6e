-- depends: 0099_quiet_hours
-- The worker counts dead reminder deliveries on every poll beside the outbox's (their
-- `reminder_deliveries_dead` gauge, `events status`), and `events dead` lists them: a partial
-- index of the dead rows, as the outbox's `ix_task_events_dead_id` (0011), so neither reads
-- the pending rows.
CREATE INDEX ix_reminder_deliveries_dead_id ON reminder_deliveries (id) WHERE state = 'dead';
