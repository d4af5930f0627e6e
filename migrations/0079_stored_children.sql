-- depends: 0068_trash_attachment_bytes
-- `stored=` is the whole story (issue 71; specs/storage.md, "Stored children"): what a child's
-- rows name in the attachments' storage is registered with the child, and every place that
-- asks about stored bytes reads the registry, not `task_attachments` by name: the sweeper's
-- "is this key named?" (`task_stored_known`), the quota (`task_stored_used`), the trash's
-- byte accounting (`task_trash_stored`, 0068's `task_trash_attachments` for any stored child)
-- and an account's deletion (`task_stored_keys_of`). A stored child's migration registers it
-- with `CALL task_children_store('<table>', '<key column>', '<size column>', '<uploader
-- column>')` after `task_children_register` (backend/models/task_children.py `Stored`;
-- tests/test_task_children.py compares the two). Dynamic SQL over the registry's names only
-- (our own tables and columns, quoted with %I), as 0052's trash functions.

ALTER TABLE task_children
    -- The column naming the row's object (a storage key); NULL: the child stores nothing.
    ADD COLUMN stored TEXT,
    -- The column holding the object's bytes.
    ADD COLUMN stored_size TEXT,
    -- The column naming whose quota the bytes count against (NULL: no one's).
    ADD COLUMN stored_by TEXT,
    ADD CONSTRAINT ck_task_children_stored CHECK (
        (stored IS NULL) = (stored_size IS NULL) AND (stored IS NOT NULL OR stored_by IS NULL)
    );

-- A stored child's registration, called by its migration once `task_children_register` has
-- added it: each column named must be the table's.
CREATE PROCEDURE task_children_store(
    p_name TEXT, p_key TEXT, p_size TEXT, p_by TEXT DEFAULT NULL
)
LANGUAGE plpgsql AS $$
DECLARE
    v_column TEXT;
BEGIN
    FOREACH v_column IN ARRAY array_remove(ARRAY[p_key, p_size, p_by], NULL) LOOP
        IF NOT EXISTS (
            SELECT FROM pg_attribute a
            WHERE a.attrelid = p_name::regclass AND a.attname = v_column AND NOT a.attisdropped
        ) THEN
            RAISE EXCEPTION 'task_children_store: % has no column %', p_name, v_column;
        END IF;
    END LOOP;
    UPDATE task_children SET stored = p_key, stored_size = p_size, stored_by = p_by
    WHERE name = p_name;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'task_children_store: % is not registered', p_name;
    END IF;
END
$$;

CALL task_children_store('task_attachments', 'storage_key', 'size', 'uploaded_by');

-- A trashed task's stored rows, one each, kept by the trash itself (0068's table, for every
-- stored child): the quota's and the sweeper's index probes, a purge's keys. Written by a
-- statement trigger on task_trash's insert from the snapshot's rows of each stored child
-- (their place in its array: `n`), gone with its trash row. No `user_id`: read by the
-- functions below and a purge's RETURNING, through its trash row.
CREATE TABLE task_trash_stored (
    trash_id    BIGINT  NOT NULL,
    -- The child's table, as registered.
    child       TEXT    NOT NULL,
    n           INTEGER NOT NULL,
    stored_by   TEXT,
    size        BIGINT  NOT NULL,
    storage_key TEXT    NOT NULL,
    CONSTRAINT pk_task_trash_stored PRIMARY KEY (trash_id, child, n),
    CONSTRAINT fk_task_trash_stored_trash_id_task_trash FOREIGN KEY (trash_id)
        REFERENCES task_trash (id) ON DELETE CASCADE
);
CREATE INDEX ix_task_trash_stored_stored_by ON task_trash_stored (stored_by);
CREATE INDEX ix_task_trash_stored_storage_key ON task_trash_stored (storage_key);

CREATE FUNCTION task_trash_stored_add() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO task_trash_stored (trash_id, child, n, stored_by, size, storage_key)
    SELECT a.id, c.name, e.n, e.j ->> c.stored_by, (e.j ->> c.stored_size)::BIGINT,
           e.j ->> c.stored
    FROM added a
    CROSS JOIN task_children c
    CROSS JOIN LATERAL jsonb_array_elements(a.snapshot -> 'children' -> c.name)
        WITH ORDINALITY AS e(j, n)
    WHERE c.stored IS NOT NULL
      AND jsonb_typeof(a.snapshot -> 'children' -> c.name) = 'array'
      AND e.j ->> c.stored IS NOT NULL;
    RETURN NULL;
END
$$;

DROP TRIGGER task_trash_attachments_add ON task_trash;
DROP FUNCTION task_trash_attachments_add();
CREATE TRIGGER task_trash_stored_add AFTER INSERT ON task_trash
    REFERENCING NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION task_trash_stored_add();

INSERT INTO task_trash_stored (trash_id, child, n, stored_by, size, storage_key)
SELECT trash_id, 'task_attachments', row_number() OVER (PARTITION BY trash_id ORDER BY attachment_id),
       uploaded_by, size, storage_key
FROM task_trash_attachments;

DROP FUNCTION task_attachments_used(TEXT);
DROP FUNCTION task_attachments_known(TEXT[]);
DROP TABLE task_trash_attachments;

-- The bytes `p_user` uploaded that count against its quota: every stored child's rows it is
-- `stored_by` of, here and in a trash (a trashed task's files count until purged).
CREATE FUNCTION task_stored_used(p_user TEXT) RETURNS BIGINT
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_total BIGINT;
    v_part BIGINT;
    v_child RECORD;
BEGIN
    SELECT coalesce(sum(t.size), 0) INTO v_total
    FROM task_trash_stored t WHERE t.stored_by = p_user;
    FOR v_child IN
        SELECT c.name, c.stored_size, c.stored_by FROM task_children c
        WHERE c.stored_by IS NOT NULL ORDER BY c.name
    LOOP
        EXECUTE format('SELECT coalesce(sum(%I), 0) FROM %I WHERE %I = $1',
                       v_child.stored_size, v_child.name, v_child.stored_by)
        INTO v_part USING p_user;
        v_total := v_total + v_part;
    END LOOP;
    RETURN v_total;
END
$$;

-- Of `p_keys`, those a stored child's row names, here or in a trash (the sweeper deletes only
-- objects this says no to; an account's deletion, those it no longer names).
CREATE FUNCTION task_stored_known(p_keys TEXT[]) RETURNS SETOF TEXT
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_child RECORD;
BEGIN
    RETURN QUERY SELECT t.storage_key FROM task_trash_stored t WHERE t.storage_key = ANY (p_keys);
    FOR v_child IN
        SELECT c.name, c.stored FROM task_children c WHERE c.stored IS NOT NULL ORDER BY c.name
    LOOP
        RETURN QUERY EXECUTE format('SELECT %1$I::text FROM %2$I WHERE %1$I = ANY ($1)',
                                    v_child.stored, v_child.name)
        USING p_keys;
    END LOOP;
END
$$;

-- The keys of the objects `p_user`'s space names (its stored rows and its trash's): what its
-- deletion may free, read in the deleting statement's snapshot (before its cascades; a list
-- handed over keeps its files, which `task_stored_known` then still names).
CREATE FUNCTION task_stored_keys_of(p_user TEXT) RETURNS TEXT[]
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_keys TEXT[];
    v_part TEXT[];
    v_child RECORD;
BEGIN
    SELECT coalesce(array_agg(k.storage_key), '{}') INTO v_keys
    FROM task_trash t JOIN task_trash_stored k ON k.trash_id = t.id
    WHERE t.user_id = p_user;
    FOR v_child IN
        SELECT c.name, c.stored FROM task_children c WHERE c.stored IS NOT NULL ORDER BY c.name
    LOOP
        EXECUTE format('SELECT coalesce(array_agg(%1$I::text), ''{}'') FROM %2$I'
                       ' WHERE user_id = $1 AND %1$I IS NOT NULL',
                       v_child.stored, v_child.name)
        INTO v_part USING p_user;
        v_keys := v_keys || v_part;
    END LOOP;
    RETURN v_keys;
END
$$;
