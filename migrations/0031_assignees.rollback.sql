DROP TRIGGER list_members_unassign ON list_members;
DROP FUNCTION list_members_unassign();
ALTER TABLE tasks DROP CONSTRAINT ck_tasks_assignees_count, DROP COLUMN assignees;
