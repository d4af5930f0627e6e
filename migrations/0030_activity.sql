-- depends: 0029_sharing
-- Activity (issue 39; specs/events.md, "Who and what changed", "Shared lists"): one record of
-- what happened, `task_events`, read by the change feed, the activity routes and the worker.
--
-- 1. Every event says who made it (`actor_id`: the request's caller, which the entry keeps in
--    the transaction-local `task_api.actor`; NULL for the worker, the CLI and psql) and, for
--    an update, what changed (`changes`: `{field: [old, new]}`, computed in the UPDATE path
--    only, one jsonb expression over the two rows the trigger already has).
-- 2. A task's change carries its list (`list_id`, the access predicate's column: a member of
--    the list reaches the change as it reaches the task).
-- 3. Memberships, comments and invitations record events (`member.*`, `comment.*`,
--    `invitation.*`) in the list owner's space, under the owner's change lock, holding the row
--    as the change left it (`object`; as it was, for a deletion); the worker delivers them.
-- 4. Gaining access to a list records an `access.granted` upsert of each of its tasks in the
--    new member's space, losing it an `access.ended` tombstone (under the member's change
--    lock): the member's feed sees them. They are the feed's only: recorded as delivered.
-- 5. The feed's horizon across spaces (`task_events_hold`, `task_events_horizon`): see
--    specs/events.md, "Order across spaces".

ALTER TABLE task_events
    ADD COLUMN actor_id TEXT,
    ADD COLUMN changes JSONB,
    ADD COLUMN object JSONB,
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
    -- What each kind holds: a task's change the task (but for a deletion) and maybe its list;
    -- a reminder its body; a list's event the list; a membership's, comment's or
    -- invitation's event the row (`object`); access the task (granted) or nothing (ended).
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

-- The worker's order per list is for the list's own events (list, members, invitations):
-- a task's changes, which now carry the list, keep their per-task order only.
DROP INDEX ix_task_events_pending_list_id_id;
CREATE INDEX ix_task_events_pending_list_id_id ON task_events (list_id, id)
    WHERE state = 'pending' AND list_id IS NOT NULL AND task_id IS NULL;
-- The activity of one list, newest first.
CREATE INDEX ix_task_events_user_id_list_id_id ON task_events (user_id, list_id, id)
    WHERE list_id IS NOT NULL;

-- The request's caller, for the event triggers (`task_api.actor`).
CREATE FUNCTION task_api_actor() RETURNS TEXT
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT nullif(current_setting('task_api.actor', true), '')
$$;

-- 0024's event, with the actor, the task's list and, for an update, what changed. Inline (no
-- helper function): a plain field change calls this one function (tests/test_write_costs.py).
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

-- 0019's list event, with the actor and, for an update, what changed.
CREATE OR REPLACE FUNCTION task_lists_record_event() RETURNS trigger
LANGUAGE plpgsql SET TimeZone = 'UTC' AS $$
DECLARE
    now_ JSONB;
    was JSONB;
    changed JSONB;
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM task_events_lock(OLD.user_id);
        INSERT INTO task_events (user_id, list_id, type, actor_id)
        VALUES (OLD.user_id, OLD.id, 'list.deleted', task_api_actor());
        RETURN OLD;
    END IF;
    PERFORM task_events_lock(NEW.user_id);
    now_ := to_jsonb(NEW) - 'name_key';
    IF TG_OP = 'UPDATE' THEN
        was := to_jsonb(OLD);
        SELECT jsonb_object_agg(n.key, jsonb_build_array(was -> n.key, n.value)) INTO changed
        FROM jsonb_each(now_ - 'version' - 'updated_at') AS n
        WHERE n.value IS DISTINCT FROM was -> n.key;
    END IF;
    INSERT INTO task_events (user_id, list_id, type, list, actor_id, changes)
    VALUES (NEW.user_id, NEW.id,
            CASE TG_OP WHEN 'INSERT' THEN 'list.created' ELSE 'list.updated' END,
            now_, task_api_actor(), changed);
    RETURN NEW;
END
$$;

