-- depends: 0004_token_version
-- Rate-limit counters shared by every worker process and replica: one row per
-- (policy, client) key holding the hits of its current fixed window. Updated by a single
-- INSERT ... ON CONFLICT DO UPDATE ... RETURNING (backend/ratelimit.py); `key` holds the
-- policy name and a SHA-256 of the client (IP, email or user id), never the raw value.
CREATE TABLE rate_limits (
    key           TEXT        NOT NULL,
    window_start  TIMESTAMPTZ NOT NULL,
    window_end    TIMESTAMPTZ NOT NULL,
    hits          INTEGER     NOT NULL,
    CONSTRAINT pk_rate_limits PRIMARY KEY (key),
    CONSTRAINT ck_rate_limits_hits_positive CHECK (hits > 0),
    CONSTRAINT ck_rate_limits_window_order CHECK (window_end > window_start)
);

-- Serves the periodic clean-up of expired windows.
CREATE INDEX ix_rate_limits_window_end ON rate_limits (window_end);
