-- depends: 0043_access_ended_withdraws_copies
-- Subscribable iCalendar feeds (issue 52; specs/api-contract.md, "Calendar feeds"). A feed is
-- its creator's: the row is in the creator's space, its URL's token is the credential and only
-- the token's SHA-256 is stored (as an invitation's). `scope` says what it shows: `all` (the
-- creator's tasks with a due date, the shared lists it can read included) or `list` (one list,
-- own or shared: `list_id`, no key, since a shared list is in its owner's space; each fetch
-- reads it through the access predicate, so a list the creator lost is the feed's 404). A
-- later `filter` scope (saved filters) is one more value here and its own column.
CREATE TABLE calendar_feeds (
    id          BIGINT      GENERATED ALWAYS AS IDENTITY,
    user_id     TEXT        NOT NULL,
    kind        TEXT        NOT NULL DEFAULT 'events',
    scope       TEXT        NOT NULL DEFAULT 'all',
    list_id     BIGINT,
    token_hash  TEXT        NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    rotated_at  TIMESTAMPTZ,
    CONSTRAINT pk_calendar_feeds PRIMARY KEY (id),
    CONSTRAINT fk_calendar_feeds_user_id_users FOREIGN KEY (user_id)
        REFERENCES users (id) ON DELETE CASCADE,
    CONSTRAINT uq_calendar_feeds_user_id_id UNIQUE (user_id, id),
    CONSTRAINT uq_calendar_feeds_token_hash UNIQUE (token_hash),
    CONSTRAINT ck_calendar_feeds_kind CHECK (kind IN ('events', 'todos')),
    CONSTRAINT ck_calendar_feeds_scope CHECK (scope IN ('all', 'list')),
    CONSTRAINT ck_calendar_feeds_list_id CHECK ((scope = 'list') = (list_id IS NOT NULL))
);

CREATE TRIGGER calendar_feeds_admit_write BEFORE INSERT OR UPDATE OR DELETE ON calendar_feeds
    FOR EACH ROW WHEN (current_setting('task_api.refused', true) <> '')
    EXECUTE FUNCTION task_api_skip_refused_write();
