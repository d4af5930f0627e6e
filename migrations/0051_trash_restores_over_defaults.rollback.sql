-- 0050's restore, and no defaults' function.
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
    CROSS JOIN LATERAL jsonb_populate_record(NULL::tasks, s.j) AS r
    ORDER BY s.n;
    INSERT INTO task_comments OVERRIDING SYSTEM VALUE
    SELECT (jsonb_populate_record(c, jsonb_build_object(
        'user_id', p_space,
        'list_id', p_list,
        'author_id', (SELECT u.id FROM users u WHERE u.id = c.author_id)
    ))).*
    FROM jsonb_populate_recordset(NULL::task_comments, v_snapshot -> 'comments') AS c
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

DROP FUNCTION task_api_missing_defaults(regclass, JSONB);
