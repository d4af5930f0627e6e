-- depends: 0053_task_children_follow
-- A calendar feed made through the chat before issue 61 kept its URL (with the feed's secret
-- token) in the stored tool call's result. Each such `create_calendar_feed` result is
-- rewritten as the chat keeps one now (`Tool.withheld`, backend/mcp/tools.py): `url` replaced
-- by `url_withheld`, where the user gets the URL (the same text; tests/test_schema.py compares
-- them). The read path withholds it too (`withheld_call`); this takes it out of the stored
-- rows (and so out of backups taken from now on). The feeds are not revoked: a calendar
-- subscribed to one keeps working. A URL the model repeated in its own answer text is not
-- rewritten; the user can rotate the feed (specs/chat.md, "Credentials"). ChatKit's items
-- hold no tool result (its messages are these rows).
UPDATE messages
SET tool_calls = (
    SELECT jsonb_agg(
        CASE
            WHEN call ->> 'name' = 'create_calendar_feed'
                AND jsonb_typeof(call -> 'result') = 'object'
                AND call -> 'result' ? 'url'
            THEN jsonb_set(
                call,
                '{result}',
                ((call -> 'result') - 'url') || jsonb_build_object(
                    'url_withheld',
                    format(
                        'The feed''s URL holds a secret token: a chat never shows it. The user '
                        'gets it in their own client, which asks for a new one (POST '
                        '/api/calendar-feeds/%s/rotate) and shows it only to them, once.',
                        call -> 'result' ->> 'feed_id'
                    )
                )
            )
            ELSE call
        END
        ORDER BY position
    )
    FROM jsonb_array_elements(messages.tool_calls) WITH ORDINALITY AS calls (call, position)
)
WHERE jsonb_typeof(tool_calls) = 'array'
    AND EXISTS (
        SELECT 1
        FROM jsonb_array_elements(messages.tool_calls) AS stored (call)
        WHERE call ->> 'name' = 'create_calendar_feed'
            AND jsonb_typeof(call -> 'result') = 'object'
            AND call -> 'result' ? 'url'
    );
