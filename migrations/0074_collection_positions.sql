-- depends: 0068_trash_attachment_bytes
-- A CalDAV collection's own position (issue 70: `changes.collection_head`): its sync token
-- and getctag move only with its own changes. Each is a maximum read from the top of an
-- index: the caller's events in no list, and the moves out of a collection (an update whose
-- `changes` name the list it left), besides `ix_task_events_user_id_list_id_id` for a list's
-- own events. Without them a quiet collection's position walked every event of its space.
CREATE INDEX ix_task_events_user_id_no_list_id ON task_events (user_id, id)
    WHERE list_id IS NULL;
CREATE INDEX ix_task_events_user_id_left_list
    ON task_events (user_id, ((changes -> 'list_id') -> 0), id)
    WHERE changes ? 'list_id';
