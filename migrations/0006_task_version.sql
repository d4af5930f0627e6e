-- depends: 0005_rate_limits
-- Optimistic concurrency: every UPDATE of a task increments `version` (in the same statement,
-- TaskService._update_where), and the API's strong ETag is "<id>-<version>". If-Match is then
-- checked inside the UPDATE/DELETE's own WHERE, so a stale precondition can never slip
-- between a read and a write. A counter, not updated_at: two changes within one clock tick
-- (or one transaction, as in a bulk request) would share a timestamp.
-- ADD COLUMN with a constant default rewrites nothing (PostgreSQL 11+).
ALTER TABLE tasks
    ADD COLUMN version BIGINT NOT NULL DEFAULT 1,
    ADD CONSTRAINT ck_tasks_version_positive CHECK (version > 0);
