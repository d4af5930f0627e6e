-- depends: 0108_event_sinks
-- Imports (issue 89; specs/import-export.md): a file a user brought from another app (or our own
-- export), kept with its options until a runner has written it, and the items each import
-- created, keyed by where they came from. `imports.file` holds the upload itself (at most
-- IMPORT_MAX_BYTES): a restarted runner reads it again, so a queued or interrupted import is
-- never lost. A runner takes one by `lease_owner`/`lease_until` (FOR UPDATE SKIP LOCKED; an
-- expired lease is taken over) and writes its tasks in chunks; `progress_done` counts the
-- plan's tasks handled. Done, failed or undone, the file is dropped (set to NULL). A NULL
-- `time_zone`: the owner's zone (its notification settings', else UTC) when it runs.
CREATE TABLE imports (
    id              BIGINT      GENERATED ALWAYS AS IDENTITY,
    user_id         TEXT        NOT NULL,
    source          TEXT        NOT NULL,
    state           TEXT        NOT NULL DEFAULT 'queued',
    progress_done   INTEGER     NOT NULL DEFAULT 0,
    progress_total  INTEGER     NOT NULL DEFAULT 0,
    counts          JSONB       NOT NULL DEFAULT '{}',
    warnings        JSONB       NOT NULL DEFAULT '[]',
    lossy           JSONB       NOT NULL DEFAULT '[]',
    error           TEXT,
    file            BYTEA,
    file_name       TEXT        NOT NULL DEFAULT '',
    time_zone       TEXT,
    list_id         BIGINT,
    lease_owner     TEXT,
    lease_until     TIMESTAMPTZ,
    attempts        INTEGER     NOT NULL DEFAULT 0,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    finished_at     TIMESTAMPTZ,
    CONSTRAINT pk_imports PRIMARY KEY (id),
    CONSTRAINT fk_imports_user_id_users FOREIGN KEY (user_id)
        REFERENCES users (id) ON DELETE CASCADE,
    CONSTRAINT uq_imports_user_id_id UNIQUE (user_id, id),
    CONSTRAINT ck_imports_state
        CHECK (state IN ('queued', 'running', 'done', 'failed', 'undone')),
    CONSTRAINT ck_imports_source
        CHECK (source IN ('task-api', 'todoist', 'ticktick', 'google-tasks', 'ical'))
);

-- The caller's imports, newest first (`GET /api/imports`): `uq_imports_user_id_id`'s index.
-- What a runner looks for: the imports not finished.
CREATE INDEX ix_imports_state_id ON imports (state, id);

CREATE TRIGGER imports_admit_write BEFORE INSERT OR UPDATE OR DELETE ON imports
    FOR EACH ROW WHEN (current_setting('task_api.refused', true) <> '')
    EXECUTE FUNCTION task_api_skip_refused_write();

-- One row per item an import created: `kind` (list, task, comment, attachment, filter) and
-- the row's id; `key` is the item's id in the source (or what the row says when it has none),
-- unique per user and source, so a second import of the same file creates nothing (a
-- constraint, never a check before the write). An undo deletes its import's rows: the same
-- file imports again. `root`: a task with no parent in the file (an undo trashes these, their
-- subtasks with them).
CREATE TABLE import_items (
    id          BIGINT      GENERATED ALWAYS AS IDENTITY,
    user_id     TEXT        NOT NULL,
    import_id   BIGINT      NOT NULL,
    source      TEXT        NOT NULL,
    key         TEXT        NOT NULL,
    kind        TEXT        NOT NULL,
    row_id      BIGINT      NOT NULL,
    root        BOOLEAN     NOT NULL DEFAULT false,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT pk_import_items PRIMARY KEY (id),
    CONSTRAINT fk_import_items_user_id_users FOREIGN KEY (user_id)
        REFERENCES users (id) ON DELETE CASCADE,
    CONSTRAINT fk_import_items_user_id_import_id_imports FOREIGN KEY (user_id, import_id)
        REFERENCES imports (user_id, id) ON DELETE CASCADE,
    CONSTRAINT uq_import_items_user_id_id UNIQUE (user_id, id),
    CONSTRAINT uq_import_items_user_id_source_key UNIQUE (user_id, source, key),
    CONSTRAINT ck_import_items_kind
        CHECK (kind IN ('list', 'task', 'comment', 'attachment', 'filter'))
);

CREATE INDEX ix_import_items_user_id_import_id ON import_items (user_id, import_id);

CREATE TRIGGER import_items_admit_write BEFORE INSERT OR UPDATE OR DELETE ON import_items
    FOR EACH ROW WHEN (current_setting('task_api.refused', true) <> '')
    EXECUTE FUNCTION task_api_skip_refused_write();
