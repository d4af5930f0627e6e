-- 0029's state: the events, the entry and the outbox's columns as 0019-0028 made them.
DROP FUNCTION task_events_horizon();
DROP FUNCTION task_events_hold(TEXT);
DROP TRIGGER list_invitations_record_event ON list_invitations;
DROP FUNCTION list_invitations_record_event();
DROP TRIGGER task_comments_record_event_on_update ON task_comments;
DROP TRIGGER task_comments_record_event ON task_comments;
DROP FUNCTION task_comments_record_event();
DROP TRIGGER task_lists_end_memberships ON task_lists;
DROP FUNCTION task_lists_end_memberships();
DROP TRIGGER list_members_record_event_on_update ON list_members;
DROP TRIGGER list_members_record_event ON list_members;
DROP FUNCTION list_members_record_event();

CREATE OR REPLACE FUNCTION task_events_record() RETURNS trigger
LANGUAGE plpgsql SET TimeZone = 'UTC' AS $$
DECLARE
    change TEXT;
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM task_events_lock(OLD.user_id);
        INSERT INTO task_events (user_id, task_id, type) VALUES (OLD.user_id, OLD.id, 'deleted');
        RETURN OLD;
    END IF;
    IF TG_OP = 'UPDATE' AND NEW.version = OLD.version AND (
        NEW.subtask_count <> OLD.subtask_count OR NEW.open_subtask_count <> OLD.open_subtask_count
    ) THEN
        RETURN NULL;
    END IF;
    PERFORM task_events_lock(NEW.user_id);
    IF TG_OP = 'INSERT' THEN
        change := 'created';
    ELSIF NEW.completed AND NOT OLD.completed THEN
        change := 'completed';
    ELSIF OLD.completed AND NOT NEW.completed THEN
        change := 'reopened';
    ELSE
        change := 'updated';
    END IF;
    INSERT INTO task_events (user_id, task_id, type, task)
    VALUES (NEW.user_id, NEW.id, change, to_jsonb(NEW) - 'subtask_count' - 'open_subtask_count');
    RETURN NEW;
END
$$;


CREATE OR REPLACE FUNCTION task_lists_record_event() RETURNS trigger
LANGUAGE plpgsql SET TimeZone = 'UTC' AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM task_events_lock(OLD.user_id);
        INSERT INTO task_events (user_id, list_id, type)
        VALUES (OLD.user_id, OLD.id, 'list.deleted');
        RETURN OLD;
    END IF;
    PERFORM task_events_lock(NEW.user_id);
    INSERT INTO task_events (user_id, list_id, type, list)
    VALUES (
        NEW.user_id,
        NEW.id,
        CASE TG_OP WHEN 'INSERT' THEN 'list.created' ELSE 'list.updated' END,
        to_jsonb(NEW) - 'name_key'
    );
    RETURN NEW;
END
$$;

DROP FUNCTION task_api_actor();

DELETE FROM task_events WHERE type NOT IN (
    'created', 'updated', 'completed', 'reopened', 'deleted', 'reminder',
    'list.created', 'list.updated', 'list.deleted'
);
UPDATE task_events SET list_id = NULL WHERE task_id IS NOT NULL AND list_id IS NOT NULL;
DROP INDEX ix_task_events_user_id_list_id_id;
DROP INDEX ix_task_events_pending_list_id_id;
CREATE INDEX ix_task_events_pending_list_id_id ON task_events (list_id, id)
    WHERE state = 'pending' AND list_id IS NOT NULL;
ALTER TABLE task_events
    DROP CONSTRAINT ck_task_events_task_present,
    DROP CONSTRAINT ck_task_events_type,
    DROP COLUMN object,
    DROP COLUMN changes,
    DROP COLUMN actor_id,
    ADD CONSTRAINT ck_task_events_type CHECK (type IN (
        'created', 'updated', 'completed', 'reopened', 'deleted', 'reminder',
        'list.created', 'list.updated', 'list.deleted'
    )),
    ADD CONSTRAINT ck_task_events_task_present CHECK (
        CASE WHEN type LIKE 'list.%'
            THEN task_id IS NULL AND task IS NULL AND list_id IS NOT NULL
                AND (type = 'list.deleted') = (list IS NULL)
            ELSE task_id IS NOT NULL AND list_id IS NULL AND list IS NULL
                AND (type = 'deleted') = (task IS NULL)
        END
    );

CREATE OR REPLACE FUNCTION task_api_enter(
    p_subject TEXT, p_version INTEGER, p_local BOOLEAN, p_email TEXT, p_name TEXT,
    p_write BOOLEAN, p_limit_key TEXT, p_window INTEGER, p_limit INTEGER, p_clean BOOLEAN
) RETURNS void
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE AS $$
DECLARE
    started TIMESTAMPTZ;
    counted INTEGER;
    reset_in INTEGER;
    stored INTEGER;
BEGIN
    IF p_limit_key IS NOT NULL THEN
        IF p_clean THEN
            DELETE FROM rate_limits AS r
            WHERE r.window_end < clock_timestamp() AND r.key <> p_limit_key;
        END IF;
        started := date_bin(make_interval(secs => p_window), clock_timestamp(),
                            TIMESTAMPTZ '2000-01-01 00:00:00+00');
        INSERT INTO rate_limits AS r (key, window_start, window_end, hits)
        VALUES (p_limit_key, started, started + make_interval(secs => p_window), 1)
        ON CONFLICT (key) DO UPDATE SET
            hits = CASE WHEN r.window_start = EXCLUDED.window_start THEN r.hits + 1 ELSE 1 END,
            window_start = EXCLUDED.window_start,
            window_end = EXCLUDED.window_end
        RETURNING r.hits,
                  greatest(1, ceil(extract(epoch FROM r.window_end - clock_timestamp())))::integer
        INTO counted, reset_in;
        PERFORM set_config('task_api.hits', counted::text, true);
        PERFORM set_config('task_api.reset', reset_in::text, true);
        IF counted > p_limit THEN
            PERFORM task_api_refuse('TA429');
            RETURN;
        END IF;
    END IF;
    SELECT u.token_version INTO stored FROM users AS u WHERE u.id = p_subject;
    IF NOT FOUND THEN
        IF p_local THEN
            PERFORM task_api_refuse('TA401', 'gone');
            RETURN;
        END IF;
        INSERT INTO users (id, email, name) VALUES (p_subject, p_email, p_name)
            ON CONFLICT DO NOTHING;
        IF NOT FOUND AND p_email IS NOT NULL THEN
            INSERT INTO users (id, email, name) VALUES (p_subject, NULL, p_name)
                ON CONFLICT DO NOTHING;
        END IF;
    ELSIF p_local AND stored IS DISTINCT FROM p_version THEN
        PERFORM task_api_refuse('TA401', 'revoked');
        RETURN;
    END IF;
    IF p_write THEN
        PERFORM task_events_lock(p_subject);
    END IF;
END
$$;
