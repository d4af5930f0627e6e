-- Back to 0065's functions, which read the trash snapshots' JSON.
CREATE OR REPLACE FUNCTION task_attachments_used(p_user TEXT) RETURNS BIGINT
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
CREATE OR REPLACE FUNCTION task_attachments_known(p_keys TEXT[]) RETURNS SETOF TEXT
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
DROP TRIGGER task_trash_attachments_add ON task_trash;
DROP FUNCTION task_trash_attachments_add();
DROP TABLE task_trash_attachments;
