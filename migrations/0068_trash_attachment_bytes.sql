-- depends: 0066_dav_object_changes
-- A trashed task's attachments, one row each, kept by the trash itself (issue 63): the upload's
-- quota (trashed files count until purged) is then two indexed sums by uploader instead of a
-- scan of every trash snapshot's JSON on each upload, and the sweeper's and an account
-- deletion's "is this key still named?" an index probe. Written by a statement trigger on
-- task_trash's insert (a deletion's snapshot), gone with its trash row (restore, purge, the
-- account's cascade). No `user_id`: never read by a request's statement, only by the functions
-- below; `uploaded_by` as the snapshot holds it (an account's id, never reused).
CREATE TABLE task_trash_attachments (
    trash_id      BIGINT NOT NULL,
    -- The attachment's id in the snapshot (a restore gives it back): unique where a storage
    -- key is only unique by construction.
    attachment_id BIGINT NOT NULL,
    uploaded_by   TEXT,
    size          BIGINT NOT NULL,
    storage_key   TEXT   NOT NULL,
    CONSTRAINT pk_task_trash_attachments PRIMARY KEY (trash_id, attachment_id),
    CONSTRAINT fk_task_trash_attachments_trash_id_task_trash FOREIGN KEY (trash_id)
        REFERENCES task_trash (id) ON DELETE CASCADE
);
CREATE INDEX ix_task_trash_attachments_uploaded_by ON task_trash_attachments (uploaded_by);
CREATE INDEX ix_task_trash_attachments_storage_key ON task_trash_attachments (storage_key);

CREATE FUNCTION task_trash_attachments_add() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO task_trash_attachments (trash_id, attachment_id, uploaded_by, size, storage_key)
    SELECT n.id, (j ->> 'id')::BIGINT, j ->> 'uploaded_by', (j ->> 'size')::BIGINT, j ->> 'storage_key'
    FROM added n
    CROSS JOIN LATERAL jsonb_array_elements(n.snapshot -> 'children' -> 'task_attachments') AS j
    WHERE jsonb_typeof(n.snapshot -> 'children' -> 'task_attachments') = 'array';
    RETURN NULL;
END
$$;
CREATE TRIGGER task_trash_attachments_add AFTER INSERT ON task_trash
    REFERENCING NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION task_trash_attachments_add();

-- The trash as it is today.
INSERT INTO task_trash_attachments (trash_id, attachment_id, uploaded_by, size, storage_key)
SELECT t.id, (j ->> 'id')::BIGINT, j ->> 'uploaded_by', (j ->> 'size')::BIGINT, j ->> 'storage_key'
FROM task_trash t
CROSS JOIN LATERAL jsonb_array_elements(t.snapshot -> 'children' -> 'task_attachments') AS j
WHERE jsonb_typeof(t.snapshot -> 'children' -> 'task_attachments') = 'array';

CREATE OR REPLACE FUNCTION task_attachments_used(p_user TEXT) RETURNS BIGINT
LANGUAGE sql STABLE AS $$
    SELECT coalesce((SELECT sum(a.size) FROM task_attachments a WHERE a.uploaded_by = p_user), 0)
        + coalesce((SELECT sum(t.size) FROM task_trash_attachments t
                    WHERE t.uploaded_by = p_user), 0)
$$;

CREATE OR REPLACE FUNCTION task_attachments_known(p_keys TEXT[]) RETURNS SETOF TEXT
LANGUAGE sql STABLE AS $$
    SELECT a.storage_key FROM task_attachments a WHERE a.storage_key = ANY (p_keys)
    UNION
    SELECT t.storage_key FROM task_trash_attachments t WHERE t.storage_key = ANY (p_keys)
$$;
