-- depends: 0026_turn_heartbeat
-- The answer carries the outcome (issue 37; specs/statements.md). What the entry, the key's
-- check and a refusal used to say in notices is kept in transaction-local settings, and the
-- last statement of the message reads them as ordinary columns (`task_api_outcome`), next to
-- the rows. No notice carries data any more; `task_api_return` goes.

-- Refuse the request with `p_code` (the first refusal stands): the admit triggers (0020) skip
-- every row it writes after this, and the outcome says why (`p_reason`).
CREATE OR REPLACE FUNCTION task_api_refuse(p_code TEXT, p_detail TEXT DEFAULT NULL) RETURNS void
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE AS $$
BEGIN
    IF coalesce(current_setting('task_api.refused', true), '') <> '' THEN
        RETURN;
    END IF;
    PERFORM set_config('task_api.refused', p_code, true);
    PERFORM set_config('task_api.reason', coalesce(p_detail, ''), true);
END
$$;

-- What this transaction's request was told: its write count (hits, seconds to the window's
-- reset), a refusal (code, reason) and an Idempotency-Key's recorded answer. Read by the last
-- statement of a message, so the driver returns it with the rows.
CREATE FUNCTION task_api_outcome(
    OUT task_api_hits INTEGER, OUT task_api_reset INTEGER,
    OUT task_api_refused TEXT, OUT task_api_reason TEXT, OUT task_api_replay JSONB
)
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT nullif(current_setting('task_api.hits', true), '')::integer,
           nullif(current_setting('task_api.reset', true), '')::integer,
           nullif(current_setting('task_api.refused', true), ''),
           nullif(current_setting('task_api.reason', true), ''),
           nullif(current_setting('task_api.replay', true), '')::jsonb
$$;

-- The caller's entry (0023), its count kept for `task_api_outcome` instead of a notice.
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

-- An Idempotency-Key's check (0020), the recorded answer kept for `task_api_outcome`.
CREATE OR REPLACE FUNCTION task_api_idempotency_key(
    p_owner TEXT, p_key TEXT, p_lock BIGINT, p_fingerprint TEXT
) RETURNS void
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE AS $$
DECLARE
    stored RECORD;
BEGIN
    IF coalesce(current_setting('task_api.refused', true), '') <> '' THEN
        RETURN;
    END IF;
    PERFORM pg_advisory_xact_lock(p_lock);
    SELECT k.fingerprint, k.response_status, k.response_headers, k.response_body INTO stored
    FROM idempotency_keys AS k
    WHERE k.user_id = p_owner AND k.key = p_key AND k.expires_at > now();
    IF NOT FOUND THEN
        RETURN;
    END IF;
    IF stored.fingerprint <> p_fingerprint THEN
        PERFORM task_api_refuse('TA422');
        RETURN;
    END IF;
    PERFORM set_config('task_api.replay', json_build_object(
        'status', stored.response_status,
        'headers', stored.response_headers,
        'body', stored.response_body
    )::text, true);
    PERFORM task_api_refuse('TA208');
END
$$;

-- A bulk request's operations (0020): the rows as a JSON array, or, when a step wrote nothing,
-- `{"refused": <index>, "reason": <why>}` (the steps before it undone, the request refused);
-- NULL when the request was refused before the steps ran.
CREATE OR REPLACE FUNCTION task_api_steps(p_steps TEXT[]) RETURNS JSONB
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE AS $$
DECLARE
    collected JSONB := '[]'::jsonb;
    stepped JSONB;
    why TEXT;
    failed INTEGER;
BEGIN
    IF coalesce(current_setting('task_api.refused', true), '') <> '' THEN
        RETURN NULL;
    END IF;
    BEGIN
        FOR i IN 1 .. coalesce(array_length(p_steps, 1), 0) LOOP
            EXECUTE p_steps[i] INTO stepped, why;
            IF stepped IS NULL THEN
                failed := i - 1;
                RAISE EXCEPTION USING ERRCODE = 'TS400';
            END IF;
            collected := collected || jsonb_build_array(stepped);
        END LOOP;
    EXCEPTION WHEN SQLSTATE 'TS400' THEN
        PERFORM task_api_refuse('TS400');
        RETURN jsonb_build_object('refused', failed, 'reason', coalesce(why, 'missing'));
    END;
    RETURN collected;
END
$$;

DROP FUNCTION task_api_return(JSONB);
