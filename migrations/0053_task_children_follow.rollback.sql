-- 0029's trigger, comments alone.
DROP TRIGGER tasks_move_children ON tasks;
DROP FUNCTION task_children_follow_task();
CREATE FUNCTION task_comments_follow_task() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE task_comments SET list_id = NEW.list_id WHERE task_id = NEW.id;
    RETURN NULL;
END
$$;
CREATE TRIGGER tasks_move_comments AFTER UPDATE OF list_id ON tasks
    FOR EACH ROW WHEN (OLD.list_id IS DISTINCT FROM NEW.list_id)
    EXECUTE FUNCTION task_comments_follow_task();
