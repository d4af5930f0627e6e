-- depends: 0017_task_lists
-- The rules of subtasks, kept by the database for every writer (every route, bulk, MCP, the
-- recurring successor, SQL typed into psql), in the transaction of the write:
--
-- 1. A new task without a position gets one: a top-level task goes first among its siblings
--    (the default listing shows the newest first, and so does manual order until a task is
--    moved), a subtask last (checklist steps are added at the end).
-- 2. Completing a task completes its open subtasks (and theirs).
-- 3. An open task under a completed parent reopens the parent (and its completed ancestors):
--    reopening a subtask, creating an open one, or moving one there. So a completed task never
--    has an open subtask.
-- 4. The tree's shape: a subtask is in its parent's list, no task is its own ancestor, and a
--    task has at most three ancestors. The API refuses a write that would break this with a
--    422 before it is sent (backend/services/statements/task_tree.py); this check is what makes it hold
--    for any other writer (a violation is SQLSTATE 23514, `ck_tasks_tree`).
-- 5. A recurring task's next occurrence gets a fresh copy of the completed occurrence's
--    subtasks (its checklist), pending, in the same places; a copy's `previous_task_id` names
--    the subtask it continues, so each is copied once (`uq_tasks_previous_task_id`).
--
-- Changes made here are ordinary changes: `version + 1`, `updated_at = now()`, and a change
-- recorded for each task by the trigger of migration 0008.

-- 1. A place for a new task. The writer's change lock first (migration 0008), so that two
-- writers of the same user never compute the same place.
CREATE FUNCTION tasks_place() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    edge BIGINT;
BEGIN
    PERFORM task_events_lock(NEW.user_id);
    IF NEW.parent_id IS NOT NULL THEN
        SELECT max(position) INTO edge FROM tasks
        WHERE user_id = NEW.user_id AND parent_id = NEW.parent_id;
        NEW.position := coalesce(edge + 65536, 65536);
    ELSE
        IF NEW.list_id IS NULL THEN
            SELECT min(position) INTO edge FROM tasks
            WHERE user_id = NEW.user_id AND list_id IS NULL AND parent_id IS NULL;
        ELSE
            SELECT min(position) INTO edge FROM tasks
            WHERE user_id = NEW.user_id AND list_id = NEW.list_id AND parent_id IS NULL;
        END IF;
        NEW.position := coalesce(edge - 65536, 65536);
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER tasks_place BEFORE INSERT ON tasks
    FOR EACH ROW WHEN (NEW.position IS NULL) EXECUTE FUNCTION tasks_place();

-- 2. Completing a task completes its open subtasks; each of those fires this again.
CREATE FUNCTION tasks_complete_subtasks() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE tasks
    SET completed = true, completed_at = now(), updated_at = now(), version = version + 1
    WHERE user_id = NEW.user_id AND parent_id = NEW.id AND NOT completed;
    RETURN NULL;
END
$$;

-- Named to fire after `tasks_record_event` (triggers fire in name order): a task's
-- `completed` change comes before its subtasks'.
CREATE TRIGGER tasks_subtasks_complete AFTER UPDATE ON tasks
    FOR EACH ROW WHEN (NEW.completed AND NOT OLD.completed)
    EXECUTE FUNCTION tasks_complete_subtasks();

-- 3. An open subtask reopens its completed parent; the parent's reopening fires this again.
CREATE FUNCTION tasks_reopen_parent() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE tasks
    SET completed = false, completed_at = NULL, updated_at = now(), version = version + 1
    WHERE user_id = NEW.user_id AND id = NEW.parent_id AND completed;
    RETURN NULL;
END
$$;

CREATE TRIGGER tasks_reopen_parent_on_insert AFTER INSERT ON tasks
    FOR EACH ROW WHEN (NEW.parent_id IS NOT NULL AND NOT NEW.completed)
    EXECUTE FUNCTION tasks_reopen_parent();
