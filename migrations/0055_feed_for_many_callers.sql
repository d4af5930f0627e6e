-- depends: 0054_chat_feed_urls_withheld
-- The change feed's horizon for many callers at once (issue 64; specs/events.md, "The live
-- stream"): the live streams' reader reads the pages of every woken stream in one statement,
-- the feed's own page for a row of callers (backend/db/scope.py `each_caller`).
--
-- `task_events_hold_many(callers)` is 0030's `task_events_hold` for a set of callers: each
-- space of any of them (its own, and each owner's whose lists it is a member of), in order,
-- is tried shared without waiting; the busy ones go into `task_api.busy`.
-- `task_events_horizon(caller)` is 0030's `task_events_horizon()` restricted to the busy
-- spaces that are the caller's: the same bound for one caller after its own hold, and for each
-- of many after their common hold no bound from a space that is not its own. The feed's page
-- (backend/services/history/changes.py) reads it for one caller and for many alike. 0030's two stay
-- (a server of the previous release, during a rolling deploy, still sends them).
CREATE FUNCTION task_events_hold_many(p_callers TEXT[]) RETURNS void
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE AS $$
DECLARE
    busy TEXT[] := '{}';
    space TEXT;
BEGIN
    FOR space IN
        SELECT c.caller FROM unnest(p_callers) AS c(caller)
        UNION
        SELECT m.user_id FROM list_members AS m WHERE m.member_id = ANY(p_callers)
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

CREATE FUNCTION task_events_horizon(p_caller TEXT) RETURNS BIGINT
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT coalesce(min(coalesce(
        (SELECT max(e.id) FROM task_events AS e
         WHERE e.user_id = b.space AND e.type NOT IN ('reminder', 'access.ended')), 0
    )), 9223372036854775807)
    FROM unnest(coalesce(nullif(current_setting('task_api.busy', true), ''), '{}')::text[])
        AS b(space)
    WHERE b.space = p_caller
        OR EXISTS (SELECT FROM list_members AS m WHERE m.member_id = p_caller AND m.user_id = b.space)
$$;
