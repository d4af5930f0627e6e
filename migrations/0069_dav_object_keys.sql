-- depends: 0068_trash_attachment_bytes
-- One object per collection and name, one per collection and UID (issue 70; specs/caldav.md,
-- "Objects"): unique keys, not a lookup before a write, so two clients creating one href or
-- one UID at once cannot both succeed. A collection is a list (`list_id`) or an owner's tasks
-- in no list (`user_id`, `list_id IS NULL`), always one owner's space.
--
-- A restore, or a move into a list, may bring an object whose name or UID another object of
-- the collection holds. The object there keeps them; the arriving one is kept but not served
-- (`served` false): its task is served as one no client wrote (`task-<id>@task-api.ics`) until
-- it is written again under a free name or moves. `task_dav_objects_serve` decides, under the
-- space's change lock (every writer of the space holds it, so its check sees every committed
-- holder), each time an object's collection, name or UID is set; a DAV PUT checks the same in
-- its own message before it writes, so nothing a client sends meets the keys as an error.
ALTER TABLE task_dav_objects ADD COLUMN served BOOLEAN NOT NULL DEFAULT true;

-- Where two objects held one name before (the newest was served under it), the older one is
-- not served; the same for a UID.
UPDATE task_dav_objects AS o SET served = false
WHERE EXISTS (
    SELECT FROM task_dav_objects AS n
    WHERE n.id > o.id AND (n.name = o.name OR n.uid = o.uid)
      AND (n.list_id = o.list_id
           OR (n.list_id IS NULL AND o.list_id IS NULL AND n.user_id = o.user_id))
);

CREATE UNIQUE INDEX uq_task_dav_objects_list_id_name ON task_dav_objects (list_id, name)
    WHERE served AND list_id IS NOT NULL;
CREATE UNIQUE INDEX uq_task_dav_objects_list_id_uid ON task_dav_objects (list_id, uid)
    WHERE served AND list_id IS NOT NULL;
CREATE UNIQUE INDEX uq_task_dav_objects_user_id_name ON task_dav_objects (user_id, name)
    WHERE served AND list_id IS NULL;
CREATE UNIQUE INDEX uq_task_dav_objects_user_id_uid ON task_dav_objects (user_id, uid)
    WHERE served AND list_id IS NULL;
-- The unique keys serve an href's lookup.
DROP INDEX ix_task_dav_objects_list_id_name;
DROP INDEX ix_task_dav_objects_user_id_name;

-- Whether an object arriving in a collection (inserted, moved, renamed, its UID changed) is
-- served: not when a served object of the collection holds its name or UID. Its statements
-- take fresh snapshots (a VOLATILE function's), after the space's lock.
CREATE FUNCTION task_dav_objects_serve() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.list_id IS NOT DISTINCT FROM OLD.list_id
       AND NEW.user_id = OLD.user_id AND NEW.name = OLD.name AND NEW.uid = OLD.uid THEN
        RETURN NEW;
    END IF;
    PERFORM task_events_lock(NEW.user_id);
    NEW.served := NOT EXISTS (
        SELECT FROM task_dav_objects AS o
        WHERE o.served AND o.id IS DISTINCT FROM NEW.id
          AND (o.name = NEW.name OR o.uid = NEW.uid)
          AND (o.list_id = NEW.list_id
               OR (NEW.list_id IS NULL AND o.list_id IS NULL AND o.user_id = NEW.user_id))
    );
    RETURN NEW;
END
$$;

-- After `task_dav_objects_admit_write` (BEFORE triggers fire in name order).
CREATE TRIGGER task_dav_objects_serve
    BEFORE INSERT OR UPDATE OF list_id, user_id, name, uid ON task_dav_objects
    FOR EACH ROW EXECUTE FUNCTION task_dav_objects_serve();
