-- depends: 0001_users
-- Tasks, owned by one user each and deleted with their owner.
CREATE TABLE tasks (
    id            BIGINT      GENERATED ALWAYS AS IDENTITY,
    user_id       TEXT        NOT NULL,
    title         TEXT        NOT NULL,
    description   TEXT,
    completed     BOOLEAN     NOT NULL DEFAULT false,
    completed_at  TIMESTAMPTZ,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT pk_tasks PRIMARY KEY (id),
    CONSTRAINT fk_tasks_user_id_users FOREIGN KEY (user_id)
        REFERENCES users (id) ON DELETE CASCADE,
    -- The API's limits, enforced again where the data lives.
    CONSTRAINT ck_tasks_title_length CHECK (char_length(title) BETWEEN 1 AND 200),
    CONSTRAINT ck_tasks_title_trimmed CHECK (title = btrim(title)),
    CONSTRAINT ck_tasks_description_length CHECK (char_length(description) <= 2000),
    CONSTRAINT ck_tasks_completed_at_matches CHECK (completed = (completed_at IS NOT NULL))
);

-- Per-user listing, newest or oldest first (a b-tree scans both ways); also serves the FK.
CREATE INDEX ix_tasks_user_id_created_at_id ON tasks (user_id, created_at, id);
-- Per-user listing filtered by status, in created order.
CREATE INDEX ix_tasks_user_id_completed_created_at_id ON tasks (user_id, completed, created_at, id);
-- Per-user listing by title, case-insensitively.
CREATE INDEX ix_tasks_user_id_lower_title_id ON tasks (user_id, lower(title), id);