-- A membership's events, in the owner's space; and the member's own feed: gaining access
-- brings the list's tasks as `access.granted` upserts (under the member's change lock, which
-- its caller, the member accepting or the former owner of a transfer, holds already),
-- losing it `access.ended` tombstones (under the owner's: specs/events.md, "Order across
-- spaces"). At most one row per task of the list (TASKS_PER_LIST, 10,000).
CREATE FUNCTION list_members_record_event() RETURNS trigger
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

CREATE TRIGGER list_members_record_event AFTER INSERT OR DELETE ON list_members
    FOR EACH ROW EXECUTE FUNCTION list_members_record_event();
CREATE TRIGGER list_members_record_event_on_update AFTER UPDATE OF role ON list_members
    FOR EACH ROW WHEN (OLD.role IS DISTINCT FROM NEW.role)
    EXECUTE FUNCTION list_members_record_event();

-- Deleting a list ends its memberships first (BEFORE: its tasks are still there), so each
-- member's feed gets the tombstones of its tasks; the key's cascade then finds none.
CREATE FUNCTION task_lists_end_memberships() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM list_members AS m WHERE m.user_id = OLD.user_id AND m.list_id = OLD.id;
    RETURN OLD;
END
$$;
CREATE TRIGGER task_lists_end_memberships BEFORE DELETE ON task_lists
    FOR EACH ROW EXECUTE FUNCTION task_lists_end_memberships();

-- A comment's events, in the owner's space, in its task's order (they carry the task).
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

-- An invitation's events (never its token's hash). A pending invitation is deleted when it is
-- accepted or revoked: deleted by the list's owner or an admin (not one who joined in this
-- transaction: an invitation to be admin, accepted), or by nobody's request (an expired one's
-- clean-up), it was revoked; by anyone else (the invitee), accepted.
CREATE FUNCTION list_invitations_record_event() RETURNS trigger
LANGUAGE plpgsql SET TimeZone = 'UTC' AS $$
DECLARE
    actor TEXT := task_api_actor();
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM task_events_lock(NEW.user_id);
        INSERT INTO task_events (user_id, list_id, type, object, actor_id)
        VALUES (NEW.user_id, NEW.list_id, 'invitation.created', to_jsonb(NEW) - 'token_hash',
                actor);
        RETURN NEW;
    END IF;
    PERFORM task_events_lock(OLD.user_id);
    INSERT INTO task_events (user_id, list_id, type, object, actor_id)
    VALUES (
        OLD.user_id, OLD.list_id,
        CASE WHEN actor IS NULL OR actor = OLD.user_id OR EXISTS (
                SELECT FROM list_members AS m
                WHERE m.list_id = OLD.list_id AND m.member_id = actor AND m.role = 'admin'
                    AND m.joined_at <> now()  -- not the admin this acceptance just made
            ) THEN 'invitation.revoked' ELSE 'invitation.accepted' END,
        to_jsonb(OLD) - 'token_hash', actor
    );
    RETURN OLD;
END
$$;
CREATE TRIGGER list_invitations_record_event AFTER INSERT OR DELETE ON list_invitations
    FOR EACH ROW EXECUTE FUNCTION list_invitations_record_event();

-- The change feed's horizon across spaces (specs/events.md, "Order across spaces"). Sent
-- ahead of a feed page in the same message (one implicit transaction): for the caller's
-- space and each space whose lists it is a member of, in order, try the change lock shared,
-- without waiting. Where a writer holds it, the space is busy: its changes not yet
-- committed may have ids below ones already visible elsewhere. The busy spaces are kept in
-- `task_api.busy` for the page's statement (`task_events_horizon`), which reads in a
-- snapshot taken after this: every space not busy has no change in flight (a writer that
-- comes later waits for this transaction, and takes a higher id).
CREATE FUNCTION task_events_hold(p_caller TEXT) RETURNS void
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE AS $$
DECLARE
    busy TEXT[] := '{}';
    space TEXT;
BEGIN
    FOR space IN
        SELECT p_caller
        UNION
        SELECT m.user_id FROM list_members AS m WHERE m.member_id = p_caller
        ORDER BY 1
    LOOP
        IF NOT pg_try_advisory_xact_lock_shared(
            hashtextextended('task-api:task-events:' || space, 0)
        ) THEN
            busy := busy || space;
        END IF;
    END LOOP;
    PERFORM set_config('task_api.busy', busy::text, true);
END
$$;

-- The highest position a feed page may serve: below every busy space's first change still
-- in flight, which is above that space's last visible one written under its lock (within a
-- space, id order is commit order). Two kinds do not count: reminders (the worker writes
-- them without a lock) and tombstones (`access.ended`, written under the list owner's lock,
-- always before that owner's `member.removed`, which counts in the owner's space). STABLE: it reads in the page's own snapshot. Without a hold (no setting,
-- or nothing busy), no bound.
CREATE FUNCTION task_events_horizon() RETURNS BIGINT
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT coalesce(min(coalesce(
        (SELECT max(e.id) FROM task_events AS e
         WHERE e.user_id = b.space AND e.type NOT IN ('reminder', 'access.ended')), 0
    )), 9223372036854775807)
    FROM unnest(coalesce(nullif(current_setting('task_api.busy', true), ''), '{}')::text[])
        AS b(space)
$$;

-- 0027's entry, keeping the caller as the actor of what the request changes.
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
    -- Who the request's changes are by: the event triggers read it (NULL outside a request).
    PERFORM set_config('task_api.actor', p_subject, true);
    IF p_write THEN
        PERFORM task_events_lock(p_subject);
    END IF;
END
$$;
