-- The kept objects' changes leave the feed (sync then misses a PUT that changed only what we
-- do not model, and names a gone object by its derived name only); the events recorded go
-- with them (the code before 0066 would serve them in the REST feed as a child's events).
DROP TRIGGER task_dav_objects_record_change_on_update ON task_dav_objects;
DROP TRIGGER task_dav_objects_record_change ON task_dav_objects;
DROP FUNCTION task_dav_objects_record_change();
DELETE FROM task_events WHERE type IN ('dav_object.created', 'dav_object.updated',
                                       'dav_object.deleted');
