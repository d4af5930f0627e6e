-- The entry as 0020 made it (through task_api_hit), and 0010's and 0018's triggers without
-- their column lists.
-- count stands and is sent as before), or a built-in token whose account is gone or whose
-- version was revoked (TA401 gone / revoked). A refused request takes no change lock.
CREATE OR REPLACE FUNCTION task_api_enter(
    p_subject TEXT, p_version INTEGER, p_local BOOLEAN, p_email TEXT, p_name TEXT,
    p_write BOOLEAN, p_limit_key TEXT, p_window INTEGER, p_limit INTEGER, p_clean BOOLEAN
) RETURNS void
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE AS $$
DECLARE
    counted RECORD;
    stored INTEGER;
BEGIN
    IF p_limit_key IS NOT NULL THEN
        SELECT * INTO counted FROM task_api_hit(ARRAY[p_limit_key], ARRAY[p_window], p_clean);
        RAISE NOTICE 'task_api_rate_limit % %', counted.hits, counted.reset_seconds;
        IF counted.hits > p_limit THEN
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
CREATE TRIGGER tasks_schedule_reminders_on_update AFTER UPDATE ON tasks
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
CREATE TRIGGER tasks_subtasks_complete AFTER UPDATE ON tasks
    FOR EACH ROW WHEN (NEW.completed AND NOT OLD.completed)
    EXECUTE FUNCTION tasks_complete_subtasks();

DROP TRIGGER tasks_reopen_parent_on_update ON tasks;
CREATE TRIGGER tasks_reopen_parent_on_update AFTER UPDATE ON tasks
    FOR EACH ROW WHEN (
        NEW.parent_id IS NOT NULL AND NOT NEW.completed
        AND (OLD.completed OR OLD.parent_id IS DISTINCT FROM NEW.parent_id)
    )
    EXECUTE FUNCTION tasks_reopen_parent();

DROP TRIGGER tasks_check_tree_on_update ON tasks;
CREATE TRIGGER tasks_check_tree_on_update AFTER UPDATE ON tasks
    FOR EACH ROW WHEN (
        OLD.parent_id IS DISTINCT FROM NEW.parent_id OR OLD.list_id IS DISTINCT FROM NEW.list_id
    )
    EXECUTE FUNCTION tasks_check_tree();
