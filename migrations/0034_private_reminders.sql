-- depends: 0033_space_locks
-- Reminders private to the user who set them (issue 39; specs/data-model.md, "Sharing"). A
-- task's `reminders` are its owner's (the list owner's, for a shared list's task); a member's
-- own are a row of `task_member_reminders`, in the owner's space like every row of the list.
-- The task's `reminders` as a caller reads them is its own (`TASK_VIEW`,
-- backend/services/tasks/task_statements.py).
--
-- 1. A member's write of `reminders` (create, PATCH, PUT, a series' next occurrence: any
--    statement the request sends, `task_api.actor` not the task's owner) writes the member's
--    row instead and leaves the owner's as they were (`tasks_keep_member_reminders`). A
--    statement sent by a trigger (a series' copied subtasks, a transfer) is not the member's.
-- 2. `task_reminders.recipient_id` is who a reminder is for (NULL: the task's owner, so a
--    transfer's cascade moves the owner's to the new owner); the unique key is per recipient.
--    A member's row is scheduled at the commit (its key to the task is deferred: a member's
--    new task has its row before the task exists) and again when the task's due date or
--    completion changes.
-- 3. A member's rows go when it loses the list (removed, leaving, an account's deletion; not
--    when it became the owner), and when the task leaves the list.
-- 4. A transfer (or an account's handover, 0032) makes the old owner's reminders its member
--    row and the new owner's row the task's own, before the list's rows follow the new owner:
--    neither ever reads the other's. That exchange changes no version and records no event.
-- 5. A series' next occurrence (and its copied subtasks) carries each member's reminders,
--    an `at` moved as far as the due date moved.
-- 6. `access.granted` records the task with the new member's reminders, not the owner's.

CREATE TABLE task_member_reminders (
    user_id    TEXT   NOT NULL,
    task_id    BIGINT NOT NULL,
    member_id  TEXT   NOT NULL,
    reminders  JSONB  NOT NULL,
    CONSTRAINT pk_task_member_reminders PRIMARY KEY (user_id, task_id, member_id),
    CONSTRAINT fk_task_member_reminders_user_id_task_id_tasks FOREIGN KEY (user_id, task_id)
        REFERENCES tasks (user_id, id) ON UPDATE CASCADE ON DELETE CASCADE
        DEFERRABLE INITIALLY DEFERRED,
    CONSTRAINT fk_task_member_reminders_member_id_users FOREIGN KEY (member_id)
        REFERENCES users (id) ON DELETE CASCADE,
    -- An empty list is no row.
    CONSTRAINT ck_task_member_reminders_array CHECK (
        CASE WHEN jsonb_typeof(reminders) = 'array'
            THEN jsonb_array_length(reminders) BETWEEN 1 AND 5
            ELSE false END
    )
);
-- An account's rows, for its key's cascade.
CREATE INDEX ix_task_member_reminders_member_id ON task_member_reminders (member_id);
CREATE TRIGGER task_member_reminders_admit_write
    BEFORE INSERT OR UPDATE OR DELETE ON task_member_reminders
    FOR EACH ROW WHEN (current_setting('task_api.refused', true) <> '')
    EXECUTE FUNCTION task_api_skip_refused_write();

ALTER TABLE task_reminders
    ADD COLUMN recipient_id TEXT,
    ADD CONSTRAINT fk_task_reminders_recipient_id_users FOREIGN KEY (recipient_id)
        REFERENCES users (id) ON DELETE CASCADE,
    DROP CONSTRAINT uq_task_reminders_task_id_remind_at,
    ADD CONSTRAINT uq_task_reminders_task_id_recipient_id_remind_at
        UNIQUE NULLS NOT DISTINCT (task_id, recipient_id, remind_at);
CREATE INDEX ix_task_reminders_recipient_id ON task_reminders (recipient_id)
    WHERE recipient_id IS NOT NULL;

-- 0010's schedule of the owner's reminders, which are the rows without a recipient.
CREATE OR REPLACE FUNCTION task_reminders_schedule() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        DELETE FROM task_reminders
        WHERE task_id = NEW.id AND recipient_id IS NULL AND fired_at IS NULL;
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
        ON CONFLICT (task_id, recipient_id, remind_at) DO NOTHING;
    END IF;
    RETURN NULL;
END
$$;

-- The members' reminders of task `p_task` (one member's, or with NULL every member's),
-- scheduled from the task and the rows as they are now.
CREATE FUNCTION task_member_reminders_plan(p_task BIGINT, p_member TEXT) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM task_reminders AS s
    WHERE s.task_id = p_task AND s.fired_at IS NULL AND s.recipient_id IS NOT NULL
      AND (p_member IS NULL OR s.recipient_id = p_member);
    INSERT INTO task_reminders (task_id, user_id, recipient_id, remind_at)
    SELECT t.id, t.user_id, m.member_id, w.instant
    FROM tasks AS t
    JOIN task_member_reminders AS m ON m.user_id = t.user_id AND m.task_id = t.id
    CROSS JOIN LATERAL (
        SELECT CASE
            WHEN reminder ? 'at' THEN (reminder ->> 'at')::timestamptz
            ELSE t.due_date - make_interval(mins => (reminder ->> 'minutes_before_due')::int)
        END AS instant
        FROM jsonb_array_elements(m.reminders) AS reminder
    ) AS w
    WHERE t.id = p_task AND NOT t.completed AND w.instant > clock_timestamp()
      AND (p_member IS NULL OR m.member_id = p_member)
    ON CONFLICT (task_id, recipient_id, remind_at) DO NOTHING;
END
$$;

-- A member's row changed: its schedule, at the commit (the task exists by then).
CREATE FUNCTION task_member_reminders_schedule() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM task_member_reminders_plan(OLD.task_id, OLD.member_id);
    ELSE
        PERFORM task_member_reminders_plan(NEW.task_id, NEW.member_id);
    END IF;
    RETURN NULL;
END
$$;
CREATE CONSTRAINT TRIGGER task_member_reminders_schedule
    AFTER INSERT OR DELETE ON task_member_reminders
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION task_member_reminders_schedule();
CREATE CONSTRAINT TRIGGER task_member_reminders_schedule_on_update
    AFTER UPDATE OF reminders ON task_member_reminders
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW WHEN (OLD.reminders IS DISTINCT FROM NEW.reminders)
    EXECUTE FUNCTION task_member_reminders_schedule();

-- The task's due date or completion changed: its members' reminders move with it. Only a
-- task in a list can have any.
CREATE FUNCTION tasks_schedule_member_reminders() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM task_member_reminders_plan(NEW.id, NULL);
    RETURN NULL;
END
$$;
CREATE TRIGGER tasks_schedule_member_reminders
    AFTER UPDATE OF due_date, completed ON tasks
    FOR EACH ROW WHEN (
        NEW.list_id IS NOT NULL AND (
            NEW.due_date IS DISTINCT FROM OLD.due_date
            OR NEW.completed IS DISTINCT FROM OLD.completed
        )
    )
    EXECUTE FUNCTION tasks_schedule_member_reminders();

-- A member's write of `reminders` is its own (1.). `pg_trigger_depth() = 0`: the request's
-- statement, not one a trigger sends.
CREATE FUNCTION tasks_keep_member_reminders() RETURNS trigger
LANGUAGE plpgsql SET TimeZone = 'UTC' AS $$
DECLARE
    v_member TEXT := current_setting('task_api.actor', true);
BEGIN
    IF NEW.reminders = '[]'::jsonb THEN
        DELETE FROM task_member_reminders AS r
        WHERE r.user_id = NEW.user_id AND r.task_id = NEW.id AND r.member_id = v_member;
    ELSE
        INSERT INTO task_member_reminders (user_id, task_id, member_id, reminders)
        VALUES (NEW.user_id, NEW.id, v_member, NEW.reminders)
        ON CONFLICT (user_id, task_id, member_id) DO UPDATE SET reminders = EXCLUDED.reminders;
    END IF;
    IF TG_OP = 'UPDATE' THEN
        NEW.reminders := OLD.reminders;
    ELSIF NEW.previous_task_id IS NOT NULL THEN
        -- A series' next occurrence, completed by a member: the owner's reminders moved.
        NEW.reminders := coalesce((
            SELECT task_reminders_shifted(p.reminders, NEW.due_date - p.due_date)
            FROM tasks AS p WHERE p.user_id = NEW.user_id AND p.id = NEW.previous_task_id
        ), '[]'::jsonb);
    ELSE
        NEW.reminders := '[]'::jsonb;
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER tasks_keep_member_reminders BEFORE INSERT OR UPDATE OF reminders ON tasks
    FOR EACH ROW WHEN (
        NEW.user_id <> coalesce(nullif(current_setting('task_api.actor', true), ''), NEW.user_id)
        AND pg_trigger_depth() = 0
    )
    EXECUTE FUNCTION tasks_keep_member_reminders();

-- A series' next occurrence, and each subtask copied with it, carries the members' reminders
-- of the task it follows (5.).
CREATE FUNCTION tasks_successor_member_reminders() RETURNS trigger
LANGUAGE plpgsql SET TimeZone = 'UTC' AS $$
BEGIN
    INSERT INTO task_member_reminders (user_id, task_id, member_id, reminders)
    SELECT NEW.user_id, NEW.id, r.member_id, moved.reminders
    FROM task_member_reminders AS r
    JOIN tasks AS p ON p.user_id = r.user_id AND p.id = r.task_id
    CROSS JOIN LATERAL (
        SELECT task_reminders_shifted(r.reminders, NEW.due_date - p.due_date) AS reminders
    ) AS moved
    WHERE r.user_id = NEW.user_id AND r.task_id = NEW.previous_task_id
      AND moved.reminders <> '[]'::jsonb
    ON CONFLICT (user_id, task_id, member_id) DO NOTHING;
    RETURN NULL;
END
$$;
CREATE TRIGGER tasks_successor_member_reminders AFTER INSERT ON tasks
    FOR EACH ROW WHEN (NEW.previous_task_id IS NOT NULL AND NEW.list_id IS NOT NULL)
    EXECUTE FUNCTION tasks_successor_member_reminders();

-- A task that leaves a list keeps only the reminders of members of the list it is in now.
CREATE FUNCTION tasks_move_member_reminders() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM task_member_reminders AS r
    WHERE r.user_id = NEW.user_id AND r.task_id = NEW.id AND NOT EXISTS (
        SELECT FROM list_members AS m
        WHERE m.list_id = NEW.list_id AND m.member_id = r.member_id
    );
    RETURN NULL;
END
$$;
CREATE TRIGGER tasks_move_member_reminders AFTER UPDATE OF list_id ON tasks
    FOR EACH ROW WHEN (OLD.list_id IS NOT NULL AND OLD.list_id IS DISTINCT FROM NEW.list_id)
    EXECUTE FUNCTION tasks_move_member_reminders();

-- A member that loses a list loses its reminders on the list's tasks, at the commit (as
-- 0031 unassigns it): not when it became the list's owner (a transfer, a handover) or is back.
CREATE FUNCTION list_members_forget_reminders() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_owner TEXT;
BEGIN
    SELECT user_id INTO v_owner FROM task_lists WHERE id = OLD.list_id;
    IF v_owner IS NULL OR v_owner = OLD.member_id OR EXISTS (
        SELECT FROM list_members WHERE list_id = OLD.list_id AND member_id = OLD.member_id
    ) THEN
        RETURN NULL;
    END IF;
    DELETE FROM task_member_reminders AS r
    USING tasks AS t
    WHERE t.user_id = v_owner AND t.list_id = OLD.list_id
      AND r.user_id = t.user_id AND r.task_id = t.id AND r.member_id = OLD.member_id;
    RETURN NULL;
