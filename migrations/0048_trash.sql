-- depends: 0047_saved_filters
-- The trash (issue 53; specs/api-contract.md, "The trash"). A deleted task leaves `tasks` as
-- before (its triggers record the deletion in the feed, activity and events, unchanged) and
-- its subtree is kept here for 30 days, written by the DELETE's own statement: `tasks` never
-- holds a trashed row, so no listing, search, feed page, calendar or limit filters one and the
-- query plans keep their shape. `id` is the deleted task's (task ids are never reused); the
-- row is in the task's owner's space and names its list, so the access predicate reaches it as
-- it reaches the list's tasks (an editor of the list may restore it). `list_id` has no key: a
-- deleted list leaves its tasks' trash with no members to reach it (its owner still does).
CREATE TABLE task_trash (
    id          BIGINT      NOT NULL,
    user_id     TEXT        NOT NULL,
    list_id     BIGINT,
    title       TEXT        NOT NULL,
    deleted_by  TEXT,
    deleted_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    snapshot    JSONB       NOT NULL,
    CONSTRAINT pk_task_trash PRIMARY KEY (id),
    CONSTRAINT fk_task_trash_user_id_users FOREIGN KEY (user_id)
        REFERENCES users (id) ON DELETE CASCADE,
    CONSTRAINT fk_task_trash_deleted_by_users FOREIGN KEY (deleted_by)
        REFERENCES users (id) ON DELETE SET NULL,
    CONSTRAINT uq_task_trash_user_id_id UNIQUE (user_id, id)
);
-- The listing (newest first, keyset on (deleted_at, id)) in a space, and a list's members'.
CREATE INDEX ix_task_trash_user_id_deleted_at_id ON task_trash (user_id, deleted_at, id);
CREATE INDEX ix_task_trash_list_id ON task_trash (list_id) WHERE list_id IS NOT NULL;
-- The worker's purge of rows past their 30 days.
CREATE INDEX ix_task_trash_deleted_at ON task_trash (deleted_at);

CREATE TRIGGER task_trash_admit_write BEFORE INSERT OR UPDATE OR DELETE ON task_trash
    FOR EACH ROW WHEN (current_setting('task_api.refused', true) <> '')
    EXECUTE FUNCTION task_api_skip_refused_write();

-- What a trashed task is: every row of its subtree (parents before children), their comments
-- and their members' private reminders, as they were. STABLE: called in the DELETE's own
-- statement, it reads that statement's snapshot, the subtree whole.
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

-- Where a restore puts the trashed task `p_id` and what refuses it: `p_parent` (checked by the
-- caller's statement, as `p_list`) unless the subtree's height would give a task more than
-- three ancestors under it (then the list's top level); `refusal` 'list_full' or 'tree_full'
-- when the restored rows would pass a limit (`p_list_limit` tasks in a list,
-- `p_tree_limit` under one top-level task), else NULL. STABLE: the refusal's own read too.
CREATE FUNCTION task_trash_fit(
    p_id BIGINT, p_space TEXT, p_list BIGINT, p_parent BIGINT,
    p_list_limit INTEGER, p_tree_limit INTEGER,
    OUT parent_id BIGINT, OUT refusal TEXT
)
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_rows JSONB;
    v_size INTEGER;
    v_height INTEGER;
    v_depth INTEGER := 0;
    v_root BIGINT := p_parent;
    v_above BIGINT := p_parent;
    v_in_tree INTEGER;
BEGIN
    SELECT snapshot -> 'tasks' INTO v_rows FROM task_trash WHERE user_id = p_space AND id = p_id;
    v_size := jsonb_array_length(v_rows);
    WITH RECURSIVE trashed AS (
        SELECT * FROM jsonb_populate_recordset(NULL::tasks, v_rows)
    ), levels AS (
        SELECT t.id, 0 AS level FROM trashed t WHERE t.id = p_id
        UNION ALL
        SELECT t.id, l.level + 1 FROM trashed t JOIN levels l ON t.parent_id = l.id
    )
    SELECT coalesce(max(level), 0) INTO v_height FROM levels;
    WHILE v_above IS NOT NULL LOOP
        v_depth := v_depth + 1;
        v_root := v_above;
        SELECT t.parent_id INTO v_above FROM tasks t WHERE t.user_id = p_space AND t.id = v_above;
    END LOOP;
    parent_id := CASE WHEN v_depth + v_height <= 3 THEN p_parent END;
    IF p_list IS NOT NULL AND (
        SELECT count(*) FROM (
            SELECT FROM tasks t WHERE t.user_id = p_space AND t.list_id = p_list
            LIMIT p_list_limit + 1
        ) AS counted
    ) + v_size > p_list_limit THEN
        refusal := 'list_full';
    ELSIF parent_id IS NOT NULL THEN
        WITH RECURSIVE below AS (
            SELECT t.id FROM tasks t WHERE t.user_id = p_space AND t.parent_id = v_root
            UNION ALL
            SELECT t.id FROM tasks t JOIN below b ON t.parent_id = b.id
            WHERE t.user_id = p_space
        )
        SELECT count(*) INTO v_in_tree FROM below;
        IF v_in_tree + v_size > p_tree_limit THEN
            refusal := 'tree_full';
        END IF;
    END IF;
END
$$;

-- A restore: the trashed subtree inserted again with its ids, in `p_list` under the parent
-- `task_trash_fit` keeps (NULL: the space's top level), parents first, so the tasks' triggers
-- record each one again (feed, activity, events), recount the subtasks and schedule the
-- reminders still in the future. Assignees and members' private reminders are kept only for
-- who may still be in the list; a comment's author who has left is NULL, as its key would make
-- it; the root takes its old place if free (else the top). Returns the restored root as
-- `p_caller` reads it (its own reminders); nothing, changing nothing, when the row is gone
-- or `task_trash_fit` refuses.
CREATE FUNCTION task_trash_restore(
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

-- A restored task is no recurring task's new occurrence and no member's reminder write: the
-- triggers that copy a predecessor's subtasks and reminders, or take the task's reminders as
-- the writing member's, stand aside while `task_trash_restore` inserts.
DROP TRIGGER tasks_successor_subtasks ON tasks;
CREATE TRIGGER tasks_successor_subtasks AFTER INSERT ON tasks FOR EACH ROW
    WHEN (new.previous_task_id IS NOT NULL AND new.parent_id IS NULL
          AND current_setting('task_api.restoring', true) IS DISTINCT FROM 'on')
    EXECUTE FUNCTION tasks_copy_subtasks();
DROP TRIGGER tasks_successor_member_reminders ON tasks;
CREATE TRIGGER tasks_successor_member_reminders AFTER INSERT ON tasks FOR EACH ROW
    WHEN (new.previous_task_id IS NOT NULL AND new.list_id IS NOT NULL
          AND current_setting('task_api.restoring', true) IS DISTINCT FROM 'on')
    EXECUTE FUNCTION tasks_successor_member_reminders();
DROP TRIGGER tasks_keep_member_reminders ON tasks;
CREATE TRIGGER tasks_keep_member_reminders BEFORE INSERT OR UPDATE OF reminders ON tasks
    FOR EACH ROW
    WHEN (new.user_id <> coalesce(nullif(current_setting('task_api.actor', true), ''), new.user_id)
          AND pg_trigger_depth() = 0
          AND current_setting('task_api.restoring', true) IS DISTINCT FROM 'on')
    EXECUTE FUNCTION tasks_keep_member_reminders();
