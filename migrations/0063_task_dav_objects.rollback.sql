-- Drops every kept CalDAV object (tasks are then served as no client wrote them).
DELETE FROM task_children WHERE name = 'task_dav_objects';
DROP TABLE task_dav_objects;
