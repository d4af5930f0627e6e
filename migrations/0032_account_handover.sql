-- depends: 0031_assignees
-- Deleting an account (issue 39; specs/data-model.md, "Sharing"): each of its lists that has
-- other members is handed to the oldest admin, else the oldest editor, else the oldest other
-- member, before the account's rows go; a list nobody else is in goes with the account (the
-- foreign key's cascade, as before). The heir's membership row goes (an owner is not a
-- member); the list takes the last place among the heir's lists and, when the heir has a
-- list of that name already, the list's id after its name. Its tasks, memberships,
-- invitations and comments follow it to the heir's space (ON UPDATE CASCADE, 0029). The
-- account's other memberships go by their key's cascade, which unassigns it (0031); its
-- comments stay, with no author (0029).
CREATE FUNCTION users_hand_over_lists() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_list RECORD;
    v_heir TEXT;
    v_taken BOOLEAN;
BEGIN
    FOR v_list IN
        SELECT l.id, l.name, l.name_key FROM task_lists l
        WHERE l.user_id = OLD.id AND EXISTS (SELECT FROM list_members m WHERE m.list_id = l.id)
        ORDER BY l.id
        FOR UPDATE
    LOOP
        SELECT m.member_id INTO v_heir FROM list_members m
        WHERE m.list_id = v_list.id
        ORDER BY CASE m.role WHEN 'admin' THEN 0 WHEN 'editor' THEN 1 ELSE 2 END,
                 m.joined_at, m.member_id
        LIMIT 1;
        DELETE FROM list_members WHERE list_id = v_list.id AND member_id = v_heir;
        v_taken := EXISTS (
            SELECT FROM task_lists WHERE user_id = v_heir AND name_key = v_list.name_key
        );
        UPDATE task_lists
        SET user_id = v_heir,
            name = CASE WHEN v_taken
                THEN left(v_list.name, 80) || ' #' || v_list.id ELSE v_list.name END,
            name_key = CASE WHEN v_taken
                THEN left(v_list.name_key, 80) || ' #' || v_list.id ELSE v_list.name_key END,
            position = (SELECT coalesce(max(position), 0) + 65536 FROM task_lists
                        WHERE user_id = v_heir),
            version = version + 1,
            updated_at = now()
        WHERE id = v_list.id;
    END LOOP;
    RETURN OLD;
END
$$;
-- Named to fire after `users_admit_write` (BEFORE triggers fire in name order): a refused
-- request hands nothing over.
CREATE TRIGGER users_hand_over_lists BEFORE DELETE ON users
    FOR EACH ROW EXECUTE FUNCTION users_hand_over_lists();
