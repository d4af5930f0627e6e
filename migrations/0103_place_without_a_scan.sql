-- depends: 0100_reminder_deliveries_dead
-- A new top-level task's place without reading its siblings (issue 83). `min(position)` over a
-- user's tasks of one list (or none) with `parent_id IS NULL` is not turned into a one-row
-- read of `uq_tasks_user_id_list_id_parent_id_position`: `IS NULL` makes no equivalence class,
-- so the planner cannot see that the index is in `position` order there, and it aggregates
-- every top-level task of the list (100 rows for the benchmark's caller, all of them for a
-- user of 10,000), planning a custom plan each call. Ordered by the index's own columns with
-- `LIMIT 1` it reads the first entry, on a plan kept for the connection. Same lock, same
-- place; a subtask's place (`max` over its parent's children, `ix_tasks_user_id_parent_id`)
-- is as before.
CREATE OR REPLACE FUNCTION tasks_place() RETURNS trigger
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
            SELECT t.position INTO edge FROM tasks AS t
            WHERE t.user_id = NEW.user_id AND t.list_id IS NULL AND t.parent_id IS NULL
            ORDER BY t.user_id, t.list_id, t.parent_id, t.position
            LIMIT 1;
        ELSE
            SELECT t.position INTO edge FROM tasks AS t
            WHERE t.user_id = NEW.user_id AND t.list_id = NEW.list_id AND t.parent_id IS NULL
            ORDER BY t.user_id, t.list_id, t.parent_id, t.position
            LIMIT 1;
        END IF;
        NEW.position := coalesce(edge - 65536, 65536);
    END IF;
    RETURN NEW;
END
$$;
