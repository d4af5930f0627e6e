DROP TRIGGER task_dav_objects_serve ON task_dav_objects;
DROP FUNCTION task_dav_objects_serve();
CREATE INDEX ix_task_dav_objects_list_id_name ON task_dav_objects (list_id, name);
CREATE INDEX ix_task_dav_objects_user_id_name ON task_dav_objects (user_id, name)
    WHERE list_id IS NULL;
DROP INDEX uq_task_dav_objects_user_id_uid;
DROP INDEX uq_task_dav_objects_user_id_name;
DROP INDEX uq_task_dav_objects_list_id_uid;
DROP INDEX uq_task_dav_objects_list_id_name;
ALTER TABLE task_dav_objects DROP COLUMN served;
