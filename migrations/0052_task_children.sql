-- depends: 0051_trash_restores_over_defaults
-- A task's children, declared once (issue 60; specs/data-model.md, "A task's children"): the
-- tables whose rows belong to one task, by a key (user_id, task_id) -> tasks (user_id, id).
-- The trash kept the children it named by hand (comments, members' reminders): a child table
-- nobody listed was dropped by the cascade and never restored. Now the trash's snapshot and
-- restore take every table named in `task_children` (its rows: one a child, added by the
-- child's own migration, the same list as `backend/models/task_children.py`'s `CHILDREN`,
-- tests/test_task_children.py), and what a child's row becomes on a restore follows from its
-- columns, not from a hand-written INSERT.
CREATE TABLE task_children (
    name TEXT CONSTRAINT pk_task_children PRIMARY KEY
);
INSERT INTO task_children (name) VALUES ('task_comments'), ('task_member_reminders');

-- Every root's snapshot (0050's, in one pass): its subtree's rows, parents before children,
-- and under `children` each declared child table's rows of those tasks (an array, empty or
-- not, for every child), by table name.
-- Dynamic SQL over the registry's names only (our own tables, quoted with %I). STABLE: it
-- reads the calling statement's snapshot, in which the DELETE beside it has removed nothing.
CREATE OR REPLACE FUNCTION task_trash_snapshots(p_roots BIGINT[])
RETURNS TABLE (root_id BIGINT, snapshot JSONB)
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_ids BIGINT[];
    v_roots BIGINT[];
    v_spaces TEXT[];
    v_depths INTEGER[];
    v_children JSONB := '{}';
    v_rows JSONB;
    v_table TEXT;
BEGIN
    WITH RECURSIVE subtree AS (
        SELECT t.user_id, t.id, t.id AS root, 0 AS depth FROM tasks t WHERE t.id = ANY (p_roots)
        UNION ALL
        SELECT t.user_id, t.id, s.root, s.depth + 1
        FROM subtree s JOIN tasks t ON t.user_id = s.user_id AND t.parent_id = s.id
    )
    SELECT array_agg(s.id), array_agg(s.root), array_agg(s.user_id), array_agg(s.depth)
    INTO v_ids, v_roots, v_spaces, v_depths
    FROM subtree s;
    IF v_ids IS NULL THEN
        RETURN;
    END IF;
    FOR v_table IN SELECT c.name FROM task_children c ORDER BY c.name LOOP
        EXECUTE format(
            'SELECT jsonb_object_agg(x.root, x.rows) FROM ('
            '  SELECT s.root, jsonb_agg(to_jsonb(c) ORDER BY to_jsonb(c) ->> %L, to_jsonb(c)::text) AS rows'
            '  FROM unnest($1, $2, $3) AS s(id, root, user_id)'
            '  JOIN %I c ON c.user_id = s.user_id AND c.task_id = s.id'
            '  GROUP BY s.root'
            ') x',
            'id', v_table
        ) INTO v_rows USING v_ids, v_roots, v_spaces;
        SELECT coalesce(jsonb_object_agg(
                   e.key, coalesce(v_children -> e.key, '{}') || jsonb_build_object(v_table, e.value)
               ), '{}')
        INTO v_rows
        FROM jsonb_each(coalesce(v_rows, '{}')) AS e;
        v_children := v_children || v_rows;
    END LOOP;
    RETURN QUERY
    WITH subtree AS (
        SELECT * FROM unnest(v_ids, v_roots, v_spaces, v_depths) AS s(id, root, user_id, depth)
    ), kept AS (
        SELECT s.root, jsonb_agg(to_jsonb(t) ORDER BY s.depth, t.id) AS tasks
        FROM subtree s JOIN tasks t ON t.user_id = s.user_id AND t.id = s.id
        GROUP BY s.root
    )
    SELECT k.root, jsonb_build_object(
        'tasks', k.tasks,
        'children', (SELECT jsonb_object_agg(c.name, coalesce(v_children -> k.root::text -> c.name, '[]'))
                     FROM task_children c)
    )
    FROM kept k
    -- A root inside another root's subtree is in that one's snapshot only (clearing completed
    -- tasks deletes a completed task under an open one whose completed parent goes too).
    WHERE NOT EXISTS (SELECT FROM subtree s WHERE s.id = k.root AND s.root <> k.root);
