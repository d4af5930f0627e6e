-- depends: 0037_access_ends_on_move
-- A task that changes lists keeps only the assignees who may be assigned there (issue 39,
-- "Tasks": assignees are members of the task's list; a personal task's only one is its owner):
-- its owner, and the members of its new list. The rest are unassigned in the same row write
-- (BEFORE: the statement's answer, its event and its ETag show the result), as a removed
-- member is unassigned (0031). A PATCH that also sets `assignees` checks them against the new
-- list itself (assignees.py `assignable`); then this changes nothing.
CREATE FUNCTION tasks_unassign_on_move() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.assignees := ARRAY(
        SELECT a FROM unnest(NEW.assignees) WITH ORDINALITY AS kept (a, n)
        WHERE a = NEW.user_id OR EXISTS (
            SELECT FROM list_members AS m
            WHERE m.user_id = NEW.user_id AND m.list_id = NEW.list_id AND m.member_id = a
        )
        ORDER BY n
    );
    RETURN NEW;
END
$$;
-- Only a change of list of an assigned task: every other write skips it by the WHEN.
CREATE TRIGGER tasks_unassign_on_move BEFORE UPDATE OF list_id ON tasks
    FOR EACH ROW WHEN (
        OLD.list_id IS DISTINCT FROM NEW.list_id AND cardinality(NEW.assignees) > 0
    )
    EXECUTE FUNCTION tasks_unassign_on_move();
