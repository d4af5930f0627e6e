-- depends: 0016_one_message_writes
-- Lists, subtasks and manual order (issue 24; specs/data-model.md "task_lists" and "Subtasks
-- and manual order").
--
-- `task_lists`: a user's lists. The name is unique per user case-insensitively, through
-- `name_key`, the name's Unicode case fold (Python's `str.casefold` of the NFC name, written by
-- the API: PostgreSQL's lower() depends on the database's locale, and in the C locale folds
-- ASCII only). `position` orders a user's lists; it is unique per user, checked at the end of
-- each statement (DEFERRABLE INITIALLY IMMEDIATE), so that one statement may respace several
-- lists at once.
--
-- `tasks` gets three columns:
-- - `list_id`: the task's list (NULL: in no list). A same-user key (migration 0013): a task
--   can only be in its owner's list; deleting a list deletes its tasks (ON DELETE CASCADE),
--   each recorded as a `deleted` change by the trigger of migration 0008.
-- - `parent_id`: the task's parent (NULL: top level). A same-user key on `tasks` itself;
--   deleting a parent deletes its subtree, each task once.
-- - `position`: its place among its siblings (same user, list and parent), ascending.
--   Integers with gaps: a move writes one row (a midpoint), and respaces a few neighbours only
--   when two are adjacent (backend/services/statements/task_tree.py). Unique per sibling group, NULLs
--   (no list, top level) counted as one group, checked at the end of each statement.
--
-- Existing tasks stay where they are: in no list, top level, and in the order the listing
-- shows them by default (newest first): position = 65536 x their rank in that order. The
-- backfill is not a change of any task: it does not bump versions, and records no change (the
-- recording trigger is off for that one statement). A change recorded before this migration
-- reads `list_id` and `parent_id` as null and `position` as 0 (backend/models/task_fields.py).
CREATE TABLE task_lists (
    id          BIGINT      GENERATED ALWAYS AS IDENTITY,
    user_id     TEXT        NOT NULL,
    name        TEXT        NOT NULL,
    name_key    TEXT        NOT NULL,
    color       TEXT,
    position    BIGINT      NOT NULL,
    version     BIGINT      NOT NULL DEFAULT 1,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT pk_task_lists PRIMARY KEY (id),
    CONSTRAINT fk_task_lists_user_id_users FOREIGN KEY (user_id)
        REFERENCES users (id) ON DELETE CASCADE,
    -- What a task's `list_id` points at: a same-user key (specs/data-model.md).
    CONSTRAINT uq_task_lists_user_id_id UNIQUE (user_id, id),
    CONSTRAINT uq_task_lists_user_id_name_key UNIQUE (user_id, name_key),
    CONSTRAINT uq_task_lists_user_id_position UNIQUE (user_id, position)
        DEFERRABLE INITIALLY IMMEDIATE,
    CONSTRAINT ck_task_lists_name_length CHECK (char_length(name) BETWEEN 1 AND 100),
    CONSTRAINT ck_task_lists_name_trimmed CHECK (name = btrim(name)),
    CONSTRAINT ck_task_lists_name_key_length CHECK (char_length(name_key) BETWEEN 1 AND 400),
    CONSTRAINT ck_task_lists_color_format CHECK (color ~ '^#[0-9a-f]{6}$'),
    CONSTRAINT ck_task_lists_version_positive CHECK (version > 0)
);

ALTER TABLE tasks
    ADD COLUMN list_id   BIGINT,
    ADD COLUMN parent_id BIGINT,
    ADD COLUMN position  BIGINT;

ALTER TABLE tasks DISABLE TRIGGER tasks_record_event;
UPDATE tasks
SET position = ranked.n * 65536
FROM (
    SELECT id, row_number() OVER (PARTITION BY user_id ORDER BY created_at DESC, id DESC) AS n
    FROM tasks
) AS ranked
WHERE tasks.id = ranked.id;
ALTER TABLE tasks ENABLE TRIGGER tasks_record_event;

ALTER TABLE tasks
    ALTER COLUMN position SET NOT NULL,
    ADD CONSTRAINT fk_tasks_user_id_list_id_task_lists FOREIGN KEY (user_id, list_id)
        REFERENCES task_lists (user_id, id) ON DELETE CASCADE,
    ADD CONSTRAINT fk_tasks_user_id_parent_id_tasks FOREIGN KEY (user_id, parent_id)
        REFERENCES tasks (user_id, id) ON DELETE CASCADE,
    -- One task per place among its siblings; also the index of a list's page in manual order
    -- and of the foreign key's lookups when a list is deleted.
    ADD CONSTRAINT uq_tasks_user_id_list_id_parent_id_position
        UNIQUE NULLS NOT DISTINCT (user_id, list_id, parent_id, position)
        DEFERRABLE INITIALLY IMMEDIATE,
    ADD CONSTRAINT ck_tasks_parent_not_self CHECK (parent_id <> id),
    -- Only top-level tasks recur (a subtask comes back with its recurring parent instead).
    ADD CONSTRAINT ck_tasks_subtask_not_recurring CHECK (parent_id IS NULL OR recurrence IS NULL);

-- A task's children: subtask counts, subtree reads, the parent key's cascade.
CREATE INDEX ix_tasks_user_id_parent_id ON tasks (user_id, parent_id)
    WHERE parent_id IS NOT NULL;