END
$$;

-- One child table's rows of a snapshot, inserted again in the restored task's space (and in
-- its list, for a child that keeps a copy of it: `list_id`). What each row becomes follows
-- from the table's columns: a column with a key to `users` that sets it NULL on the user's
-- deletion (a comment's author) is NULL when that user is gone; one that cascades (whose row
-- went with its user) drops the row; a `member_id` (a member's private row) drops the row
-- unless its member is still a member of the list restored into. A key the snapshot lacks
-- (a column added since) takes the column's default (`task_api_missing_defaults`, 0051).
CREATE FUNCTION task_trash_restore_children(
    p_table TEXT, p_rows JSONB, p_space TEXT, p_list BIGINT
) RETURNS VOID
LANGUAGE plpgsql AS $$
DECLARE
    v_table regclass := p_table::regclass;
    v_columns TEXT;
    v_values TEXT;
    v_where TEXT := 'true';
    v_fixed JSONB := jsonb_build_object('user_id', p_space);
    v_key RECORD;
BEGIN
    IF p_rows IS NULL OR jsonb_array_length(p_rows) = 0 THEN
        RETURN;
    END IF;
    SELECT string_agg(format('%I', a.attname), ', ' ORDER BY a.attnum),
           string_agg(CASE WHEN EXISTS (
                   SELECT FROM pg_constraint k
                   WHERE k.conrelid = v_table AND k.contype = 'f' AND k.confdeltype = 'n'
                     AND k.confrelid = 'users'::regclass AND k.conkey = ARRAY[a.attnum]
               ) THEN format('(SELECT u.id FROM users u WHERE u.id = r.%I)', a.attname)
               ELSE format('r.%I', a.attname) END, ', ' ORDER BY a.attnum)
    INTO v_columns, v_values
    FROM pg_attribute a
    WHERE a.attrelid = v_table AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = '';
    IF EXISTS (SELECT FROM pg_attribute a WHERE a.attrelid = v_table AND a.attname = 'list_id'
               AND NOT a.attisdropped) THEN
        v_fixed := v_fixed || jsonb_build_object('list_id', p_list);
    END IF;
    FOR v_key IN
        SELECT a.attname
        FROM pg_constraint k
        JOIN pg_attribute a ON a.attrelid = k.conrelid AND k.conkey = ARRAY[a.attnum]
        WHERE k.conrelid = v_table AND k.contype = 'f' AND k.confrelid = 'users'::regclass
          AND k.confdeltype <> 'n' AND a.attname <> 'user_id'
    LOOP
        v_where := v_where || format(
            ' AND (r.%1$I IS NULL OR EXISTS (SELECT FROM users u WHERE u.id = r.%1$I))',
            v_key.attname
        );
    END LOOP;
    IF EXISTS (SELECT FROM pg_attribute a WHERE a.attrelid = v_table AND a.attname = 'member_id'
               AND NOT a.attisdropped) THEN
        v_where := v_where || ' AND EXISTS (SELECT FROM list_members m'
                            || ' WHERE m.list_id = $2 AND m.member_id = r.member_id)';
    END IF;
    EXECUTE format(
        'INSERT INTO %s (%s) OVERRIDING SYSTEM VALUE SELECT %s'
        ' FROM jsonb_array_elements($1) WITH ORDINALITY AS e(j, n)'
        ' CROSS JOIN LATERAL jsonb_populate_record('
        '     NULL::%s, task_api_missing_defaults(%L, e.j) || e.j || $3'
        ' ) AS r'
        ' WHERE %s ORDER BY e.n',
        v_table, v_columns, v_values, v_table, p_table, v_where
    ) USING p_rows, p_list, v_fixed;
END
$$;

-- 0051's restore, its children from the registry: a snapshot taken before this migration
-- keeps comments and members' reminders under their old keys.
CREATE OR REPLACE FUNCTION task_trash_restore(
    p_id BIGINT, p_space TEXT, p_list BIGINT, p_parent BIGINT, p_caller TEXT,
    p_list_limit INTEGER, p_tree_limit INTEGER
)
RETURNS SETOF tasks
LANGUAGE plpgsql SET "TimeZone" TO 'UTC' AS $$
DECLARE
    v_fit RECORD;
    v_snapshot JSONB;
    v_root tasks;
    v_table TEXT;
BEGIN
    v_fit := task_trash_fit(p_id, p_space, p_list, p_parent, p_list_limit, p_tree_limit);
    IF v_fit.refusal IS NOT NULL THEN
        RETURN;
    END IF;
    DELETE FROM task_trash WHERE user_id = p_space AND id = p_id RETURNING snapshot INTO v_snapshot;
    IF v_snapshot IS NULL THEN
        RETURN;
    END IF;
    PERFORM set_config('task_api.restoring', 'on', true);
    INSERT INTO tasks OVERRIDING SYSTEM VALUE
    SELECT (jsonb_populate_record(r, jsonb_build_object(
        'user_id', p_space,
        'list_id', p_list,
        'updated_at', now(),
        'version', r.version + 1,
        'parent_id', CASE WHEN r.id = p_id THEN v_fit.parent_id ELSE r.parent_id END,
        'position', CASE WHEN r.id <> p_id OR NOT EXISTS (
                SELECT FROM tasks o
                WHERE o.user_id = p_space AND o.list_id IS NOT DISTINCT FROM p_list
                  AND o.parent_id IS NOT DISTINCT FROM v_fit.parent_id
                  AND o.position = r.position
            ) THEN r.position END,
        'previous_task_id', CASE WHEN NOT EXISTS (
                SELECT FROM tasks o WHERE o.previous_task_id = r.previous_task_id
            ) THEN r.previous_task_id END,
        'subtask_count', 0,
        'open_subtask_count', 0,
        'assignees', (SELECT coalesce(array_agg(a ORDER BY n), '{}') FROM unnest(r.assignees)
                      WITH ORDINALITY AS x(a, n)
                      WHERE a = p_space OR EXISTS (
                          SELECT FROM list_members m WHERE m.list_id = p_list AND m.member_id = a))
    ))).*
    FROM jsonb_array_elements(v_snapshot -> 'tasks') WITH ORDINALITY AS s(j, n)
    CROSS JOIN LATERAL jsonb_populate_record(
        NULL::tasks, task_api_missing_defaults('tasks', s.j) || s.j
    ) AS r
    ORDER BY s.n;
    FOR v_table IN SELECT c.name FROM task_children c ORDER BY c.name LOOP
        PERFORM task_trash_restore_children(
            v_table,
            coalesce(v_snapshot -> 'children' -> v_table, v_snapshot -> CASE v_table
                WHEN 'task_comments' THEN 'comments'
                WHEN 'task_member_reminders' THEN 'member_reminders'
            END),
            p_space, p_list
        );
    END LOOP;
    PERFORM set_config('task_api.restoring', '', true);
    SELECT * INTO v_root FROM tasks WHERE user_id = p_space AND id = p_id;
    IF p_caller <> p_space THEN
        v_root.reminders := coalesce((
            SELECT r.reminders FROM task_member_reminders r
            WHERE r.user_id = p_space AND r.task_id = p_id AND r.member_id = p_caller
        ), '[]');
    END IF;
    RETURN NEXT v_root;
END
$$;