CREATE TRIGGER tasks_reopen_parent_on_update AFTER UPDATE ON tasks
    FOR EACH ROW WHEN (
        NEW.parent_id IS NOT NULL AND NOT NEW.completed
        AND (OLD.completed OR OLD.parent_id IS DISTINCT FROM NEW.parent_id)
    )
    EXECUTE FUNCTION tasks_reopen_parent();

-- 4. The tree's shape, checked once the statement has written every row it writes (a move
-- updates a task and its subtree in one statement).
CREATE FUNCTION tasks_check_tree() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    parent_list BIGINT;
    ancestor BIGINT;
    depth INTEGER := 0;
    height INTEGER;
BEGIN
    IF NEW.parent_id IS NOT NULL THEN
        SELECT list_id INTO parent_list FROM tasks
        WHERE user_id = NEW.user_id AND id = NEW.parent_id;
        -- A parent that does not exist is the foreign key's to report.
        IF FOUND AND parent_list IS DISTINCT FROM NEW.list_id THEN
            RAISE EXCEPTION USING ERRCODE = 'check_violation', CONSTRAINT = 'ck_tasks_tree',
                MESSAGE = 'a subtask must be in its parent''s list';
        END IF;
    END IF;
    IF EXISTS (
        SELECT FROM tasks
        WHERE user_id = NEW.user_id AND parent_id = NEW.id
          AND list_id IS DISTINCT FROM NEW.list_id
    ) THEN
        RAISE EXCEPTION USING ERRCODE = 'check_violation', CONSTRAINT = 'ck_tasks_tree',
            MESSAGE = 'a subtask must be in its parent''s list';
    END IF;
    IF TG_OP = 'UPDATE' AND OLD.parent_id IS NOT DISTINCT FROM NEW.parent_id THEN
        RETURN NULL;  -- only the list changed (a moved subtree): its shape did not
    END IF;
    ancestor := NEW.parent_id;
    WHILE ancestor IS NOT NULL LOOP
        IF ancestor = NEW.id THEN
            RAISE EXCEPTION USING ERRCODE = 'check_violation', CONSTRAINT = 'ck_tasks_tree',
                MESSAGE = 'a task cannot be its own ancestor';
        END IF;
        depth := depth + 1;
        IF depth > 3 THEN
            RAISE EXCEPTION USING ERRCODE = 'check_violation', CONSTRAINT = 'ck_tasks_tree',
                MESSAGE = 'a task has at most three ancestors';
        END IF;
        SELECT parent_id INTO ancestor FROM tasks WHERE user_id = NEW.user_id AND id = ancestor;
    END LOOP;
    IF TG_OP = 'UPDATE' THEN
        WITH RECURSIVE below (id, n) AS (
            SELECT id, 1 FROM tasks WHERE user_id = NEW.user_id AND parent_id = NEW.id
            UNION ALL
            SELECT t.id, b.n + 1 FROM tasks AS t JOIN below AS b ON t.parent_id = b.id
            WHERE t.user_id = NEW.user_id AND b.n <= 3
        )
        SELECT coalesce(max(n), 0) INTO height FROM below;
        IF depth + height > 3 THEN
            RAISE EXCEPTION USING ERRCODE = 'check_violation', CONSTRAINT = 'ck_tasks_tree',
                MESSAGE = 'a task has at most three ancestors';
        END IF;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER tasks_check_tree_on_insert AFTER INSERT ON tasks
    FOR EACH ROW WHEN (NEW.parent_id IS NOT NULL) EXECUTE FUNCTION tasks_check_tree();
CREATE TRIGGER tasks_check_tree_on_update AFTER UPDATE ON tasks
    FOR EACH ROW WHEN (
        OLD.parent_id IS DISTINCT FROM NEW.parent_id OR OLD.list_id IS DISTINCT FROM NEW.list_id
    )
    EXECUTE FUNCTION tasks_check_tree();

