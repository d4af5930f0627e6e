-- depends: 0028_write_costs
-- Shared lists (issue 39; specs/data-model.md, "Sharing"). A list and everything in it stay in
-- its owner's space: `user_id` of the list, of its tasks, of its memberships, invitations and
-- comments is the list owner's id. Members are granted access by `list_members`; the access
-- predicate (backend/db/scope.py `access`) is "the row is in my space, or its list is one I
-- am a member of with a role that is enough". Keeping rows in the owner's space keeps every
-- same-user key of migrations 0013 and 0017, the placement lock and the change feed as they
-- were; a transfer of ownership moves the list's rows to the new owner's space by
-- `ON UPDATE CASCADE` of those keys.

-- A transfer updates `task_lists.user_id`: the list's tasks (and their subtasks, reminders)
-- follow it through their same-user keys.
ALTER TABLE tasks
    DROP CONSTRAINT fk_tasks_user_id_list_id_task_lists,
    DROP CONSTRAINT fk_tasks_user_id_parent_id_tasks,
    ADD CONSTRAINT fk_tasks_user_id_list_id_task_lists FOREIGN KEY (user_id, list_id)
        REFERENCES task_lists (user_id, id) ON UPDATE CASCADE ON DELETE CASCADE,
    ADD CONSTRAINT fk_tasks_user_id_parent_id_tasks FOREIGN KEY (user_id, parent_id)
        REFERENCES tasks (user_id, id) ON UPDATE CASCADE ON DELETE CASCADE;
ALTER TABLE task_reminders
    DROP CONSTRAINT fk_task_reminders_user_id_task_id_tasks,
    ADD CONSTRAINT fk_task_reminders_user_id_task_id_tasks FOREIGN KEY (user_id, task_id)
        REFERENCES tasks (user_id, id) ON UPDATE CASCADE ON DELETE CASCADE;

-- Who else may use a list, and how far (the owner is `task_lists.user_id`, never a member).
CREATE TABLE list_members (
    user_id    TEXT        NOT NULL,
    list_id    BIGINT      NOT NULL,
    member_id  TEXT        NOT NULL,
    role       TEXT        NOT NULL,
    joined_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT pk_list_members PRIMARY KEY (list_id, member_id),
    CONSTRAINT fk_list_members_user_id_list_id_task_lists FOREIGN KEY (user_id, list_id)
        REFERENCES task_lists (user_id, id) ON UPDATE CASCADE ON DELETE CASCADE,
    CONSTRAINT fk_list_members_member_id_users FOREIGN KEY (member_id)
        REFERENCES users (id) ON DELETE CASCADE,
    CONSTRAINT ck_list_members_role CHECK (role IN ('viewer', 'commenter', 'editor', 'admin')),
    CONSTRAINT ck_list_members_not_owner CHECK (member_id <> user_id)
);
-- The access predicate's lookup: a caller's memberships (role and owner read from the index).
CREATE INDEX ix_list_members_member_id_list_id ON list_members (member_id, list_id)
    INCLUDE (role, user_id);

-- A pending invitation; accepted or revoked ones are deleted (a token is single-use). Only the
-- token's SHA-256 is stored.
CREATE TABLE list_invitations (
    id          BIGINT      GENERATED ALWAYS AS IDENTITY,
    user_id     TEXT        NOT NULL,
    list_id     BIGINT      NOT NULL,
    role        TEXT        NOT NULL,
    email       TEXT,
    token_hash  TEXT        NOT NULL,
    invited_by  TEXT        NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at  TIMESTAMPTZ NOT NULL,
    CONSTRAINT pk_list_invitations PRIMARY KEY (id),
    CONSTRAINT fk_list_invitations_user_id_list_id_task_lists FOREIGN KEY (user_id, list_id)
        REFERENCES task_lists (user_id, id) ON UPDATE CASCADE ON DELETE CASCADE,
    CONSTRAINT uq_list_invitations_token_hash UNIQUE (token_hash),
    CONSTRAINT ck_list_invitations_role CHECK (role IN ('viewer', 'commenter', 'editor', 'admin')),
    CONSTRAINT ck_list_invitations_email_length CHECK (char_length(email) BETWEEN 3 AND 320)
);
-- One pending invitation per address and list (a new one replaces it).
CREATE UNIQUE INDEX uq_list_invitations_list_id_email ON list_invitations (list_id, lower(email))
    WHERE email IS NOT NULL;

-- A comment on a task. `list_id` is the task's list (the access predicate reads it), kept in
-- step by `tasks_move_comments` when a task changes lists; `author_id` is NULL once its
-- author's account is deleted (the comment stays, by "a deleted account").
CREATE TABLE task_comments (
    id          BIGINT      GENERATED ALWAYS AS IDENTITY,
    user_id     TEXT        NOT NULL,
    task_id     BIGINT      NOT NULL,
    list_id     BIGINT,
    author_id   TEXT,
    body        TEXT        NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT pk_task_comments PRIMARY KEY (id),
    CONSTRAINT fk_task_comments_user_id_task_id_tasks FOREIGN KEY (user_id, task_id)
        REFERENCES tasks (user_id, id) ON UPDATE CASCADE ON DELETE CASCADE,
    CONSTRAINT fk_task_comments_author_id_users FOREIGN KEY (author_id)
        REFERENCES users (id) ON DELETE SET NULL,
    CONSTRAINT ck_task_comments_body_length CHECK (char_length(body) BETWEEN 1 AND 10000)
);
-- A task's comments, oldest first (the page's keyset), and the task key's cascade.
CREATE INDEX ix_task_comments_task_id_id ON task_comments (task_id, id);

CREATE FUNCTION task_comments_follow_task() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE task_comments SET list_id = NEW.list_id WHERE task_id = NEW.id;
    RETURN NULL;
END
$$;
CREATE TRIGGER tasks_move_comments AFTER UPDATE OF list_id ON tasks
    FOR EACH ROW WHEN (OLD.list_id IS DISTINCT FROM NEW.list_id)
    EXECUTE FUNCTION task_comments_follow_task();

CREATE TRIGGER list_members_admit_write BEFORE INSERT OR UPDATE OR DELETE ON list_members
    FOR EACH ROW WHEN (current_setting('task_api.refused', true) <> '')
    EXECUTE FUNCTION task_api_skip_refused_write();
CREATE TRIGGER list_invitations_admit_write BEFORE INSERT OR UPDATE OR DELETE ON list_invitations
    FOR EACH ROW WHEN (current_setting('task_api.refused', true) <> '')
    EXECUTE FUNCTION task_api_skip_refused_write();
CREATE TRIGGER task_comments_admit_write BEFORE INSERT OR UPDATE OR DELETE ON task_comments
    FOR EACH ROW WHEN (current_setting('task_api.refused', true) <> '')
    EXECUTE FUNCTION task_api_skip_refused_write();
