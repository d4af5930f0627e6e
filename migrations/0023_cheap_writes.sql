-- depends: 0022_successor_columns
-- Cheap on the database (issue 31, item 3): what every write pays in PostgreSQL's CPU.
--
-- 1. The caller's entry counts a write with its own upsert, a statement of the PL/pgSQL
--    function whose plan the session keeps. Through `task_api_hit` (a SQL function with a
--    set of keys, kept for the other callers: a failed write's recount, sign-in) every
--    request planned the upsert afresh: about a seventh of a PATCH's CPU. Same rows, same
--    notice, same refusal; the expired windows are cleaned (one write in 500) by a statement
--    of their own before the upsert, sparing the key being hit, as 0014's CTE did.
-- 2. The row triggers on `tasks` that act on a few columns fire only for an UPDATE that sets
--    one of them (`UPDATE OF`): PostgreSQL then skips them before parsing and evaluating their
--    `WHEN`, so a PATCH of the title, priority, tags or description pays only for the change's
--    event. Nothing else writes those columns: `tasks` has no BEFORE UPDATE trigger that
--    changes a row (only `tasks_admit_write`, which skips it), and the keys' ON DELETE
--    actions are UPDATEs that name the column they set. The `WHEN`s are 0010's and 0018's,
--    and the names (the firing order) are unchanged.

CREATE OR REPLACE FUNCTION task_api_enter(
    p_subject TEXT, p_version INTEGER, p_local BOOLEAN, p_email TEXT, p_name TEXT,
    p_write BOOLEAN, p_limit_key TEXT, p_window INTEGER, p_limit INTEGER, p_clean BOOLEAN
) RETURNS void
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE AS $$
DECLARE
    started TIMESTAMPTZ;
    counted INTEGER;
    reset_in INTEGER;
    stored INTEGER;
BEGIN
    IF p_limit_key IS NOT NULL THEN
        IF p_clean THEN
            DELETE FROM rate_limits AS r
            WHERE r.window_end < clock_timestamp() AND r.key <> p_limit_key;
        END IF;
        started := date_bin(make_interval(secs => p_window), clock_timestamp(),
                            TIMESTAMPTZ '2000-01-01 00:00:00+00');
        INSERT INTO rate_limits AS r (key, window_start, window_end, hits)
        VALUES (p_limit_key, started, started + make_interval(secs => p_window), 1)
        ON CONFLICT (key) DO UPDATE SET
            hits = CASE WHEN r.window_start = EXCLUDED.window_start THEN r.hits + 1 ELSE 1 END,
            window_start = EXCLUDED.window_start,
            window_end = EXCLUDED.window_end
        RETURNING r.hits,
                  greatest(1, ceil(extract(epoch FROM r.window_end - clock_timestamp())))::integer
        INTO counted, reset_in;
        RAISE NOTICE 'task_api_rate_limit % %', counted, reset_in;
        IF counted > p_limit THEN
            PERFORM task_api_refuse('TA429');
            RETURN;
        END IF;
    END IF;
    SELECT u.token_version INTO stored FROM users AS u WHERE u.id = p_subject;
    IF NOT FOUND THEN
        IF p_local THEN
            PERFORM task_api_refuse('TA401', 'gone');
            RETURN;
        END IF;
        INSERT INTO users (id, email, name) VALUES (p_subject, p_email, p_name)
            ON CONFLICT DO NOTHING;
        IF NOT FOUND AND p_email IS NOT NULL THEN
            INSERT INTO users (id, email, name) VALUES (p_subject, NULL, p_name)
                ON CONFLICT DO NOTHING;
        END IF;
    ELSIF p_local AND stored IS DISTINCT FROM p_version THEN
        PERFORM task_api_refuse('TA401', 'revoked');
        RETURN;
    END IF;
    IF p_write THEN
        PERFORM task_events_lock(p_subject);
    END IF;
END
$$;

DROP TRIGGER tasks_schedule_reminders_on_update ON tasks;
CREATE TRIGGER tasks_schedule_reminders_on_update
    AFTER UPDATE OF due_date, reminders, completed ON tasks
    FOR EACH ROW WHEN (
        (NEW.reminders <> '[]'::jsonb OR OLD.reminders <> '[]'::jsonb)
        AND (
            NEW.due_date IS DISTINCT FROM OLD.due_date
            OR NEW.reminders IS DISTINCT FROM OLD.reminders
            OR NEW.completed IS DISTINCT FROM OLD.completed
        )
    )
    EXECUTE FUNCTION task_reminders_schedule();

DROP TRIGGER tasks_subtasks_complete ON tasks;
CREATE TRIGGER tasks_subtasks_complete AFTER UPDATE OF completed ON tasks
    FOR EACH ROW WHEN (NEW.completed AND NOT OLD.completed)
    EXECUTE FUNCTION tasks_complete_subtasks();

DROP TRIGGER tasks_reopen_parent_on_update ON tasks;
CREATE TRIGGER tasks_reopen_parent_on_update AFTER UPDATE OF completed, parent_id ON tasks
    FOR EACH ROW WHEN (
        NEW.parent_id IS NOT NULL AND NOT NEW.completed
        AND (OLD.completed OR OLD.parent_id IS DISTINCT FROM NEW.parent_id)
    )
    EXECUTE FUNCTION tasks_reopen_parent();

DROP TRIGGER tasks_check_tree_on_update ON tasks;
CREATE TRIGGER tasks_check_tree_on_update AFTER UPDATE OF parent_id, list_id ON tasks
    FOR EACH ROW WHEN (
        OLD.parent_id IS DISTINCT FROM NEW.parent_id OR OLD.list_id IS DISTINCT FROM NEW.list_id
    )
    EXECUTE FUNCTION tasks_check_tree();
