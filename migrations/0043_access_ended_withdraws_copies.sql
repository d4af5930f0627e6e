-- depends: 0041_mutual_member_writes
-- Once a member's access to a list ends, its feed shows nothing of the list's content (issue
-- 49, 3; specs/events.md, "Gaining and losing access"). A membership's end (a removal, a member
-- leaving, the list's deletion) wrote `access.ended` tombstones, but the member's
-- `access.granted` copies of the tasks (titles, descriptions as they were when it joined) stayed
-- in its space for the feed's retention, so a read without a cursor, or from one older than the
-- membership, showed them before the tombstones. The end now deletes those copies in the same
-- transaction: from any cursor, the list's tasks come as tombstones only. They are the feed's
-- only (recorded as delivered, never sent to a sink), so nothing else reads them; a position
-- is unaffected (ids keep their order; the feed never promised contiguous ids).
CREATE OR REPLACE FUNCTION list_members_record_event() RETURNS trigger
LANGUAGE plpgsql SET TimeZone = 'UTC' AS $$
DECLARE
    actor TEXT := task_api_actor();
BEGIN
    IF TG_OP = 'UPDATE' THEN
        PERFORM task_events_lock(NEW.user_id);
        INSERT INTO task_events (user_id, list_id, type, object, actor_id, changes)
        VALUES (NEW.user_id, NEW.list_id, 'member.updated', to_jsonb(NEW), actor,
                jsonb_build_object('role', jsonb_build_array(OLD.role, NEW.role)));
        RETURN NEW;
    END IF;
    IF TG_OP = 'INSERT' THEN
        PERFORM task_events_lock(NEW.member_id);
        PERFORM task_events_lock(NEW.user_id);
        INSERT INTO task_events
            (user_id, task_id, list_id, type, task, state, delivered_at, actor_id)
        SELECT NEW.member_id, t.id, t.list_id, 'access.granted',
               jsonb_set(to_jsonb(t) - 'subtask_count' - 'open_subtask_count', '{reminders}',
                         coalesce((SELECT r.reminders FROM task_member_reminders AS r
                                   WHERE r.user_id = t.user_id AND r.task_id = t.id
                                     AND r.member_id = NEW.member_id), '[]'::jsonb)),
               'delivered', clock_timestamp(), actor
        FROM tasks AS t
        WHERE t.user_id = NEW.user_id AND t.list_id = NEW.list_id;
        INSERT INTO task_events (user_id, list_id, type, object, actor_id)
        VALUES (NEW.user_id, NEW.list_id, 'member.added', to_jsonb(NEW), actor);
        RETURN NEW;
    END IF;
    -- The tombstones are written under the owner's lock only: a removal never waits for the
    -- member's lock (which the member's own write holds while it waits for the owner's: a
    -- lock-order deadlock). The feed's horizon counts them in the owner's space
    -- (`task_events_horizon`).
    PERFORM task_events_lock(OLD.user_id);
    -- No tombstones for a member that now owns the list (a transfer) or whose account is
    -- being deleted (its feed goes with it).
    IF NOT EXISTS (
        SELECT FROM task_lists AS l WHERE l.id = OLD.list_id AND l.user_id = OLD.member_id
    ) AND EXISTS (SELECT FROM users AS u WHERE u.id = OLD.member_id) THEN
        -- Its copies of the list's tasks go: no cursor shows the list's content once access
        -- has ended (a task granted in this list, or now in it).
        DELETE FROM task_events AS g
        WHERE g.user_id = OLD.member_id AND g.type = 'access.granted'
          AND (g.list_id = OLD.list_id OR g.task_id IN (
              SELECT t.id FROM tasks AS t WHERE t.user_id = OLD.user_id AND t.list_id = OLD.list_id
          ));
        INSERT INTO task_events (user_id, task_id, list_id, type, state, delivered_at, actor_id)
        SELECT OLD.member_id, t.id, OLD.list_id, 'access.ended',
               'delivered', clock_timestamp(), actor
        FROM tasks AS t
        WHERE t.user_id = OLD.user_id AND t.list_id = OLD.list_id;
    END IF;
    INSERT INTO task_events (user_id, list_id, type, object, actor_id)
    VALUES (OLD.user_id, OLD.list_id, 'member.removed', to_jsonb(OLD), actor);
    RETURN OLD;
END
$$;

-- The copies left by memberships that ended before this migration: a tombstone of the same task
-- came later and the member is no longer in the copy's list.
DELETE FROM task_events AS g
WHERE g.type = 'access.granted'
  AND EXISTS (
      SELECT FROM task_events AS e
      WHERE e.user_id = g.user_id AND e.task_id = g.task_id
        AND e.type = 'access.ended' AND e.id > g.id
  )
  AND NOT EXISTS (
      SELECT FROM list_members AS m WHERE m.list_id = g.list_id AND m.member_id = g.user_id
  );
