DROP TRIGGER tasks_keep_member_reminders ON tasks;
CREATE TRIGGER tasks_keep_member_reminders BEFORE INSERT OR UPDATE OF reminders ON tasks
    FOR EACH ROW
    WHEN (new.user_id <> coalesce(nullif(current_setting('task_api.actor', true), ''), new.user_id)
          AND pg_trigger_depth() = 0)
    EXECUTE FUNCTION tasks_keep_member_reminders();
DROP TRIGGER tasks_successor_member_reminders ON tasks;
CREATE TRIGGER tasks_successor_member_reminders AFTER INSERT ON tasks FOR EACH ROW
    WHEN (new.previous_task_id IS NOT NULL AND new.list_id IS NOT NULL)
    EXECUTE FUNCTION tasks_successor_member_reminders();
DROP TRIGGER tasks_successor_subtasks ON tasks;
CREATE TRIGGER tasks_successor_subtasks AFTER INSERT ON tasks FOR EACH ROW
    WHEN (new.previous_task_id IS NOT NULL AND new.parent_id IS NULL)
    EXECUTE FUNCTION tasks_copy_subtasks();
DROP FUNCTION task_trash_restore(BIGINT, TEXT, BIGINT, BIGINT, TEXT, INTEGER, INTEGER);
DROP FUNCTION task_trash_fit(BIGINT, TEXT, BIGINT, BIGINT, INTEGER, INTEGER);
DROP FUNCTION task_trash_snapshot(TEXT, BIGINT);
DROP TABLE task_trash;
