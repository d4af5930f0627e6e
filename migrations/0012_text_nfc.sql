-- depends: 0011_task_events_dead
-- The text rule (backend/models/text.py; issue 25, item 6): the API stores titles,
-- descriptions and tags in NFC, and compares tags (de-duplication, the `tag` filter's GIN
-- lookup) by their exact code points. Rows written before it may hold other forms: normalize
-- them here, so that "é" stored as e + U+0301 is the tag a filter for U+00E9 finds, and two
-- spellings of one tag in a row become one (the first one's position kept).
--
-- A row that changes is an ordinary change: `version + 1` (a new ETag: what a client cached
-- is not what is stored any more), `updated_at = now()`, and the tasks trigger records an
-- `updated` change for the feed and the event sinks. Each affected user's change lock is
-- taken first, before any row lock, as requests take it (migration 0008), so the migration
-- can run beside the API. Only rows whose text changes are touched: a title or description
-- whose NFC form would break its length check (NFC lengthens a few characters) keeps its form.
--
-- Text the rule now refuses (control characters, bidi overrides, noncharacters, invisible-only
-- titles and tags) is left as it is: responses return stored text without checking it (and
-- the feed renders old changes the same way); a write must replace it.

-- (PERFORM in a DO block: yoyo prints the rows a plain SELECT returns into the start-up log.)
DO $$
BEGIN
    PERFORM task_events_lock(user_id)
    FROM (
        SELECT DISTINCT user_id
        FROM tasks
        WHERE (title IS NOT NFC NORMALIZED AND char_length(normalize(title, NFC)) <= 200)
           OR (description IS NOT NFC NORMALIZED
               AND char_length(normalize(description, NFC)) <= 2000)
           OR EXISTS (SELECT FROM unnest(tags) AS t(tag) WHERE t.tag IS NOT NFC NORMALIZED)
        ORDER BY user_id
    ) AS affected;
END
$$;

UPDATE tasks
SET title = CASE
        WHEN char_length(normalize(title, NFC)) <= 200 THEN normalize(title, NFC) ELSE title
    END,
    description = CASE
        WHEN char_length(normalize(description, NFC)) <= 2000 THEN normalize(description, NFC)
        ELSE description
    END,
    tags = ARRAY(
        SELECT normalize(t.tag, NFC)
        FROM unnest(tags) WITH ORDINALITY AS t(tag, position)
        GROUP BY normalize(t.tag, NFC)
        ORDER BY min(t.position)
    ),
    version = version + 1,
    updated_at = now()
WHERE (title IS NOT NFC NORMALIZED AND char_length(normalize(title, NFC)) <= 200)
   OR (description IS NOT NFC NORMALIZED AND char_length(normalize(description, NFC)) <= 2000)
   OR EXISTS (SELECT FROM unnest(tags) AS t(tag) WHERE t.tag IS NOT NFC NORMALIZED);
