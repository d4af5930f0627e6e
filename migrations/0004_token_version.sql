-- depends: 0002_tasks
-- Revocation of built-in tokens: every token this API issues carries the account's
-- token_version (claim `ver`); signing out everywhere increments it, so older tokens stop
-- matching. Checked against the row already read on each request: no extra write.
ALTER TABLE users
    ADD COLUMN token_version INTEGER NOT NULL DEFAULT 0,
    ADD CONSTRAINT ck_users_token_version_nonnegative CHECK (token_version >= 0);
