-- depends: 0024_stored_subtask_counts
-- ChatKit's threads and items are our conversations and messages (issue 40; specs/chat.md,
-- "ChatKit").
--
-- A ChatKit id is a string the server makes, unguessable and unique: `public_id`, 122 random
-- bits from gen_random_uuid() (a strong random source), on every conversation (`thr_...`) and
-- message (`msg_...`). An assistant's message is announced to the client when its text starts
-- streaming, before the row exists, so its id is its user message's with `ans_` (a trigger
-- sets it: each answer has its own id, never the Agents SDK's shared `__fake_id__`).
-- `title`: a thread's title, set by ChatKit's `threads.update`.
--
-- `chatkit_items`: what ChatKit shows that a message is not (widgets, hidden context), per
-- user like every row (deleted with the account and with its conversation). `id` is drawn
-- from the messages' sequence, so a conversation's messages and items sort together in the
-- order they were stored.
ALTER TABLE conversations
    ADD COLUMN public_id TEXT NOT NULL DEFAULT 'thr_' || replace(gen_random_uuid()::text, '-', ''),
    ADD COLUMN title TEXT,
    ADD CONSTRAINT uq_conversations_public_id UNIQUE (public_id),
    ADD CONSTRAINT ck_conversations_title CHECK (char_length(title) <= 200);

ALTER TABLE messages
    ADD COLUMN public_id TEXT NOT NULL DEFAULT 'msg_' || replace(gen_random_uuid()::text, '-', ''),
    ADD CONSTRAINT uq_messages_public_id UNIQUE (public_id);

UPDATE messages AS answer SET public_id = 'ans_' || substr(asked.public_id, 5)
    FROM messages AS asked
    WHERE answer.role = 'assistant' AND asked.user_id = answer.user_id
        AND asked.id = answer.reply_to;

CREATE FUNCTION messages_answer_public_id() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    SELECT 'ans_' || substr(asked.public_id, 5) INTO NEW.public_id
        FROM messages AS asked
        WHERE asked.user_id = NEW.user_id AND asked.id = NEW.reply_to;
    RETURN NEW;
END;
$$;
CREATE TRIGGER messages_answer_public_id BEFORE INSERT ON messages
    FOR EACH ROW WHEN (NEW.role = 'assistant') EXECUTE FUNCTION messages_answer_public_id();

CREATE TABLE chatkit_items (
    id               BIGINT      NOT NULL DEFAULT nextval('messages_id_seq'),
    user_id          TEXT        NOT NULL,
    conversation_id  BIGINT      NOT NULL,
    public_id        TEXT        NOT NULL,
    item             JSONB       NOT NULL,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT pk_chatkit_items PRIMARY KEY (id),
    CONSTRAINT uq_chatkit_items_user_id_id UNIQUE (user_id, id),
    CONSTRAINT uq_chatkit_items_public_id UNIQUE (public_id),
    CONSTRAINT fk_chatkit_items_user_id_users FOREIGN KEY (user_id)
        REFERENCES users (id) ON DELETE CASCADE,
    CONSTRAINT fk_chatkit_items_user_id_conversation_id_conversations
        FOREIGN KEY (user_id, conversation_id)
        REFERENCES conversations (user_id, id) ON DELETE CASCADE
);
-- A thread's items in order, beside its messages.
CREATE INDEX ix_chatkit_items_user_id_conversation_id_id
    ON chatkit_items (user_id, conversation_id, id);

CREATE TRIGGER chatkit_items_admit_write BEFORE INSERT OR UPDATE OR DELETE ON chatkit_items
    FOR EACH ROW WHEN (current_setting('task_api.refused', true) <> '')
    EXECUTE FUNCTION task_api_skip_refused_write();
