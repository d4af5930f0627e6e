-- A turn's lease counts from its record's `created_at` again (the whole turn's length).
ALTER TABLE messages DROP COLUMN heartbeat_at;
