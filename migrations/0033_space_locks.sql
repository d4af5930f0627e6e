-- depends: 0032_account_handover
-- Lock order for shared lists (issue 39). A request takes its caller's change lock when it
-- enters (0008, 0014); a write to another owner's space takes that owner's lock too, in the
-- recording trigger, which fires after the row's lock. An owner's own write takes the two in
-- the other order (its lock at entry, then the row), so a member and the owner writing the
-- same row could deadlock. A member's write therefore takes the space's lock in the statement's
-- WHERE (`task_api_lock_space(<row>.user_id)`, evaluated on the row it found, before the row
-- is locked): space lock, then row lock, as the owner's write does.
CREATE FUNCTION task_api_lock_space(p_owner TEXT) RETURNS boolean
LANGUAGE sql VOLATILE PARALLEL UNSAFE COST 1000 AS $$
    SELECT true FROM (SELECT task_events_lock(p_owner)) AS locked
$$;
