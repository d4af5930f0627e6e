-- depends: 0046_members_planned
-- Saved filters (issue 53; specs/api-contract.md, "Saved filters"): a user's named queries of
-- `GET /api/tasks`, private to the user. `name` is unique per user ignoring case through
-- `name_key`, its Unicode case fold written by the API (as `task_lists.name_key`, 0017).
-- `query` is the listing's parameters as a JSON object (REST's names), validated by the
-- listing's own rules when saved; only the parameters given are stored. A listing applying a
-- filter (`GET /api/tasks?filter=`) holds only while `query` is still the one it applied. A
-- filter's list ids are no references: a list the user loses matches nothing of it.
CREATE TABLE saved_filters (
    id          BIGINT      GENERATED ALWAYS AS IDENTITY,
    user_id     TEXT        NOT NULL,
    name        TEXT        NOT NULL,
    name_key    TEXT        NOT NULL,
    query       JSONB       NOT NULL DEFAULT '{}',
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT pk_saved_filters PRIMARY KEY (id),
    CONSTRAINT fk_saved_filters_user_id_users FOREIGN KEY (user_id)
        REFERENCES users (id) ON DELETE CASCADE,
    CONSTRAINT uq_saved_filters_user_id_id UNIQUE (user_id, id),
    CONSTRAINT uq_saved_filters_user_id_name_key UNIQUE (user_id, name_key)
);

CREATE TRIGGER saved_filters_admit_write BEFORE INSERT OR UPDATE OR DELETE ON saved_filters
    FOR EACH ROW WHEN (current_setting('task_api.refused', true) <> '')
    EXECUTE FUNCTION task_api_skip_refused_write();
