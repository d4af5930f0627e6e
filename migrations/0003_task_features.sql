-- depends: 0002_tasks
-- Priority, due dates and tags, with the indexes that keep every listing per-user.

-- btree_gin lets one GIN index hold (user_id, tags), so a tag filter reads only the
-- caller's entries. It is a trusted extension (PostgreSQL 13+): no superuser needed.
CREATE EXTENSION IF NOT EXISTS btree_gin;

-- Declared in ascending importance, so the type sorts none < low < medium < high.
CREATE TYPE task_priority AS ENUM ('none', 'low', 'medium', 'high');

ALTER TABLE tasks
    ADD COLUMN priority task_priority NOT NULL DEFAULT 'none',
    ADD COLUMN due_date TIMESTAMPTZ,
    ADD COLUMN tags     TEXT[]        NOT NULL DEFAULT '{}',
    -- Tags arrive trimmed, lower-cased and de-duplicated; these bound what the API allows.
    ADD CONSTRAINT ck_tasks_tags_count CHECK (cardinality(tags) <= 20),
    ADD CONSTRAINT ck_tasks_tags_no_null CHECK (array_position(tags, NULL) IS NULL);

-- One index per sort key, each led by user_id and ended by id (the tie-breaker), so keyset
-- pagination in either direction is an index range scan over the caller's rows only.
CREATE INDEX ix_tasks_user_id_updated_at_id ON tasks (user_id, updated_at, id);
CREATE INDEX ix_tasks_user_id_priority_id ON tasks (user_id, priority, id);
-- Tasks without a due date sort last in both directions, hence one index per direction.
CREATE INDEX ix_tasks_user_id_due_date_asc_id ON tasks (user_id, due_date ASC NULLS LAST, id ASC);
CREATE INDEX ix_tasks_user_id_due_date_desc_id ON tasks (user_id, due_date DESC NULLS LAST, id DESC);
CREATE INDEX ix_tasks_user_id_tags ON tasks USING gin (user_id, tags);