-- 5. A recurring task's checklist comes back with its next occurrence.
--
-- Reminders of a copy: `minutes_before_due` as they are; an `at` moved by as much as the due
-- date moved (dropped if that leaves the years 1900-9998), written as the API writes instants.
CREATE FUNCTION task_reminders_shifted(reminders JSONB, shift INTERVAL) RETURNS JSONB
LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce(jsonb_agg(
        CASE WHEN r ? 'at' THEN jsonb_build_object('at',
            to_char(moved AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS')
            || CASE WHEN extract(microseconds FROM moved)::bigint % 1000000 = 0 THEN ''
                    ELSE to_char(moved AT TIME ZONE 'UTC', '.US') END
            || 'Z')
        ELSE r END
        ORDER BY n), '[]'::jsonb)
    FROM jsonb_array_elements(reminders) WITH ORDINALITY AS e(r, n)
    CROSS JOIN LATERAL (
        SELECT CASE WHEN r ? 'at' THEN (r ->> 'at')::timestamptz + shift END AS moved
    ) AS m
    WHERE moved IS NULL
       OR extract(year FROM moved AT TIME ZONE 'UTC') BETWEEN 1900 AND 9998
$$;

CREATE FUNCTION tasks_copy_subtasks() RETURNS trigger
LANGUAGE plpgsql SET TimeZone = 'UTC' AS $$
DECLARE
    shift INTERVAL;
BEGIN
    SELECT NEW.due_date - previous.due_date INTO shift
    FROM tasks AS previous
    WHERE previous.user_id = NEW.user_id AND previous.id = NEW.previous_task_id;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    shift := coalesce(shift, interval '0');
    -- The previous occurrence's subtree, but for subtasks copied before (and what is below
    -- them): a copy that was moved elsewhere when its occurrence was deleted.
    WITH RECURSIVE source (id, depth) AS (
        SELECT t.id, 1 FROM tasks AS t
        WHERE t.user_id = NEW.user_id AND t.parent_id = NEW.previous_task_id
          AND NOT EXISTS (SELECT FROM tasks AS c WHERE c.previous_task_id = t.id)
        UNION ALL
        SELECT t.id, s.depth + 1 FROM tasks AS t JOIN source AS s ON t.parent_id = s.id
        WHERE t.user_id = NEW.user_id AND s.depth <= 3
          AND NOT EXISTS (SELECT FROM tasks AS c WHERE c.previous_task_id = t.id)
    ), fresh AS MATERIALIZED (
        SELECT s.id, s.depth, nextval(pg_get_serial_sequence('tasks', 'id')) AS new_id
        FROM source AS s
    )
    INSERT INTO tasks (
        id, user_id, title, description, priority, tags, time_zone, due_date, reminders,
        list_id, parent_id, position, previous_task_id
    )
    OVERRIDING SYSTEM VALUE
    SELECT f.new_id, NEW.user_id, t.title, t.description, t.priority, t.tags, t.time_zone,
           CASE WHEN extract(year FROM (t.due_date + shift) AT TIME ZONE 'UTC')
                     BETWEEN 1900 AND 9998
                THEN t.due_date + shift END,
           task_reminders_shifted(t.reminders, shift),
           NEW.list_id, coalesce(p.new_id, NEW.id), t.position, t.id
    FROM fresh AS f
    JOIN tasks AS t ON t.id = f.id AND t.user_id = NEW.user_id
    LEFT JOIN fresh AS p ON p.id = t.parent_id
    ORDER BY f.depth, t.position;
    RETURN NULL;
END
$$;

-- Named to fire after `tasks_record_event` (triggers fire in name order): the occurrence's
-- `created` change comes before its subtasks'.
CREATE TRIGGER tasks_successor_subtasks AFTER INSERT ON tasks
    FOR EACH ROW WHEN (NEW.previous_task_id IS NOT NULL AND NEW.parent_id IS NULL)
    EXECUTE FUNCTION tasks_copy_subtasks();
