-- 0033's state: every task's reminders its owner's (a member's rows are dropped).
CREATE OR REPLACE FUNCTION list_members_record_event() RETURNS trigger
LANGUAGE plpgsql SET TimeZone = 'UTC' AS $$
DECLARE
    actor TEXT := task_api_actor();
BEGIN
    IF TG_OP = 'UPDATE' THEN
        PERFORM task_events_lock(NEW.user_id);
        INSERT INTO task_events (user_id, list_id, type, object, actor_id, changes)
        VALUES (NEW.user_id, NEW.list_id, 'member.updated', to_jsonb(NEW), actor,
                jsonb_build_object('role', jsonb_build_array(OLD.role, NEW.role)));
        RETURN NEW;
    END IF;
    IF TG_OP = 'INSERT' THEN
        PERFORM task_events_lock(NEW.member_id);
        PERFORM task_events_lock(NEW.user_id);
        INSERT INTO task_events
            (user_id, task_id, list_id, type, task, state, delivered_at, actor_id)
        SELECT NEW.member_id, t.id, t.list_id, 'access.granted',
               to_jsonb(t) - 'subtask_count' - 'open_subtask_count',
               'delivered', clock_timestamp(), actor
        FROM tasks AS t
        WHERE t.user_id = NEW.user_id AND t.list_id = NEW.list_id;
        INSERT INTO task_events (user_id, list_id, type, object, actor_id)
        VALUES (NEW.user_id, NEW.list_id, 'member.added', to_jsonb(NEW), actor);
        RETURN NEW;
    END IF;
    -- The tombstones are written under the owner's lock only: a removal never waits for the
    -- member's lock (which the member's own write holds while it waits for the owner's: a
    -- lock-order deadlock). The feed's horizon counts them in the owner's space
    -- (`task_events_horizon`).
    PERFORM task_events_lock(OLD.user_id);
    -- No tombstones for a member that now owns the list (a transfer) or whose account is
    -- being deleted (its feed goes with it).
    IF NOT EXISTS (
        SELECT FROM task_lists AS l WHERE l.id = OLD.list_id AND l.user_id = OLD.member_id
    ) AND EXISTS (SELECT FROM users AS u WHERE u.id = OLD.member_id) THEN
        INSERT INTO task_events (user_id, task_id, list_id, type, state, delivered_at, actor_id)
        SELECT OLD.member_id, t.id, OLD.list_id, 'access.ended',
               'delivered', clock_timestamp(), actor
        FROM tasks AS t
        WHERE t.user_id = OLD.user_id AND t.list_id = OLD.list_id;
    END IF;
    INSERT INTO task_events (user_id, list_id, type, object, actor_id)
    VALUES (OLD.user_id, OLD.list_id, 'member.removed', to_jsonb(OLD), actor);
    RETURN OLD;
END
$$;

CREATE OR REPLACE FUNCTION task_events_record() RETURNS trigger
LANGUAGE plpgsql SET TimeZone = 'UTC' AS $$
DECLARE
    change TEXT;
    was JSONB;
    now_ JSONB;
    changed JSONB;
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM task_events_lock(OLD.user_id);
        INSERT INTO task_events (user_id, task_id, list_id, type, actor_id)
        VALUES (OLD.user_id, OLD.id, OLD.list_id, 'deleted',
                nullif(current_setting('task_api.actor', true), ''));
        RETURN OLD;
    END IF;
    IF TG_OP = 'UPDATE' AND NEW.version = OLD.version AND (
        NEW.subtask_count <> OLD.subtask_count OR NEW.open_subtask_count <> OLD.open_subtask_count
    ) THEN
        RETURN NULL;
    END IF;
    PERFORM task_events_lock(NEW.user_id);
    now_ := to_jsonb(NEW) - 'subtask_count' - 'open_subtask_count';
    IF TG_OP = 'INSERT' THEN
        change := 'created';
    ELSE
        IF NEW.completed AND NOT OLD.completed THEN
            change := 'completed';
        ELSIF OLD.completed AND NOT NEW.completed THEN
            change := 'reopened';
        ELSE
            change := 'updated';
        END IF;
        -- The fields whose value changed, old and new (the version and `updated_at` change
        -- with every update: they say nothing).
        was := to_jsonb(OLD);
        SELECT jsonb_object_agg(n.key, jsonb_build_array(was -> n.key, n.value)) INTO changed
        FROM jsonb_each(now_ - 'version' - 'updated_at') AS n
        WHERE n.value IS DISTINCT FROM was -> n.key;
    END IF;
    INSERT INTO task_events (user_id, task_id, list_id, type, task, actor_id, changes)
    VALUES (NEW.user_id, NEW.id, NEW.list_id, change, now_,
            nullif(current_setting('task_api.actor', true), ''), changed);
    RETURN NEW;
END
$$;

DROP TRIGGER task_lists_exchange_reminders ON task_lists;
DROP FUNCTION task_lists_exchange_reminders();
DROP TRIGGER list_members_forget_reminders ON list_members;
DROP FUNCTION list_members_forget_reminders();
DROP TRIGGER tasks_move_member_reminders ON tasks;
DROP FUNCTION tasks_move_member_reminders();
DROP TRIGGER tasks_successor_member_reminders ON tasks;
DROP FUNCTION tasks_successor_member_reminders();
DROP TRIGGER tasks_keep_member_reminders ON tasks;
DROP FUNCTION tasks_keep_member_reminders();
DROP TRIGGER tasks_schedule_member_reminders ON tasks;
DROP FUNCTION tasks_schedule_member_reminders();
DROP TABLE task_member_reminders;
DROP FUNCTION task_member_reminders_schedule();
DROP FUNCTION task_member_reminders_plan(BIGINT, TEXT);
DELETE FROM task_reminders WHERE recipient_id IS NOT NULL;
DROP INDEX ix_task_reminders_recipient_id;
ALTER TABLE task_reminders
    DROP CONSTRAINT uq_task_reminders_task_id_recipient_id_remind_at,
    ADD CONSTRAINT uq_task_reminders_task_id_remind_at UNIQUE (task_id, remind_at),
    DROP CONSTRAINT fk_task_reminders_recipient_id_users,
    DROP COLUMN recipient_id;
CREATE OR REPLACE FUNCTION task_reminders_schedule() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        DELETE FROM task_reminders WHERE task_id = NEW.id AND fired_at IS NULL;
    END IF;
    IF NOT NEW.completed THEN
        INSERT INTO task_reminders (task_id, user_id, remind_at)
        SELECT NEW.id, NEW.user_id, instant
        FROM (
            SELECT CASE
                WHEN reminder ? 'at' THEN (reminder ->> 'at')::timestamptz
                ELSE NEW.due_date
                    - make_interval(mins => (reminder ->> 'minutes_before_due')::int)
            END AS instant
            FROM jsonb_array_elements(NEW.reminders) AS reminder
        ) AS wanted
        WHERE instant > clock_timestamp()
        ON CONFLICT (task_id, remind_at) DO NOTHING;
    END IF;
    RETURN NULL;
END
$$;
