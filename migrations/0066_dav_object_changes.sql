-- depends: 0065_task_attachments
-- A kept CalDAV object's changes in the change feed (issue 62; specs/caldav.md, "Sync"): a
-- `sync-collection` reports what changed in a collection since a position of the caller's
-- feed, so every change it must report has to be there. Two are not otherwise: a PUT whose
-- only difference is in what we do not model (an X- property: the kept object changes, the
-- task does not, yet its ETag does), and the name a client knew an object by once the object
-- is gone (the task trashed or purged, moved out of the list: a `404` must name the href the
-- client holds, and the object, with its name, is in the trash or in another list by then).
-- Each kept object added, changed (its bytes, name, UID or list) or removed records a
-- `dav_object.created`, `.updated` or `.deleted` event on its task, the row without its body
-- in `object`, in the task's owner's space under its change lock. Its list is the one the
-- object leaves when it moves (the old list's collection reports its name gone; the new
-- list's sees the task's own `updated`). Recorded as delivered: DAV's bookkeeping, not an
-- event for the sinks, the activity or the REST feed, which leave the type out
-- (backend/services/history/changes.py `DAV_EVENT`).
CREATE FUNCTION task_dav_objects_record_change() RETURNS trigger
LANGUAGE plpgsql SET TimeZone = 'UTC' AS $$
DECLARE
    v_row task_dav_objects;
    v_list BIGINT;
BEGIN
    IF TG_OP = 'DELETE' THEN
        v_row := OLD;
        v_list := OLD.list_id;
    ELSE
        v_row := NEW;
        v_list := NEW.list_id;
    END IF;
    IF TG_OP = 'UPDATE' THEN
        v_list := OLD.list_id;
    END IF;
    PERFORM task_events_lock(v_row.user_id);
    INSERT INTO task_events (user_id, task_id, list_id, type, object, actor_id, state,
                             delivered_at)
    VALUES (v_row.user_id, v_row.task_id, v_list,
            'dav_object.' || CASE TG_OP WHEN 'INSERT' THEN 'created' WHEN 'UPDATE' THEN 'updated'
                                        ELSE 'deleted' END,
            jsonb_build_object('id', v_row.id, 'task_id', v_row.task_id, 'list_id', v_row.list_id,
                               'uid', v_row.uid, 'name', v_row.name),
            task_api_actor(), 'delivered', clock_timestamp());
    RETURN NULL;
END
$$;

CREATE TRIGGER task_dav_objects_record_change AFTER INSERT OR DELETE ON task_dav_objects
    FOR EACH ROW EXECUTE FUNCTION task_dav_objects_record_change();
-- Only a change a reader can see (its bytes, name or UID) or a move: `updated_at` alone, or a
-- write of the same bytes again, records nothing.
CREATE TRIGGER task_dav_objects_record_change_on_update
    AFTER UPDATE OF body, name, uid, list_id ON task_dav_objects
    FOR EACH ROW WHEN (OLD.body IS DISTINCT FROM NEW.body OR OLD.name IS DISTINCT FROM NEW.name
                       OR OLD.uid IS DISTINCT FROM NEW.uid
                       OR OLD.list_id IS DISTINCT FROM NEW.list_id)
    EXECUTE FUNCTION task_dav_objects_record_change();