END
$$;
CREATE CONSTRAINT TRIGGER list_members_forget_reminders AFTER DELETE ON list_members
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION list_members_forget_reminders();

-- A list changing owner (4.), before its rows follow the new owner: the old owner's
-- reminders become its member row, the new owner's row the task's own. BEFORE, so the
-- cascade's change events record each task with the new owner's reminders.
CREATE FUNCTION task_lists_exchange_reminders() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO task_member_reminders (user_id, task_id, member_id, reminders)
    SELECT t.user_id, t.id, OLD.user_id, t.reminders
    FROM tasks AS t
    WHERE t.user_id = OLD.user_id AND t.list_id = OLD.id AND t.reminders <> '[]'::jsonb
    ON CONFLICT (user_id, task_id, member_id) DO UPDATE SET reminders = EXCLUDED.reminders;
    WITH theirs AS (
        DELETE FROM task_member_reminders AS r
        USING tasks AS t
        WHERE t.user_id = OLD.user_id AND t.list_id = OLD.id
          AND r.user_id = t.user_id AND r.task_id = t.id AND r.member_id = NEW.user_id
        RETURNING r.task_id, r.reminders
    )
    UPDATE tasks AS t
    SET reminders = coalesce(theirs.reminders, '[]'::jsonb)
    FROM tasks AS s LEFT JOIN theirs ON theirs.task_id = s.id
    WHERE s.user_id = OLD.user_id AND s.list_id = OLD.id
      AND (s.reminders <> '[]'::jsonb OR theirs.task_id IS NOT NULL)
      AND t.user_id = s.user_id AND t.id = s.id;
    RETURN NEW;
END
$$;
CREATE TRIGGER task_lists_exchange_reminders BEFORE UPDATE OF user_id ON task_lists
    FOR EACH ROW WHEN (OLD.user_id IS DISTINCT FROM NEW.user_id)
    EXECUTE FUNCTION task_lists_exchange_reminders();

-- 0030's event, recording no change for that exchange.
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
    -- Counts the database keeps, and a transfer's exchange of the old and the new owner's
    -- reminders (no version change): no change of the task to record.
    IF TG_OP = 'UPDATE' AND NEW.version = OLD.version AND (
        NEW.subtask_count <> OLD.subtask_count OR NEW.open_subtask_count <> OLD.open_subtask_count
        OR NEW.reminders IS DISTINCT FROM OLD.reminders
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

-- 0030's membership events: the new member's `access.granted` task holds its own reminders (6.).
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
               jsonb_set(to_jsonb(t) - 'subtask_count' - 'open_subtask_count', '{reminders}',
                         coalesce((SELECT r.reminders FROM task_member_reminders AS r
                                   WHERE r.user_id = t.user_id AND r.task_id = t.id
                                     AND r.member_id = NEW.member_id), '[]'::jsonb)),
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
