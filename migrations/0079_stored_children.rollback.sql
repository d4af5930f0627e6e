-- Back to 0068: attachments' bytes by name.
DROP FUNCTION task_stored_keys_of(TEXT);
DROP FUNCTION task_stored_known(TEXT[]);
DROP FUNCTION task_stored_used(TEXT);

CREATE TABLE task_trash_attachments (
    trash_id      BIGINT NOT NULL,
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
DROP TRIGGER task_trash_stored_add ON task_trash;
DROP FUNCTION task_trash_stored_add();
CREATE TRIGGER task_trash_attachments_add AFTER INSERT ON task_trash
    REFERENCING NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION task_trash_attachments_add();
INSERT INTO task_trash_attachments (trash_id, attachment_id, uploaded_by, size, storage_key)
SELECT t.id, (j ->> 'id')::BIGINT, j ->> 'uploaded_by', (j ->> 'size')::BIGINT, j ->> 'storage_key'
FROM task_trash t
CROSS JOIN LATERAL jsonb_array_elements(t.snapshot -> 'children' -> 'task_attachments') AS j
WHERE jsonb_typeof(t.snapshot -> 'children' -> 'task_attachments') = 'array';
DROP TABLE task_trash_stored;

CREATE FUNCTION task_attachments_used(p_user TEXT) RETURNS BIGINT
LANGUAGE sql STABLE AS $$
    SELECT coalesce((SELECT sum(a.size) FROM task_attachments a WHERE a.uploaded_by = p_user), 0)
        + coalesce((SELECT sum(t.size) FROM task_trash_attachments t
                    WHERE t.uploaded_by = p_user), 0)
$$;
CREATE FUNCTION task_attachments_known(p_keys TEXT[]) RETURNS SETOF TEXT
LANGUAGE sql STABLE AS $$
    SELECT a.storage_key FROM task_attachments a WHERE a.storage_key = ANY (p_keys)
    UNION
    SELECT t.storage_key FROM task_trash_attachments t WHERE t.storage_key = ANY (p_keys)
$$;

DROP PROCEDURE task_children_store(TEXT, TEXT, TEXT, TEXT);
ALTER TABLE task_children
    DROP CONSTRAINT ck_task_children_stored,
    DROP COLUMN stored_by,
    DROP COLUMN stored_size,
    DROP COLUMN stored;
