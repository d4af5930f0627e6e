-- 0048's snapshot, one root per call.
CREATE FUNCTION task_trash_snapshot(p_space TEXT, p_root BIGINT) RETURNS JSONB
LANGUAGE sql STABLE AS $$
    WITH RECURSIVE subtree AS (
        SELECT t.id, 0 AS depth FROM tasks t WHERE t.user_id = p_space AND t.id = p_root
        UNION ALL
        SELECT t.id, s.depth + 1 FROM tasks t JOIN subtree s ON t.parent_id = s.id
        WHERE t.user_id = p_space
    )
    SELECT jsonb_build_object(
        'tasks', (SELECT coalesce(jsonb_agg(to_jsonb(t) ORDER BY s.depth, t.id), '[]')
                  FROM tasks t JOIN subtree s ON s.id = t.id WHERE t.user_id = p_space),
        'comments', (SELECT coalesce(jsonb_agg(to_jsonb(c) ORDER BY c.id), '[]')
                     FROM task_comments c JOIN subtree s ON s.id = c.task_id
                     WHERE c.user_id = p_space),
        'member_reminders', (SELECT coalesce(jsonb_agg(to_jsonb(r)), '[]')
                             FROM task_member_reminders r JOIN subtree s ON s.id = r.task_id
                             WHERE r.user_id = p_space)
    )
$$;

DROP FUNCTION task_trash_snapshots(BIGINT[]);
