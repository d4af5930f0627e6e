-- depends: 0020_refusals_without_errors
-- Chat with your tasks (issue 32; specs/chat.md, specs/data-model.md "conversations").
--
-- `conversations`: a user's chats with the task agent, newest activity first
-- (`updated_at`, bumped by every turn). `messages`: their turns, in id order. A user's
-- message may carry the request's Idempotency-Key (unique per user): a retry finds the
-- first attempt by it. An assistant's message answers one user message (`reply_to`, at
-- most one answer each) and keeps the tool calls it made (`tool_calls`, JSON), its token
-- usage, and, when the provider failed, the error's code (`error_code`; its tool calls are
-- the ones that committed). Both tables are per-user: deleted with the account, and every
-- reference between rows is a same-user key (migration 0013). Like every table a request
-- writes, both skip the rows of a request the server refused (migration 0020).
CREATE TABLE conversations (
    id          BIGINT      GENERATED ALWAYS AS IDENTITY,
    user_id     TEXT        NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT pk_conversations PRIMARY KEY (id),
    CONSTRAINT uq_conversations_user_id_id UNIQUE (user_id, id),
    CONSTRAINT fk_conversations_user_id_users FOREIGN KEY (user_id)
        REFERENCES users (id) ON DELETE CASCADE
);
-- The listing: a user's conversations, newest activity first (keyset on updated_at, id).
CREATE INDEX ix_conversations_user_id_updated_at_id
    ON conversations (user_id, updated_at, id);

CREATE TABLE messages (
    id               BIGINT      GENERATED ALWAYS AS IDENTITY,
    user_id          TEXT        NOT NULL,
    conversation_id  BIGINT      NOT NULL,
    role             TEXT        NOT NULL,
    content          TEXT        NOT NULL,
    tool_calls       JSONB,
    reply_to         BIGINT,
    idempotency_key  TEXT,
    error_code       TEXT,
    input_tokens     INTEGER,
    output_tokens    INTEGER,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT pk_messages PRIMARY KEY (id),
    CONSTRAINT uq_messages_user_id_id UNIQUE (user_id, id),
    CONSTRAINT uq_messages_user_id_idempotency_key UNIQUE (user_id, idempotency_key),
    CONSTRAINT uq_messages_user_id_reply_to UNIQUE (user_id, reply_to),
    CONSTRAINT ck_messages_role CHECK (role IN ('user', 'assistant')),
    CONSTRAINT ck_messages_reply CHECK ((role = 'assistant') = (reply_to IS NOT NULL)),
    CONSTRAINT fk_messages_user_id_users FOREIGN KEY (user_id)
        REFERENCES users (id) ON DELETE CASCADE,
    CONSTRAINT fk_messages_user_id_conversation_id_conversations
        FOREIGN KEY (user_id, conversation_id)
        REFERENCES conversations (user_id, id) ON DELETE CASCADE,
    CONSTRAINT fk_messages_user_id_reply_to_messages FOREIGN KEY (user_id, reply_to)
        REFERENCES messages (user_id, id) ON DELETE CASCADE
);
-- A conversation's messages in order (its page, the history a turn sends).
CREATE INDEX ix_messages_user_id_conversation_id_id ON messages (user_id, conversation_id, id);

CREATE TRIGGER conversations_admit_write BEFORE INSERT OR UPDATE OR DELETE ON conversations
    FOR EACH ROW WHEN (current_setting('task_api.refused', true) <> '')
    EXECUTE FUNCTION task_api_skip_refused_write();
CREATE TRIGGER messages_admit_write BEFORE INSERT OR UPDATE OR DELETE ON messages
    FOR EACH ROW WHEN (current_setting('task_api.refused', true) <> '')
    EXECUTE FUNCTION task_api_skip_refused_write();
