-- Accounts. `id` is a string: built-in sign-up uses a UUID, external issuers (Better Auth)
-- use their own ids from the token's `sub`. `password_hash` is NULL for identities
-- provisioned from an external token.
CREATE TABLE users (
    id             TEXT        NOT NULL,
    email          TEXT,
    name           TEXT,
    password_hash  TEXT,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT pk_users PRIMARY KEY (id),
    CONSTRAINT uq_users_email UNIQUE (email),
    CONSTRAINT ck_users_id_length CHECK (char_length(id) BETWEEN 1 AND 255),
    CONSTRAINT ck_users_email_lowercase CHECK (email = lower(email)),
    CONSTRAINT ck_users_email_length CHECK (char_length(email) <= 320),
    CONSTRAINT ck_users_name_length CHECK (char_length(name) <= 100)
);
