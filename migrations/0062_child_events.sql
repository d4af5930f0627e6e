-- depends: 0058_app_passwords
-- A task's children record their events from the registry (issue 60; specs/data-model.md, "A
-- task's children"; specs/events.md, "A task's children's events"): one trigger function,
-- `task_children_record_event`, records a child row added, changed and removed as an event on
-- its task, `<noun>.created`, `<noun>.updated` (`changes`: the edited columns' old and new
-- values) and `<noun>.deleted`, the row in `object`, in the task's owner's space under its
-- change lock, the task's list in `list_id` (the access relation a member reads it through).
-- Comments were the one child with events (0030's `task_comments_record_event`): they keep
-- their types, rows and triggers' names, now made by the registry. A child's migration
-- registers itself with `CALL task_children_register('<table>', '<noun>', ARRAY['<column
-- a client edits>', ...])` (no noun: it records no events, as members' own reminders, which
-- are private to their member), which adds its `task_children` row and creates its triggers.

ALTER TABLE task_children
    -- The noun of its events (`<noun>.created`, ...), one child's only; NULL: it records none.
    ADD COLUMN noun TEXT CONSTRAINT uq_task_children_noun UNIQUE,
    -- The columns whose change is recorded (`<noun>.updated`); none: only added and removed.
    ADD COLUMN edits TEXT[] NOT NULL DEFAULT '{}';

-- Any child's event: a type of its own noun, constrained by its shape (a noun that is no other
-- kind's, `task_children_register` checks), naming its task and holding the row (and the task
-- as the child's change found it: NULL when it went with its task).
ALTER TABLE task_events
    DROP CONSTRAINT ck_task_events_type,
    DROP CONSTRAINT ck_task_events_task_present,
    ADD CONSTRAINT ck_task_events_type CHECK (type IN (
        'created', 'updated', 'completed', 'reopened', 'deleted', 'reminder',
        'list.created', 'list.updated', 'list.deleted',
        'member.added', 'member.updated', 'member.removed',
        'invitation.created', 'invitation.revoked', 'invitation.accepted',
        'access.granted', 'access.ended'
    ) OR type ~ '^[a-z][a-z_]*\.(created|updated|deleted)$'),
    ADD CONSTRAINT ck_task_events_task_present CHECK (
        CASE
            WHEN type IN ('created', 'updated', 'completed', 'reopened', 'deleted')
                THEN task_id IS NOT NULL AND list IS NULL AND object IS NULL
                    AND (type = 'deleted') = (task IS NULL)
            WHEN type = 'reminder'
                THEN task_id IS NOT NULL AND task IS NOT NULL AND list_id IS NULL
                    AND list IS NULL AND object IS NULL
            WHEN type LIKE 'list.%'
                THEN task_id IS NULL AND task IS NULL AND object IS NULL
                    AND list_id IS NOT NULL AND (type = 'list.deleted') = (list IS NULL)
            WHEN type LIKE 'member.%' OR type LIKE 'invitation.%'
                THEN task_id IS NULL AND task IS NULL AND list IS NULL
                    AND list_id IS NOT NULL AND object IS NOT NULL
            WHEN type LIKE 'access.%'
                THEN task_id IS NOT NULL AND list_id IS NOT NULL AND list IS NULL
                    AND object IS NULL AND (type = 'access.ended') = (task IS NULL)
            ELSE task_id IS NOT NULL AND list IS NULL AND object IS NOT NULL
        END
    );

-- A child row's event (0030's comment event, for any child): the trigger's first argument is
-- the noun, the others the edited columns (an update records those that changed). The list is
-- the row's own copy where it keeps one (comments: a deleted task's cascade still has it),
-- else its task's. The task, as the change found it, rides in `task`: the change feed serves
-- a child's event as an upsert of its (unchanged) task, so a client that drops a task on a
-- null `task` (a deletion, a tombstone) keeps it; NULL when the task is gone (its deletion's
-- cascade), which its own `deleted` follows.
CREATE FUNCTION task_children_record_event() RETURNS trigger
LANGUAGE plpgsql SET TimeZone = 'UTC' AS $$
DECLARE
    v_row JSONB;
    v_task JSONB;
    v_list BIGINT;
    v_was JSONB;
    v_changes JSONB;
