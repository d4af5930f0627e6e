-- The entry, the key's check, the steps and the refusal as 0020-0023 made them (notices).

CREATE OR REPLACE FUNCTION task_api_refuse(p_code TEXT, p_detail TEXT DEFAULT NULL) RETURNS void
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE AS $$
BEGIN
    IF coalesce(current_setting('task_api.refused', true), '') <> '' THEN
        RETURN;
    END IF;
    PERFORM set_config('task_api.refused', p_code, true);
    RAISE NOTICE 'task_api_refused %', concat_ws(' ', p_code, p_detail);
END
$$;

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
        RAISE NOTICE 'task_api_rate_limit % %', counted, reset_in;
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
    RAISE NOTICE 'task_api_replay %', json_build_object(
        'status', stored.response_status,
        'headers', stored.response_headers,
        'body', stored.response_body
    );
    PERFORM task_api_refuse('TA208');
END
$$;

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
        PERFORM task_api_refuse('TS400', concat_ws(' ', failed, coalesce(why, 'missing')));
        RETURN NULL;
    END;
    RETURN collected;
END
$$;

CREATE FUNCTION task_api_return(p_rows JSONB) RETURNS void
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE AS $$
BEGIN
    RAISE NOTICE 'task_api_rows %', coalesce(p_rows, '[]'::jsonb);
END
$$;

DROP FUNCTION task_api_outcome();
