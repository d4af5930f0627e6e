-- 0030's comment events, by hand; no other child records any.
DROP TRIGGER task_comments_record_event ON task_comments;
DROP TRIGGER task_comments_record_event_on_update ON task_comments;
DROP PROCEDURE task_children_register(TEXT, TEXT, TEXT[]);
DROP FUNCTION task_children_record_event();
CREATE FUNCTION task_comments_record_event() RETURNS trigger
LANGUAGE plpgsql SET TimeZone = 'UTC' AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM task_events_lock(OLD.user_id);
        INSERT INTO task_events (user_id, task_id, list_id, type, object, actor_id)
        VALUES (OLD.user_id, OLD.task_id, OLD.list_id, 'comment.deleted', to_jsonb(OLD),
                task_api_actor());
        RETURN OLD;
    END IF;
    PERFORM task_events_lock(NEW.user_id);
    INSERT INTO task_events (user_id, task_id, list_id, type, object, actor_id, changes)
    VALUES (NEW.user_id, NEW.task_id, NEW.list_id,
            CASE TG_OP WHEN 'INSERT' THEN 'comment.created' ELSE 'comment.updated' END,
            to_jsonb(NEW), task_api_actor(),
            CASE TG_OP WHEN 'UPDATE'
                THEN jsonb_build_object('body', jsonb_build_array(OLD.body, NEW.body)) END);
    RETURN NEW;
END
$$;
CREATE TRIGGER task_comments_record_event AFTER INSERT OR DELETE ON task_comments
    FOR EACH ROW EXECUTE FUNCTION task_comments_record_event();
CREATE TRIGGER task_comments_record_event_on_update AFTER UPDATE OF body ON task_comments
    FOR EACH ROW WHEN (OLD.body IS DISTINCT FROM NEW.body)
    EXECUTE FUNCTION task_comments_record_event();
-- Events of children other than comments are dropped: 0030's constraints know no other.
DELETE FROM task_events WHERE type NOT IN (
    'created', 'updated', 'completed', 'reopened', 'deleted', 'reminder',
    'list.created', 'list.updated', 'list.deleted',
    'member.added', 'member.updated', 'member.removed',
    'comment.created', 'comment.updated', 'comment.deleted',
    'invitation.created', 'invitation.revoked', 'invitation.accepted',
    'access.granted', 'access.ended'
);
UPDATE task_events SET task = NULL WHERE type LIKE 'comment.%' AND task IS NOT NULL;
ALTER TABLE task_events
    DROP CONSTRAINT ck_task_events_type,
    DROP CONSTRAINT ck_task_events_task_present,
    ADD CONSTRAINT ck_task_events_type CHECK (type IN (
        'created', 'updated', 'completed', 'reopened', 'deleted', 'reminder',
        'list.created', 'list.updated', 'list.deleted',
        'member.added', 'member.updated', 'member.removed',
        'comment.created', 'comment.updated', 'comment.deleted',
        'invitation.created', 'invitation.revoked', 'invitation.accepted',
        'access.granted', 'access.ended'
    )),
    ADD CONSTRAINT ck_task_events_task_present CHECK (
        CASE
            WHEN type IN ('created', 'updated', 'completed', 'reopened', 'deleted')
                THEN task_id IS NOT NULL AND list IS NULL AND object IS NULL
                    AND (type = 'deleted') = (task IS NULL)
            WHEN type = 'reminder'
                THEN task_id IS NOT NULL AND task IS NOT NULL AND list_id IS NULL
                    AND list IS NULL AND object IS NULL
            WHEN type LIKE 'list.%'
                THEN task_id IS NULL AND task IS NULL AND object IS NULL
                    AND list_id IS NOT NULL AND (type = 'list.deleted') = (list IS NULL)
            WHEN type LIKE 'member.%' OR type LIKE 'invitation.%'
                THEN task_id IS NULL AND task IS NULL AND list IS NULL
                    AND list_id IS NOT NULL AND object IS NOT NULL
            WHEN type LIKE 'comment.%'
                THEN task_id IS NOT NULL AND task IS NULL AND list IS NULL
                    AND object IS NOT NULL
            ELSE task_id IS NOT NULL AND list_id IS NOT NULL AND list IS NULL
                AND object IS NULL AND (type = 'access.ended') = (task IS NULL)
        END
    );
ALTER TABLE task_children DROP COLUMN edits, DROP COLUMN noun;
