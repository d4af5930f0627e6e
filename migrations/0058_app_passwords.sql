-- depends: 0055_feed_for_many_callers
-- App passwords (issue 62; specs/api-contract.md, "App passwords"): what a CalDAV client signs
-- in with over HTTP Basic (a bearer token or the account's password never works there). A
-- user's own, private rows: `name` unique per user ignoring case (`name_key`, as saved
-- filters'); `scope` is what the password may do over DAV (`read`: no write); the password is
-- 32 random bytes shown once and stored only as its SHA-256 (as a feed token's and an
-- invitation's: a random secret needs no slow hash), unique, so a request finds its row by the
-- hash alone. `last_used_at` is written by a DAV request's check at most once a minute.
-- Signing out everywhere deletes them; deleting the account too (the key cascades).
CREATE TABLE app_passwords (
    id            BIGINT      GENERATED ALWAYS AS IDENTITY,
    user_id       TEXT        NOT NULL,
    name          TEXT        NOT NULL,
    name_key      TEXT        NOT NULL,
    scope         TEXT        NOT NULL,
    token_hash    TEXT        NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_used_at  TIMESTAMPTZ,
    CONSTRAINT pk_app_passwords PRIMARY KEY (id),
    CONSTRAINT fk_app_passwords_user_id_users FOREIGN KEY (user_id)
        REFERENCES users (id) ON DELETE CASCADE,
    CONSTRAINT uq_app_passwords_user_id_id UNIQUE (user_id, id),
    CONSTRAINT uq_app_passwords_user_id_name_key UNIQUE (user_id, name_key),
    CONSTRAINT uq_app_passwords_token_hash UNIQUE (token_hash),
    CONSTRAINT ck_app_passwords_scope CHECK (scope IN ('read', 'read_write'))
);

CREATE TRIGGER app_passwords_admit_write BEFORE INSERT OR UPDATE OR DELETE ON app_passwords
    FOR EACH ROW WHEN (current_setting('task_api.refused', true) <> '')
    EXECUTE FUNCTION task_api_skip_refused_write();
