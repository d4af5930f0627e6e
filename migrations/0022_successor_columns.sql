-- depends: 0020_refusals_without_errors
-- What a successor copies comes from the table, not from a hand list (issue 31, item 5).
--
-- A recurring task's next occurrence (inserted by the app, backend/services/tasks/service.py) and the
-- copies of its subtasks (inserted by `tasks_copy_subtasks`, migration 0018) take every column
-- of `tasks` from the occurrence they continue, but for the columns named by
-- `tasks_not_copied()`: the row's own identity and history, its completion, what the schedule
-- moves, and where it is placed. 0018's trigger named the copied columns by hand, so a new
-- field needed a rewrite of it, and forgetting that dropped the value without a failing test.
--
-- Why "everything but a named set" (read from pg_attribute) rather than recording the copied
-- columns somewhere: a column added by a migration is copied with no change here, which is
-- what a user's field wants (a successor is the same task, due later); the columns that must
-- not be copied are the server's bookkeeping, few and known, and named once below with why.
-- The app's side is the `copied_to_successor` flag of each field (backend/models/task_fields.py):
-- tests/test_field_survival.py fails when a flag disagrees with this set, and checks, without
-- reading either, that a successor and its subtasks carry every value.

-- The columns of `tasks` a successor does not take from its predecessor as they are.
CREATE FUNCTION tasks_not_copied() RETURNS name[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT ARRAY[
        'id', 'user_id',                         -- its own row, the caller's (same) owner
        'created_at', 'updated_at', 'version',   -- its own history
        'completed', 'completed_at',             -- it starts pending
        'due_date', 'next_due_date', 'reminders', -- moved by the schedule
        'previous_task_id',                      -- names the occurrence it continues
        'position'                               -- placed where it goes
    ]::name[]
$$;

-- 0018's copy of the subtasks, with the plain copied columns read from the table: the shift
-- of the due date and of `at` reminders, and the placement (the occurrence's list, the copied
-- parent, the same position, `previous_task_id`) are as 0018 made them. A subtask never
-- recurs (ck_tasks_subtask_not_recurring), so its series columns are null and copied as null.
CREATE OR REPLACE FUNCTION tasks_copy_subtasks() RETURNS trigger
LANGUAGE plpgsql SET TimeZone = 'UTC' AS $$
DECLARE
    shift INTERVAL;
    copied TEXT;
    sources TEXT;
BEGIN
    SELECT NEW.due_date - previous.due_date INTO shift
    FROM tasks AS previous
    WHERE previous.user_id = NEW.user_id AND previous.id = NEW.previous_task_id;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    shift := coalesce(shift, interval '0');
    -- Every column but those not copied and the two this placement sets (list_id, parent_id).
    SELECT coalesce(string_agg(format(', %I', a.attname), '' ORDER BY a.attnum), ''),
           coalesce(string_agg(format(', t.%I', a.attname), '' ORDER BY a.attnum), '')
    INTO copied, sources
    FROM pg_attribute AS a
    WHERE a.attrelid = TG_RELID AND a.attnum > 0 AND NOT a.attisdropped
      AND a.attgenerated = ''
      AND a.attname <> ALL (tasks_not_copied() || ARRAY['list_id', 'parent_id']::name[]);
    -- The previous occurrence's subtree, but for subtasks copied before (and what is below
    -- them): a copy that was moved elsewhere when its occurrence was deleted.
    -- $1 user, $2 previous occurrence, $3 list, $4 new occurrence, $5 shift.
    EXECUTE format($sql$
        WITH RECURSIVE source (id, depth) AS (
            SELECT t.id, 1 FROM tasks AS t
            WHERE t.user_id = $1 AND t.parent_id = $2
              AND NOT EXISTS (SELECT FROM tasks AS c WHERE c.previous_task_id = t.id)
            UNION ALL
            SELECT t.id, s.depth + 1 FROM tasks AS t JOIN source AS s ON t.parent_id = s.id
            WHERE t.user_id = $1 AND s.depth <= 3
              AND NOT EXISTS (SELECT FROM tasks AS c WHERE c.previous_task_id = t.id)
        ), fresh AS MATERIALIZED (
            SELECT s.id, s.depth, nextval(pg_get_serial_sequence('tasks', 'id')) AS new_id
            FROM source AS s
        )
        INSERT INTO tasks (
            id, user_id, due_date, reminders, list_id, parent_id, position, previous_task_id%s
        )
        OVERRIDING SYSTEM VALUE
        SELECT f.new_id, $1,
               CASE WHEN extract(year FROM (t.due_date + $5) AT TIME ZONE 'UTC')
                         BETWEEN 1900 AND 9998
                    THEN t.due_date + $5 END,
               task_reminders_shifted(t.reminders, $5),
               $3, coalesce(p.new_id, $4), t.position, t.id%s
        FROM fresh AS f
        JOIN tasks AS t ON t.id = f.id AND t.user_id = $1
        LEFT JOIN fresh AS p ON p.id = t.parent_id
        ORDER BY f.depth, t.position
        $sql$, copied, sources)
    USING NEW.user_id, NEW.previous_task_id, NEW.list_id, NEW.id, shift;
    RETURN NULL;
END
$$;
