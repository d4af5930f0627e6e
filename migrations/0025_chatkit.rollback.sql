DROP TABLE chatkit_items;
DROP TRIGGER messages_answer_public_id ON messages;
DROP FUNCTION messages_answer_public_id();
ALTER TABLE messages DROP COLUMN public_id;
ALTER TABLE conversations DROP COLUMN title, DROP COLUMN public_id;
