-- depends: 0048_trash
-- A list that changes owner (a transfer, an account's handover) leaves its tasks' trash with the
-- former owner, in no list (specs/api-contract.md, "The trash"). The access predicate reaches a
-- trash row by its list and by its space separately, and no key ties `task_trash.list_id` to its
-- space as `tasks`'s does: a member of the list who is also a member of another of the former
-- owner's lists would still reach the row. In the owner change's own statement.
CREATE FUNCTION task_lists_trash_stays() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE task_trash SET list_id = NULL WHERE user_id = OLD.user_id AND list_id = OLD.id;
    RETURN NULL;
END
$$;
CREATE TRIGGER task_lists_trash_stays AFTER UPDATE OF user_id ON task_lists FOR EACH ROW
    WHEN (OLD.user_id IS DISTINCT FROM NEW.user_id)
    EXECUTE FUNCTION task_lists_trash_stays();
