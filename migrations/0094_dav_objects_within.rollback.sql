ALTER TABLE task_dav_objects DROP COLUMN within;
