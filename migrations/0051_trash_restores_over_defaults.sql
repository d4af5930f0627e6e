-- depends: 0050_trash_snapshots
-- A trashed task's snapshot is its rows as they were when it was deleted: a column added to
-- `tasks` or `task_comments` since (the "add a field" recipe: nullable or with a default) is
-- missing from it, and `jsonb_populate_record` over NULL made it NULL, so a column with a
-- default and NOT NULL refused the restore of every task trashed before the migration. Each
-- missing key now takes the column's default, as an INSERT without the column would
-- (`task_api_missing_defaults`); a key the snapshot holds, null included, is kept.

-- The defaults of the columns of `p_table` that `p_row` (a row as JSON) has no key for, as one
-- JSON object, evaluated now: one call per row, so a volatile default (a random id) differs
-- from row to row; a row with every key (every snapshot taken since the last column was added)
-- reads the catalog only. A default that draws from a sequence is left out.
CREATE FUNCTION task_api_missing_defaults(p_table regclass, p_row JSONB) RETURNS JSONB
LANGUAGE plpgsql AS $$
DECLARE
    v_sql TEXT;
    v_defaults JSONB;
BEGIN
    SELECT 'SELECT to_jsonb(d) FROM (SELECT ' || string_agg(
               format('%s AS %I', pg_get_expr(d.adbin, d.adrelid), a.attname), ', '
               ORDER BY a.attnum
           ) || ') AS d'
    INTO v_sql
    FROM pg_attribute a
    JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
    WHERE a.attrelid = p_table AND a.attnum > 0 AND NOT a.attisdropped
      AND a.attgenerated = '' AND NOT p_row ? a.attname::text
      AND pg_get_expr(d.adbin, d.adrelid) NOT LIKE '%nextval(%';
    IF v_sql IS NULL THEN
        RETURN '{}';
    END IF;
    EXECUTE v_sql INTO v_defaults;
    RETURN v_defaults;
END
$$;

-- 0050's restore, each task and comment populated over its table's defaults.
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
    INSERT INTO task_comments OVERRIDING SYSTEM VALUE
    SELECT (jsonb_populate_record(c, jsonb_build_object(
        'user_id', p_space,
        'list_id', p_list,
        'author_id', (SELECT u.id FROM users u WHERE u.id = c.author_id)
    ))).*
    FROM jsonb_array_elements(v_snapshot -> 'comments') AS e(j)
    CROSS JOIN LATERAL jsonb_populate_record(
        NULL::task_comments, task_api_missing_defaults('task_comments', e.j) || e.j
    ) AS c
    ORDER BY c.id;
    INSERT INTO task_member_reminders (user_id, task_id, member_id, reminders)
    SELECT p_space, r.task_id, r.member_id, r.reminders
    FROM jsonb_populate_recordset(NULL::task_member_reminders, v_snapshot -> 'member_reminders') r
    WHERE EXISTS (SELECT FROM list_members m WHERE m.list_id = p_list AND m.member_id = r.member_id);
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
