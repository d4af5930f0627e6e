-- depends: 0063_task_dav_objects
-- A task's attachments (issue 63; specs/storage.md, docs/guides/attachments.md): a declared
-- child of its task (backend/models/attachment.py), so the trash, the list's moves and the
-- role matrix come from the registry. The row is written only once the bytes are stored
-- (random `storage_key`, never from the file name), so no row names missing bytes; bytes with
-- no row (a crash between the two, a deleted account's cascade) are the worker's sweeper's.
CREATE TABLE task_attachments (
    id           BIGINT      GENERATED ALWAYS AS IDENTITY,
    user_id      TEXT        NOT NULL,
    task_id      BIGINT      NOT NULL,
    list_id      BIGINT,
    -- NULL once the uploader's account is deleted: the file stays with its task.
    uploaded_by  TEXT,
    storage_key  TEXT        NOT NULL,
    filename     TEXT        NOT NULL,
    content_type TEXT        NOT NULL,
    size         BIGINT      NOT NULL,
    sha256       TEXT        NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT pk_task_attachments PRIMARY KEY (id),
    CONSTRAINT fk_task_attachments_user_id_task_id_tasks FOREIGN KEY (user_id, task_id)
        REFERENCES tasks (user_id, id) ON UPDATE CASCADE ON DELETE CASCADE,
    CONSTRAINT fk_task_attachments_uploaded_by_users FOREIGN KEY (uploaded_by)
        REFERENCES users (id) ON DELETE SET NULL,
    CONSTRAINT ck_task_attachments_size CHECK (size >= 0),
    CONSTRAINT ck_task_attachments_sha256 CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    CONSTRAINT ck_task_attachments_filename_length CHECK (octet_length(filename) BETWEEN 1 AND 255),
    CONSTRAINT ck_task_attachments_storage_key_length CHECK (char_length(storage_key) BETWEEN 1 AND 512)
);
-- A task's attachments, oldest first (the page's keyset), and the task key's cascade.
CREATE INDEX ix_task_attachments_task_id_id ON task_attachments (task_id, id);
-- The sweeper's question: which of these stored keys does a row name (random keys, 128
-- bits: unique by construction, so no constraint to pay for).
CREATE INDEX ix_task_attachments_storage_key ON task_attachments (storage_key);
-- An uploader's bytes (the quota).
CREATE INDEX ix_task_attachments_uploaded_by ON task_attachments (uploaded_by);

CREATE TRIGGER task_attachments_admit_write BEFORE INSERT OR UPDATE OR DELETE ON task_attachments
    FOR EACH ROW WHEN (current_setting('task_api.refused', true) <> '')
    EXECUTE FUNCTION task_api_skip_refused_write();

-- Its rows added and removed are events on its task (`attachment.created`, `.deleted`).
CALL task_children_register('task_attachments', 'attachment');

-- The bytes `p_user` has uploaded that still count against the quota: its attachments, and
-- those in a trash's snapshot (a trashed task's files count until they are purged).
CREATE FUNCTION task_attachments_used(p_user TEXT) RETURNS BIGINT
LANGUAGE sql STABLE AS $$
    SELECT coalesce((SELECT sum(a.size) FROM task_attachments a WHERE a.uploaded_by = p_user), 0)
        + coalesce((
            SELECT sum((j ->> 'size')::BIGINT)
            FROM task_trash t
            CROSS JOIN LATERAL jsonb_array_elements(
                coalesce(t.snapshot -> 'children' -> 'task_attachments', '[]')
            ) AS j
            WHERE t.snapshot -> 'children' ? 'task_attachments' AND j ->> 'uploaded_by' = p_user
        ), 0)::BIGINT
$$;

-- Whether a stored object's key is still named by an attachment, here or in a trash's
-- snapshot (the sweeper deletes only objects this says no to).
CREATE FUNCTION task_attachments_known(p_keys TEXT[]) RETURNS SETOF TEXT
LANGUAGE sql STABLE AS $$
    SELECT a.storage_key FROM task_attachments a WHERE a.storage_key = ANY (p_keys)
    UNION
    SELECT j ->> 'storage_key'
    FROM task_trash t
    CROSS JOIN LATERAL jsonb_array_elements(
        coalesce(t.snapshot -> 'children' -> 'task_attachments', '[]')
    ) AS j
    WHERE t.snapshot -> 'children' ? 'task_attachments' AND j ->> 'storage_key' = ANY (p_keys)
$$;
