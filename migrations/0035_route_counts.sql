-- depends: 0034_private_reminders
-- A route's own rate limit counted in the request's first message (issue 39: invitations in
-- one message each). `POST /api/lists/{id}/invitations` is counted against the caller's
-- invitation limit as well as its write limit; that count used to be a transaction of its
-- own before the route's. It now rides with the caller's entry (backend/db/sender.py
-- `Sender.count`), committed with the message whatever the route then does, and the answer
-- carries it as two more outcome columns beside the write count's.

-- One hit against `p_key` (the route's policy and caller), kept for `task_api_outcome`; over
-- `p_limit` the request is refused (TA429: the admit triggers, 0020, skip what it writes).
-- Counted whatever the entry said: a refused request counts, as the write count does.
CREATE FUNCTION task_api_count(p_key TEXT, p_window INTEGER, p_limit INTEGER) RETURNS void
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE AS $$
DECLARE
    counted INTEGER;
    reset_in INTEGER;
BEGIN
    SELECT h.hits, h.reset_seconds INTO counted, reset_in
    FROM task_api_hit(ARRAY[p_key], ARRAY[p_window], false) AS h;
    PERFORM set_config('task_api.route_hits', counted::text, true);
    PERFORM set_config('task_api.route_reset', reset_in::text, true);
    IF counted > p_limit THEN
        PERFORM task_api_refuse('TA429');
    END IF;
END
$$;

-- 0027's outcome and the route's count (hits, seconds to its window's reset).
DROP FUNCTION task_api_outcome();
CREATE FUNCTION task_api_outcome(
    OUT task_api_hits INTEGER, OUT task_api_reset INTEGER,
    OUT task_api_refused TEXT, OUT task_api_reason TEXT, OUT task_api_replay JSONB,
    OUT task_api_route_hits INTEGER, OUT task_api_route_reset INTEGER
)
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT nullif(current_setting('task_api.hits', true), '')::integer,
           nullif(current_setting('task_api.reset', true), '')::integer,
           nullif(current_setting('task_api.refused', true), ''),
           nullif(current_setting('task_api.reason', true), ''),
           nullif(current_setting('task_api.replay', true), '')::jsonb,
           nullif(current_setting('task_api.route_hits', true), '')::integer,
           nullif(current_setting('task_api.route_reset', true), '')::integer
$$;
