DROP FUNCTION task_attachments_known(TEXT[]);
DROP FUNCTION task_attachments_used(TEXT);
DELETE FROM task_children WHERE name = 'task_attachments';
DROP TABLE task_attachments;
