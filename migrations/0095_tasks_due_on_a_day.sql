-- depends: 0094_dav_objects_within
-- Tasks due on a day (issue 80; specs/api-contract.md, "Due on a day or at an instant"). A task
-- due on a day keeps `all_day` true and `due_date` at that day's start on its `time_zone`'s
-- clock, so sorting, `due_after`, the indexes and every shift of a due date keep working on
-- one instant. What a day changes is read from these functions, one definition each:
-- `task_due_end` (the day's end: overdue from it, `due_before` compares it),
-- `task_due_anchor` (09:00 of the day: what `minutes_before_due` counts back from), and
-- `task_due_moved` (a subtask's copy in a day series stays at a day's start, the shift between
-- two local midnights being 23 or 25 hours across a daylight-saving change).
-- Stored rows keep their instant: before this a plain date was stored as midnight UTC, which
-- stays that instant (`all_day` false); a client sends the day again to make it a day.
ALTER TABLE tasks
    ADD COLUMN all_day BOOLEAN NOT NULL DEFAULT false,
    ADD CONSTRAINT ck_tasks_all_day_due_date CHECK (NOT all_day OR due_date IS NOT NULL);

CREATE FUNCTION task_due_end(due_date TIMESTAMPTZ, all_day BOOLEAN, time_zone TEXT)
RETURNS TIMESTAMPTZ LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN all_day
        THEN ((due_date AT TIME ZONE time_zone)::date + 1)::timestamp AT TIME ZONE time_zone
        ELSE due_date END
$$;

CREATE FUNCTION task_due_anchor(due_date TIMESTAMPTZ, all_day BOOLEAN, time_zone TEXT)
RETURNS TIMESTAMPTZ LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN all_day
        THEN ((due_date AT TIME ZONE time_zone)::date + time '09:00') AT TIME ZONE time_zone
        ELSE due_date END
$$;

-- `due_date` moved by `shift`; a day's start moves to the start of the day nearest to it.
CREATE FUNCTION task_due_moved(
    due_date TIMESTAMPTZ, shift INTERVAL, all_day BOOLEAN, time_zone TEXT
) RETURNS TIMESTAMPTZ LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN all_day
        THEN date_trunc('day', (due_date + shift) AT TIME ZONE time_zone + interval '12 hours')
             AT TIME ZONE time_zone
        ELSE due_date + shift END
$$;

CREATE OR REPLACE FUNCTION tasks_not_copied() RETURNS name[]
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$
    SELECT ARRAY[
        'id', 'user_id',                         -- its own row, the caller's (same) owner
        'created_at', 'updated_at', 'version',   -- its own history
        'completed', 'completed_at',             -- it starts pending
        'due_date', 'all_day', 'next_due_date', 'reminders', -- moved by the schedule
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
            id, user_id, due_date, all_day, reminders, list_id, parent_id, position, previous_task_id%s
        )
        OVERRIDING SYSTEM VALUE
        SELECT f.new_id, $1,
               CASE WHEN extract(year FROM (t.due_date + $5) AT TIME ZONE 'UTC')
                         BETWEEN 1900 AND 9998
                    THEN task_due_moved(t.due_date, $5, t.all_day, t.time_zone) END,
               t.all_day AND extract(year FROM (t.due_date + $5) AT TIME ZONE 'UTC')
                             BETWEEN 1900 AND 9998,
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
                ELSE task_due_anchor(NEW.due_date, NEW.all_day, NEW.time_zone)
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
            ELSE task_due_anchor(t.due_date, t.all_day, t.time_zone)
                - make_interval(mins => (reminder ->> 'minutes_before_due')::int)
        END AS instant
        FROM jsonb_array_elements(m.reminders) AS reminder
    ) AS w
    WHERE t.id = p_task AND NOT t.completed AND w.instant > clock_timestamp()
      AND (p_member IS NULL OR m.member_id = p_member)
    ON CONFLICT (task_id, recipient_id, remind_at) DO NOTHING;
END
$$;
