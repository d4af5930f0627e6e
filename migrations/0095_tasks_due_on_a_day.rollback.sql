-- Back to due dates that are instants only (0094): the functions as they were, then the column.
CREATE OR REPLACE FUNCTION tasks_not_copied() RETURNS name[]
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$
    SELECT ARRAY[
        'id', 'user_id',                         -- its own row, the caller's (same) owner
        'created_at', 'updated_at', 'version',   -- its own history
        'completed', 'completed_at',             -- it starts pending
        'due_date', 'next_due_date', 'reminders', -- moved by the schedule
        'previous_task_id',                      -- names the occurrence it continues
        'position',                              -- placed where it goes
        'subtask_count', 'open_subtask_count'    -- its own subtasks count themselves in
    ]::name[]
$$;

CREATE OR REPLACE FUNCTION tasks_copy_subtasks() RETURNS trigger
    LANGUAGE plpgsql
    SET "TimeZone" TO 'UTC'
    AS $_$
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
$_$;

CREATE OR REPLACE FUNCTION task_reminders_schedule() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        DELETE FROM task_reminders
        WHERE task_id = NEW.id AND recipient_id IS NULL AND fired_at IS NULL;
    END IF;
    IF NOT NEW.completed THEN
        INSERT INTO task_reminders (task_id, user_id, remind_at)
        SELECT NEW.id, NEW.user_id, instant
        FROM (
            SELECT CASE
                WHEN reminder ? 'at' THEN (reminder ->> 'at')::timestamptz
                ELSE NEW.due_date
                    - make_interval(mins => (reminder ->> 'minutes_before_due')::int)
            END AS instant
            FROM jsonb_array_elements(NEW.reminders) AS reminder
        ) AS wanted
        WHERE instant > clock_timestamp()
        ON CONFLICT (task_id, recipient_id, remind_at) DO NOTHING;
    END IF;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION task_member_reminders_plan(p_task bigint, p_member text) RETURNS void
    LANGUAGE plpgsql
    AS $$
BEGIN
    DELETE FROM task_reminders AS s
    WHERE s.task_id = p_task AND s.fired_at IS NULL AND s.recipient_id IS NOT NULL
      AND (p_member IS NULL OR s.recipient_id = p_member);
    INSERT INTO task_reminders (task_id, user_id, recipient_id, remind_at)
    SELECT t.id, t.user_id, m.member_id, w.instant
    FROM tasks AS t
    JOIN task_member_reminders AS m ON m.user_id = t.user_id AND m.task_id = t.id
    CROSS JOIN LATERAL (
        SELECT CASE
            WHEN reminder ? 'at' THEN (reminder ->> 'at')::timestamptz
            ELSE t.due_date - make_interval(mins => (reminder ->> 'minutes_before_due')::int)
        END AS instant
        FROM jsonb_array_elements(m.reminders) AS reminder
    ) AS w
    WHERE t.id = p_task AND NOT t.completed AND w.instant > clock_timestamp()
      AND (p_member IS NULL OR m.member_id = p_member)
    ON CONFLICT (task_id, recipient_id, remind_at) DO NOTHING;
END
$$;

DROP FUNCTION task_due_moved(TIMESTAMPTZ, INTERVAL, BOOLEAN, TEXT);
DROP FUNCTION task_due_anchor(TIMESTAMPTZ, BOOLEAN, TEXT);
DROP FUNCTION task_due_end(TIMESTAMPTZ, BOOLEAN, TEXT);
ALTER TABLE tasks DROP COLUMN all_day;
