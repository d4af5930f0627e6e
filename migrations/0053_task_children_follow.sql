-- depends: 0052_task_children
-- A task's children keep their task's list (issue 60; specs/data-model.md, "A task's
-- children"): every declared child with a copy of it (`list_id`, which the access predicate
-- reads on the child's own row and index) follows its task to another list, by the registry,
-- where `tasks_move_comments` named comments alone. A new child needs no trigger of its own.
CREATE FUNCTION task_children_follow_task() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_table TEXT;
BEGIN
    FOR v_table IN
        SELECT c.name FROM task_children c
        JOIN pg_attribute a ON a.attrelid = c.name::regclass AND a.attname = 'list_id'
                           AND NOT a.attisdropped
        ORDER BY c.name
    LOOP
        EXECUTE format('UPDATE %I SET list_id = $1 WHERE user_id = $2 AND task_id = $3', v_table)
            USING NEW.list_id, NEW.user_id, NEW.id;
    END LOOP;
    RETURN NULL;
END
$$;
DROP TRIGGER tasks_move_comments ON tasks;
DROP FUNCTION task_comments_follow_task();
CREATE TRIGGER tasks_move_children AFTER UPDATE OF list_id ON tasks
    FOR EACH ROW WHEN (OLD.list_id IS DISTINCT FROM NEW.list_id)
    EXECUTE FUNCTION task_children_follow_task();
