-- Back to 0018's placement: `min(position)` over the list's top-level tasks.
CREATE OR REPLACE FUNCTION tasks_place() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    edge BIGINT;
BEGIN
    PERFORM task_events_lock(NEW.user_id);
    IF NEW.parent_id IS NOT NULL THEN
        SELECT max(position) INTO edge FROM tasks
        WHERE user_id = NEW.user_id AND parent_id = NEW.parent_id;
        NEW.position := coalesce(edge + 65536, 65536);
    ELSE
        IF NEW.list_id IS NULL THEN
            SELECT min(position) INTO edge FROM tasks
            WHERE user_id = NEW.user_id AND list_id IS NULL AND parent_id IS NULL;
        ELSE
            SELECT min(position) INTO edge FROM tasks
            WHERE user_id = NEW.user_id AND list_id = NEW.list_id AND parent_id IS NULL;
        END IF;
        NEW.position := coalesce(edge - 65536, 65536);
    END IF;
    RETURN NEW;
END
$$;
