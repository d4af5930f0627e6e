-- 0050's snapshot and 0051's restore, which name comments and members' reminders by hand (a
-- snapshot taken since 0052, under `children`, restores its tasks alone).
DROP FUNCTION task_trash_snapshots(BIGINT[]);
CREATE FUNCTION task_trash_snapshots(p_roots BIGINT[])
RETURNS TABLE (root_id BIGINT, snapshot JSONB)
LANGUAGE sql STABLE AS $$
    WITH RECURSIVE subtree AS (
        SELECT t.user_id, t.id, t.id AS root, 0 AS depth FROM tasks t WHERE t.id = ANY (p_roots)
        UNION ALL
        SELECT t.user_id, t.id, s.root, s.depth + 1
        FROM subtree s JOIN tasks t ON t.user_id = s.user_id AND t.parent_id = s.id
    ), kept AS (
        SELECT s.root, jsonb_agg(to_jsonb(t) ORDER BY s.depth, t.id) AS tasks
        FROM subtree s JOIN tasks t ON t.user_id = s.user_id AND t.id = s.id
        GROUP BY s.root
    ), comments AS (
        SELECT s.root, jsonb_agg(to_jsonb(c) ORDER BY c.id) AS comments
        FROM subtree s JOIN task_comments c ON c.user_id = s.user_id AND c.task_id = s.id
        GROUP BY s.root
    ), reminders AS (
        SELECT s.root, jsonb_agg(to_jsonb(r)) AS reminders
        FROM subtree s JOIN task_member_reminders r ON r.user_id = s.user_id AND r.task_id = s.id
        GROUP BY s.root
    )
    SELECT k.root, jsonb_build_object(
        'tasks', k.tasks,
        'comments', coalesce(c.comments, '[]'),
        'member_reminders', coalesce(m.reminders, '[]')
    )
    FROM kept k
    LEFT JOIN comments c ON c.root = k.root
    LEFT JOIN reminders m ON m.root = k.root
    -- A root inside another root's subtree is in that one's snapshot only (clearing completed
    -- tasks deletes a completed task under an open one whose completed parent goes too).
    WHERE NOT EXISTS (SELECT FROM subtree s WHERE s.id = k.root AND s.root <> k.root)
$$;

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

DROP FUNCTION task_trash_restore_children(TEXT, JSONB, TEXT, BIGINT);
DROP TABLE task_children;
