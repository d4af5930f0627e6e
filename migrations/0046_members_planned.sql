-- depends: 0045_stream_tickets
-- Reads pay for sharing only where there is sharing (issue 49). Every statement on the shared
-- tables carries the member arm of the access predicate (backend/db/scope.py `shared`), and
-- PostgreSQL planned it, its memberships' arrays and the listing's second page, for every
-- caller, members of nothing included: a listing's planning was 3x fa7e44b's.
--
-- `task_api_member_planned(caller)` says whether the caller is a member of any list. It is
-- declared IMMUTABLE so that the planner evaluates it while it plans a statement that names the
-- caller as a constant (psycopg2 sends every value as a literal): for a member of nothing the
-- member arm folds to false and is never planned, for a member to true and disappears. It is
-- not immutable (a membership can begin or end at any time), which is safe only because:
-- - no plan the app's statements get is kept (no PREPARE: psycopg2, and transaction poolers,
--   have none) and plpgsql's EXECUTE plans each time; a kept generic plan, where the caller is
--   a parameter, evaluates it at run time instead;
-- - it only ever removes access: false drops the member arm, true keeps the arm, whose
--   memberships' arrays are still read when the statement runs. A membership that begins
--   between planning and execution is seen by the caller's next statement, as if it had begun
--   just after this one ran; one that ends is enforced by the arrays.
-- Never use it in an index, a constraint, a view or a function body: there its value would
-- be kept.
CREATE FUNCTION task_api_member_planned(p_caller TEXT) RETURNS boolean
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
BEGIN
    RETURN EXISTS (SELECT FROM list_members WHERE member_id = p_caller);
END
$$;

-- 0035's outcome, in plpgsql: a SQL function is inlined, its body parsed and planned again in
-- every message that reads it (each request's last statement); plpgsql's is compiled once per
-- connection (0.03 ms of planning per request, issue 49).
CREATE OR REPLACE FUNCTION task_api_outcome(
    OUT task_api_hits INTEGER, OUT task_api_reset INTEGER,
    OUT task_api_refused TEXT, OUT task_api_reason TEXT, OUT task_api_replay JSONB,
    OUT task_api_route_hits INTEGER, OUT task_api_route_reset INTEGER
)
LANGUAGE plpgsql STABLE PARALLEL SAFE AS $$
BEGIN
    task_api_hits := nullif(current_setting('task_api.hits', true), '')::integer;
    task_api_reset := nullif(current_setting('task_api.reset', true), '')::integer;
    task_api_refused := nullif(current_setting('task_api.refused', true), '');
    task_api_reason := nullif(current_setting('task_api.reason', true), '');
    task_api_replay := nullif(current_setting('task_api.replay', true), '')::jsonb;
    task_api_route_hits := nullif(current_setting('task_api.route_hits', true), '')::integer;
    task_api_route_reset := nullif(current_setting('task_api.route_reset', true), '')::integer;
END
$$;
