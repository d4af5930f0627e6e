-- depends: 0044_calendar_feeds
-- Stream tickets (issue 51): a browser's `EventSource` cannot send a bearer header, so it
-- opens the live change stream (GET /api/changes/stream?ticket=...) with a ticket that a
-- request with the bearer token made a moment before (POST /api/changes/stream/tickets).
-- Random, used once (its use deletes it), valid for `STREAM_TICKET_SECONDS`; only its SHA-256
-- is stored (as invitations' tokens, 0029). It carries what the stream needs of the token it
-- was made with: the account's token version (a revocation ends the stream) and the token's
-- expiry (the stream ends with it). An account's deletion takes its tickets.

CREATE TABLE stream_tickets (
    token_hash       TEXT        NOT NULL,
    user_id          TEXT        NOT NULL,
    local            BOOLEAN     NOT NULL,
    token_version    INTEGER,
    token_expires_at TIMESTAMPTZ,
    expires_at       TIMESTAMPTZ NOT NULL,
    CONSTRAINT pk_stream_tickets PRIMARY KEY (token_hash),
    CONSTRAINT fk_stream_tickets_user_id_users FOREIGN KEY (user_id)
        REFERENCES users (id) ON DELETE CASCADE
);
-- A user's expired tickets, deleted by the user's next one.
CREATE INDEX ix_stream_tickets_user_id_expires_at ON stream_tickets (user_id, expires_at);
CREATE TRIGGER stream_tickets_admit_write
    BEFORE INSERT OR UPDATE OR DELETE ON stream_tickets
    FOR EACH ROW WHEN (current_setting('task_api.refused', true) <> '')
    EXECUTE FUNCTION task_api_skip_refused_write();
