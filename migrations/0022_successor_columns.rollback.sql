-- 0018's copy of the subtasks, with its own list of copied columns.
CREATE OR REPLACE FUNCTION tasks_copy_subtasks() RETURNS trigger
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
DROP FUNCTION tasks_not_copied();
