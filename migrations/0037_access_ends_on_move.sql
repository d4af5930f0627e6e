-- depends: 0036_transfer_lock_order
-- A task moved out of a shared list (issue 39, "Losing access"; specs/events.md, "Gaining and
-- losing access"): each member of its old list that cannot read its new one (no list, a list
-- of the owner's own, a list the member is not in) gets an `access.ended` tombstone in its
-- feed, as a removal writes them (0030): in the member's space, recorded as delivered, under
-- the owner's change lock. The move itself stays one `updated` event in the owner's space (the
-- activity's, the outbox's), and the owner's feed sees it. A move writes each row of the
-- subtree (task_tree.py): its subtasks get theirs too. A task moved into a shared list needs
-- nothing here: its change carries the new list, which the members' feeds read (an upsert).
CREATE FUNCTION tasks_end_access_on_move() RETURNS trigger
LANGUAGE plpgsql SET TimeZone = 'UTC' AS $$
BEGIN
    -- Held already by a request's write (its entry, or the space lock of a member's write);
    -- taken here for any other writer, before the tombstones take their ids.
    PERFORM task_events_lock(OLD.user_id);
    INSERT INTO task_events (user_id, task_id, list_id, type, state, delivered_at, actor_id)
    SELECT m.member_id, OLD.id, OLD.list_id, 'access.ended',
           'delivered', clock_timestamp(), task_api_actor()
    FROM list_members AS m
    WHERE m.list_id = OLD.list_id
      AND NOT EXISTS (
          SELECT FROM list_members AS n WHERE n.list_id = NEW.list_id AND n.member_id = m.member_id
      );
    RETURN NULL;
END
$$;
-- Only a change of list out of one: every other write to `tasks` skips it by the WHEN
-- (tests/test_write_costs.py).
CREATE TRIGGER tasks_end_access_on_move AFTER UPDATE OF list_id ON tasks
    FOR EACH ROW WHEN (OLD.list_id IS NOT NULL AND OLD.list_id IS DISTINCT FROM NEW.list_id)
    EXECUTE FUNCTION tasks_end_access_on_move();
