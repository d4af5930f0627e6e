-- depends: 0049_trash_stays_with_owner
-- What trashed tasks are, for all of a statement's deleted roots at once (0048's
-- `task_trash_snapshot` called once per root): a list's DELETE puts each of its top-level tasks
-- in the trash, and 800 calls, each planning its own reads from the statistics of a table whose
-- rows the list had just added, took a second where one pass takes milliseconds. Each root's
-- snapshot as before: every row of its subtree (parents before children), their comments and
-- their members' private reminders. STABLE: it reads the calling statement's snapshot, in
-- which the DELETE beside it has not yet removed a row.
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
$$;

DROP FUNCTION task_trash_snapshot(TEXT, BIGINT);