BEGIN
    IF TG_OP = 'DELETE' THEN
        v_row := to_jsonb(OLD);
    ELSE
        v_row := to_jsonb(NEW);
    END IF;
    PERFORM task_events_lock(v_row ->> 'user_id');
    SELECT to_jsonb(t) - 'subtask_count' - 'open_subtask_count', t.list_id INTO v_task, v_list
    FROM tasks t
    WHERE t.user_id = v_row ->> 'user_id' AND t.id = (v_row ->> 'task_id')::BIGINT;
    IF v_row ? 'list_id' THEN
        v_list := (v_row ->> 'list_id')::BIGINT;
    END IF;
    IF TG_OP = 'UPDATE' THEN
        v_was := to_jsonb(OLD);
        SELECT jsonb_object_agg(c.name, jsonb_build_array(v_was -> c.name, v_row -> c.name))
        INTO v_changes
        FROM unnest(TG_ARGV[1:TG_NARGS - 1]) AS c(name)
        WHERE v_was -> c.name IS DISTINCT FROM v_row -> c.name;
    END IF;
    INSERT INTO task_events (user_id, task_id, list_id, type, task, object, actor_id, changes)
    VALUES (v_row ->> 'user_id', (v_row ->> 'task_id')::BIGINT, v_list,
            TG_ARGV[0] || CASE TG_OP WHEN 'INSERT' THEN '.created' WHEN 'UPDATE' THEN '.updated'
                                     ELSE '.deleted' END,
            v_task, v_row, task_api_actor(), v_changes);
    RETURN NULL;
END
$$;

-- A child's registration, called by its migration: its row in the registry (the trash's
-- snapshot and restore, a move, read it: 0052, 0053) and, for a noun, its event triggers,
-- `<table>_record_event` (added, removed) and `<table>_record_event_on_update` (a change of
-- an edited column, when its value changed).
-- A procedure: `CALL` returns no rows, so a migration runner prints nothing for it.
CREATE PROCEDURE task_children_register(
    p_name TEXT, p_noun TEXT DEFAULT NULL, p_edits TEXT[] DEFAULT '{}'
)
LANGUAGE plpgsql AS $$
BEGIN
    IF p_noun !~ '^[a-z][a-z_]*$'
       OR p_noun IN ('task', 'reminder', 'list', 'member', 'invitation', 'access') THEN
        RAISE EXCEPTION 'task_children_register: % may not name a child''s events', p_noun;
    END IF;
    INSERT INTO task_children (name, noun, edits) VALUES (p_name, p_noun, p_edits);
    IF p_noun IS NULL THEN
        RETURN;
    END IF;
    EXECUTE format(
        'CREATE TRIGGER %I AFTER INSERT OR DELETE ON %I'
        ' FOR EACH ROW EXECUTE FUNCTION task_children_record_event(%L)',
        p_name || '_record_event', p_name, p_noun
    );
    IF cardinality(p_edits) > 0 THEN
        EXECUTE format(
            'CREATE TRIGGER %I AFTER UPDATE OF %s ON %I FOR EACH ROW WHEN (%s)'
            ' EXECUTE FUNCTION task_children_record_event(%L, %s)',
            p_name || '_record_event_on_update',
            (SELECT string_agg(format('%I', c), ', ') FROM unnest(p_edits) AS c),
            p_name,
            (SELECT string_agg(format('OLD.%1$I IS DISTINCT FROM NEW.%1$I', c), ' OR ')
             FROM unnest(p_edits) AS c),
            p_noun,
            (SELECT string_agg(format('%L', c), ', ') FROM unnest(p_edits) AS c)
        );
    END IF;
END
$$;

-- Comments, registered again: the same triggers, from the registry.
DROP TRIGGER task_comments_record_event ON task_comments;
DROP TRIGGER task_comments_record_event_on_update ON task_comments;
DROP FUNCTION task_comments_record_event();
DELETE FROM task_children WHERE name = 'task_comments';
CALL task_children_register('task_comments', 'comment', ARRAY['body']);
