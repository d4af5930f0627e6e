-- depends: 0091_reminder_deliveries
-- A completion served inside its series' object (issue 70; specs/caldav.md, "Completing a
-- recurring task"): a client that completes an occurrence with a completed override in the
-- series' object (`OVERRIDE_COMPLETED`: Thunderbird, the `caldav` library's thisandfuture
-- mode) keeps that override in the object it holds, as it sent it. The completed occurrence
-- is a task (REST and MCP list it) but no DAV object of its own: its kept object is marked
-- `within` when the series' object goes on to the next occurrence, and every DAV read leaves
-- out a task whose kept object is `within` and not served (backend/services/calendar/dav_objects.py
-- `_listing`). A `within` object a restore or a move serves again (`task_dav_objects_serve`)
-- is an object of its own once more.
ALTER TABLE task_dav_objects ADD COLUMN within BOOLEAN NOT NULL DEFAULT false;

-- Completions made so far in that form: a kept object not served, holding a completed
-- override (its body has a RECURRENCE-ID; the Tasks.org form's has none), whose UID the served
-- object of a task of the same series holds in its collection.
UPDATE task_dav_objects AS o SET within = true
FROM tasks AS t
WHERE NOT o.served AND o.body LIKE '%RECURRENCE-ID%'
  AND t.user_id = o.user_id AND t.id = o.task_id
  AND EXISTS (
      SELECT FROM task_dav_objects AS s
      JOIN tasks AS st ON st.user_id = s.user_id AND st.id = s.task_id
      WHERE s.served AND s.uid = o.uid AND st.series_id = t.series_id
        AND (s.list_id = o.list_id
             OR (s.list_id IS NULL AND o.list_id IS NULL AND s.user_id = o.user_id))
  );
