-- depends: 0030_activity
-- Assignees (issue 39): who a task is for, as user ids on the task itself (read with it, no
-- join). Each is the task's owner or a member of its list, checked by the statement that
-- writes them (backend/services/statements/assignees.py `assignable`). A member removed from a list (or
-- whose account goes) is unassigned from that list's tasks, and only those, in the same
-- transaction: each such task's version moves on, so its ETag and the change feed say so.
-- The check runs when the transaction commits (a deferred constraint trigger), so a member
-- whose row goes because it became the list's owner (a transfer, an account's handover) keeps
-- its assignments.
ALTER TABLE tasks
    ADD COLUMN assignees TEXT[] NOT NULL DEFAULT '{}',
    ADD CONSTRAINT ck_tasks_assignees_count CHECK (cardinality(assignees) <= 20);

CREATE FUNCTION list_members_unassign() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_owner TEXT;
BEGIN
    SELECT user_id INTO v_owner FROM task_lists WHERE id = OLD.list_id;
    IF v_owner IS NULL OR v_owner = OLD.member_id OR EXISTS (
        SELECT FROM list_members WHERE list_id = OLD.list_id AND member_id = OLD.member_id
    ) THEN
        RETURN NULL;  -- the list is gone, or the member owns it now or is back
    END IF;
    UPDATE tasks
    SET assignees = array_remove(assignees, OLD.member_id),
        version = version + 1,
        updated_at = now()
    WHERE user_id = v_owner AND list_id = OLD.list_id AND OLD.member_id = ANY (assignees);
    RETURN NULL;
END
$$;
CREATE CONSTRAINT TRIGGER list_members_unassign AFTER DELETE ON list_members
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION list_members_unassign();
