-- depends: 0029_sharing
-- Assignees (issue 39): who a task is for, as user ids on the task itself (read with it, no
-- join). Each is the task's owner or a member of its list, checked by the statement that
-- writes them (backend/services/task_statements.py `assignable`). A member removed from a
-- list (or whose account goes) is unassigned from that list's tasks, and only those, in the
-- same transaction: each such task's version moves on, so its ETag and the change feed say
-- so.
ALTER TABLE tasks
    ADD COLUMN assignees TEXT[] NOT NULL DEFAULT '{}',
    ADD CONSTRAINT ck_tasks_assignees_count CHECK (cardinality(assignees) <= 20);

CREATE FUNCTION list_members_unassign() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE tasks
    SET assignees = array_remove(assignees, OLD.member_id),
        version = version + 1,
        updated_at = now()
    WHERE user_id = OLD.user_id AND list_id = OLD.list_id AND OLD.member_id = ANY (assignees);
    RETURN NULL;
END
$$;
CREATE TRIGGER list_members_unassign AFTER DELETE ON list_members
    FOR EACH ROW EXECUTE FUNCTION list_members_unassign();
