-- depends: 0013_same_user_references
-- What a request does before its own statements, as functions its first message calls, so that
-- a read is one round trip and a write two (specs/statements.md).

-- One hit against each (policy, client) key of a fixed-window rate limit (backend/services/
-- rate_limits.py): keys in order, so that two requests never lock the same rows in opposite
-- orders. `p_clean` (about one hit in 500) also deletes expired windows in the same statement,
-- sparing the keys being hit, so that no row is both deleted and upserted by one statement.
CREATE FUNCTION task_api_hit(p_keys TEXT[], p_windows INTEGER[], p_clean BOOLEAN)
RETURNS TABLE (key TEXT, hits INTEGER, reset_seconds INTEGER)
LANGUAGE sql VOLATILE PARALLEL UNSAFE AS $$
    WITH expired AS (
        DELETE FROM rate_limits
        WHERE p_clean AND window_end < clock_timestamp() AND key <> ALL (p_keys)
    )
    INSERT INTO rate_limits AS r (key, window_start, window_end, hits)
    SELECT k, s, s + make_interval(secs => w), 1
    FROM (
        SELECT k, w,
               date_bin(make_interval(secs => w), clock_timestamp(),
                        TIMESTAMPTZ '2000-01-01 00:00:00+00') AS s
        FROM unnest(p_keys, p_windows) AS t(k, w)
        ORDER BY k
    ) AS windows
    ON CONFLICT (key) DO UPDATE SET
        hits = CASE WHEN r.window_start = EXCLUDED.window_start THEN r.hits + 1 ELSE 1 END,
        window_start = EXCLUDED.window_start,
        window_end = EXCLUDED.window_end
    RETURNING r.key, r.hits,
              greatest(1, ceil(extract(epoch FROM r.window_end - clock_timestamp())))::integer
$$;

-- The caller's entry into a request (backend/services/unit_of_work.py), sent in the same
-- message as the request's first statement:
-- 1. a write counts against the caller's write limit (`p_limit_key`; NULL: not counted): the
--    count is sent back as a notice `task_api_rate_limit <hits> <reset seconds>` (the message's
--    result is the request's own statement), and over the limit nothing more runs (TA429);
-- 2. the account: a built-in token (`p_local`) whose account is gone or whose version was
--    revoked is refused (TA401); an external identity is provisioned on first use (without the
--    email if another account has it);
-- 3. a write takes the caller's change lock (migration 0008) before any row lock.
CREATE FUNCTION task_api_enter(
    p_subject TEXT, p_version INTEGER, p_local BOOLEAN, p_email TEXT, p_name TEXT,
    p_write BOOLEAN, p_limit_key TEXT, p_window INTEGER, p_limit INTEGER, p_clean BOOLEAN
) RETURNS void
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE AS $$
DECLARE
    counted RECORD;
    stored INTEGER;
BEGIN
    IF p_limit_key IS NOT NULL THEN
        SELECT * INTO counted FROM task_api_hit(ARRAY[p_limit_key], ARRAY[p_window], p_clean);
        RAISE NOTICE 'task_api_rate_limit % %', counted.hits, counted.reset_seconds;
        IF counted.hits > p_limit THEN
            RAISE EXCEPTION USING ERRCODE = 'TA429', MESSAGE = 'Too many requests';
        END IF;
    END IF;
    SELECT u.token_version INTO stored FROM users AS u WHERE u.id = p_subject;
    IF NOT FOUND THEN
        IF p_local THEN
            RAISE EXCEPTION USING ERRCODE = 'TA401',
                MESSAGE = 'The account for this token no longer exists';
        END IF;
        INSERT INTO users (id, email, name) VALUES (p_subject, p_email, p_name)
            ON CONFLICT DO NOTHING;
        IF NOT FOUND AND p_email IS NOT NULL THEN
            INSERT INTO users (id, email, name) VALUES (p_subject, NULL, p_name)
                ON CONFLICT DO NOTHING;
        END IF;
    ELSIF p_local AND stored IS DISTINCT FROM p_version THEN
        RAISE EXCEPTION USING ERRCODE = 'TA401', MESSAGE = 'This token was revoked';
    END IF;
    IF p_write THEN
        PERFORM task_events_lock(p_subject);
    END IF;
END
$$;
