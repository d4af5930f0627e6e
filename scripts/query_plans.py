"""EXPLAIN the task listing queries, the subtree read and moves on a large synthetic data set.

    python scripts/query_plans.py --users 10000 --tasks 1000000 > specs/query-plans.md

Seeds a scratch database (`task_api_plans`, dropped and re-created on the server named by
DATABASE_URL, or on an embedded server in .data/plans-postgres): tasks, then lists and
subtasks made from them, then memberships of other users' lists, the caller's among them
(scripts/seeding.py). Then prints EXPLAIN (ANALYZE, BUFFERS) of the exact SQL the service
builds for several filter/sort combinations of the listing (`task_statements.listing`: the
caller's own tasks and the shared lists', a shared list's page as a member), for a subtree
read, for moves (`task_tree.move_statement`), for a shared task read (`GET`) and written
(`updating`, a PATCH) as a member, and for the lists (`lists.ALL_LISTS`), as Markdown; a write is
explained inside a transaction that is rolled back.
The report is of a full trash (`FILL_TRASH`: every top-level task's subtree kept in `task_trash`,
as if each had been deleted) with every plan's shape compared to its shape before the trash
was filled, and of the change feed's page and position with a change recorded for every task.
tests/test_query_plans.py uses the same pieces on a smaller set to fail on any sequential scan
of `tasks`, `list_members` or `task_lists`, and the statements that read `task_events`
(`EVENT_STATEMENTS`, in the outbox's two states `EVENT_STATES`) to show that every index of
`task_events`, which every task write maintains, is one some plan reads.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, create_engine, select, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from backend.contracts.tasks import move_placement
from backend.db.engine import libpq_url, normalize_url
from backend.db.migrations import migrate_up
from backend.db.scope import OWNER
from backend.events import outbox
from backend.models import Priority, SortOrder, TaskSort, TaskStatus
from backend.models.task_ops import TaskMove
from backend.services.history import activity, changes
from backend.services.sharing.lists import ALL_LISTS as LISTS
from backend.services.statements.task_tree import Placement
from backend.services.tasks.task_listing import NONE, Keyset, TaskFilters, TaskListQuery
from backend.services.tasks.task_statements import GET, SUBTREE, listing, move_statements, updating
from scripts.seeding import seed, seed_shares, seed_tree

CALLER = "user-42"
# How many other users' Inbox lists (30 tasks each) the caller is a member of
# (`seeding.seed_shares`), besides the one membership every user has.
CALLER_SHARES = 15
LATER = datetime.now(UTC) + timedelta(days=7)


@dataclass(frozen=True)
class Rows:
    """The caller's rows the tree's statements name (their ids are the database's)."""

    list_id: int  # the caller's list with the most tasks
    other_list_id: int  # another of its lists
    parent_id: int  # the task in `list_id` with the most subtasks
    first_id: int  # the first and the last top-level task of `list_id`, in manual order
    last_id: int
    shared_list_id: int  # the list of another owner's with the most tasks the caller edits
    shared_task_id: int  # a task in it


# name -> the listing it stands for (each a query a frontend really sends); one that names
# the caller's list or task is built from their ids.
COMBINATIONS: dict[str, TaskListQuery | Callable[[Rows], TaskListQuery]] = {
    "default: newest first, own tasks and shared lists' (both arms)": TaskListQuery(),
    "pending, by title, second page": TaskListQuery(
        filters=TaskFilters(status=TaskStatus.pending),
        sort=TaskSort.title,
        after=Keyset(key="task 5", id=5),
    ),
    "tag + priority, by due date": TaskListQuery(
        filters=TaskFilters(tags=("work",), priorities=(Priority.high, Priority.medium)),
        sort=TaskSort.due_date,
    ),
    "overdue, most important first": TaskListQuery(
        filters=TaskFilters(overdue=True), sort=TaskSort.priority
    ),
    "search, recently updated": TaskListQuery(
        filters=TaskFilters(q="invoice"), sort=TaskSort.updated, order=SortOrder.desc
    ),
    "due this week, polling since": TaskListQuery(
        filters=TaskFilters(due_before=LATER, updated_since=datetime.now(UTC) - timedelta(days=1)),
        sort=TaskSort.created,
    ),
    "a list's page: its top level in manual order": lambda rows: TaskListQuery(
        filters=TaskFilters(list_id=rows.list_id, parent_id=NONE), sort=TaskSort.position
    ),
    "a task's subtasks in manual order": lambda rows: TaskListQuery(
        filters=TaskFilters(parent_id=rows.parent_id), sort=TaskSort.position
    ),
    "a shared list's page, as a member: its top level in manual order": lambda rows: TaskListQuery(
        filters=TaskFilters(list_id=rows.shared_list_id, parent_id=NONE),
        sort=TaskSort.position,
    ),
    "a shared list's page, as a member: newest first": lambda rows: TaskListQuery(
        filters=TaskFilters(list_id=rows.shared_list_id)
    ),
}


def _patch(task_id: int, values: dict[str, Any]) -> tuple[Any, dict[str, Any], bool]:
    """The UPDATE a PATCH of these fields sends (`updating`, built once per shape), its
    values."""
    bound = updating(values)
    return bound.statement, {"task_id": task_id, **bound.values}, True


def _move(task_id: int, body: TaskMove) -> tuple[Any, dict[str, Any], bool]:
    """The statement `TaskService.move` sends for this request (no If-Match), its values."""
    placement: Placement = move_placement(body)
    statement, _ = move_statements(placement.shape, False)
    return statement, {"task_id": task_id, **placement.values()}, True


# name -> (statement, its values, whether it writes): what a route sends, naming the caller's
# rows: the subtree read (`GET /api/tasks/{id}/subtree`) and moves (`POST .../move`).
STATEMENTS: dict[str, Callable[[Rows], tuple[Any, dict[str, Any], bool]]] = {
    "a subtree: the task and its subtasks, depth-first": lambda rows: (
        SUBTREE,
        {"task_id": rows.parent_id},
        False,
    ),
    "a move: after a sibling, in the same list (drag and drop)": lambda rows: _move(
        rows.last_id, TaskMove(after_id=rows.first_id)
    ),
    "a move: to another list, with its subtasks": lambda rows: _move(
        rows.parent_id, TaskMove(list_id=rows.other_list_id)
    ),
    "a shared task by id, as a member (GET)": lambda rows: (
        GET,
        {"task_id": rows.shared_task_id},
        False,
    ),
    "a PATCH of a shared task, as an editor": lambda rows: _patch(
        rows.shared_task_id, {"title": "Renamed", "priority": Priority.high}
    ),
    "the lists, own and shared, with their counts": lambda rows: (LISTS, {}, False),
}

ROWS_SQL = text(
    """
    WITH mine AS (SELECT id, list_id, parent_id, position FROM tasks WHERE user_id = :caller),
    chosen AS (
        SELECT list_id FROM mine WHERE list_id IS NOT NULL
        GROUP BY list_id ORDER BY count(*) DESC, list_id LIMIT 1
    ),
    top AS (
        SELECT id, position FROM mine
        WHERE list_id = (SELECT list_id FROM chosen) AND parent_id IS NULL
    )
    SELECT (SELECT list_id FROM chosen),
           (SELECT min(list_id) FROM mine WHERE list_id <> (SELECT list_id FROM chosen)),
           (SELECT parent_id FROM mine
            WHERE parent_id IN (SELECT id FROM top)
            GROUP BY parent_id ORDER BY count(*) DESC, parent_id LIMIT 1),
           (SELECT id FROM top ORDER BY position LIMIT 1),
           (SELECT id FROM top ORDER BY position DESC LIMIT 1)
    """
)


# The list shared with the caller, editor or admin, with the most tasks, and its first task.
SHARED_ROWS_SQL = text(
    """
    WITH chosen AS (
        SELECT m.user_id, m.list_id FROM list_members AS m
        JOIN tasks AS t ON t.user_id = m.user_id AND t.list_id = m.list_id
        WHERE m.member_id = :caller AND m.role IN ('editor', 'admin')
        GROUP BY m.user_id, m.list_id ORDER BY count(*) DESC, m.list_id LIMIT 1
    )
    SELECT chosen.list_id,
           (SELECT min(t.id) FROM tasks AS t
            WHERE t.user_id = chosen.user_id AND t.list_id = chosen.list_id)
    FROM chosen
    """
)


def caller_rows(conn: Connection) -> Rows:
    values = conn.execute(ROWS_SQL, {"caller": CALLER}).one()
    if None in values:
        raise RuntimeError(f"{CALLER} has no list with subtasks: run seed_tree first")
    shared = conn.execute(SHARED_ROWS_SQL, {"caller": CALLER}).first()
    if shared is None or None in shared:
        raise RuntimeError(f"{CALLER} edits no shared list with tasks: run seed_shares first")
    return Rows(*values, *shared)


def plans(conn: Connection, rows: Rows) -> dict[str, tuple[str, bool]]:
    """name -> (the SQL, as sent, with its values inlined; whether it writes), in order."""
    listed = {
        name: (listing_sql(query if isinstance(query, TaskListQuery) else query(rows)), False)
        for name, query in COMBINATIONS.items()
    }
    sent = {name: build(rows) for name, build in STATEMENTS.items()}
    return listed | {
        name: (
            write_sql(conn, statement, values) if writes else statement_sql(statement, values),
            writes,
        )
        for name, (statement, values, writes) in sent.items()
    }


def listing_sql(query: TaskListQuery, user_id: str = CALLER) -> str:
    return statement_sql(listing(query.shape()), query.values(), user_id)


def statement_sql(
    statement: Any, values: dict[str, Any] | None = None, user_id: str = CALLER
) -> str:
    """A SELECT with its values written in. The caller is bound when the service runs a
    statement (`Scoped._run`); here too."""
    statement = statement.params({OWNER: user_id, **(values or {})})
    return str(
        statement.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True})
    )


def write_sql(
    conn: Connection, statement: Any, values: dict[str, Any], user_id: str = CALLER
) -> str:
    """An UPDATE (which has no `params()`) with its values written in by the driver, as it
    sends them: they are the ids and the caller (no type needs SQLAlchemy's processing)."""
    compiled = statement.compile(dialect=conn.dialect)
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        text = cursor.mogrify(
            compiled.string, compiled.construct_params({OWNER: user_id, **values})
        )
    finally:
        cursor.close()
    return str(text.decode())


def _explained(conn: Connection, sql: str, options: str, *, writes: bool) -> list[Any]:
    """EXPLAIN's rows, on an AUTOCOMMIT connection; a write in a transaction rolled back (so
    ANALYZE, which runs it, changes nothing)."""
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        if writes:
            cursor.execute("BEGIN")
        # An empty parameter dict makes psycopg2 unescape the compiler's %% back to %.
        cursor.execute(f"EXPLAIN ({options}) {sql}", {})
        return [row[0] for row in cursor.fetchall()]
    finally:
        if writes:
            cursor.execute("ROLLBACK")
        cursor.close()


def explain(conn: Connection, sql: str, *, writes: bool = False) -> Any:
    return _explained(conn, sql, "FORMAT JSON", writes=writes)[0][0]


def task_scans(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every plan node that reads the tasks table or one of its indexes."""
    if node.get("Relation Name") == "tasks" or str(node.get("Index Name", "")).startswith(
        ("ix_tasks", "uq_tasks", "pk_tasks")
    ):
        yield node
    for child in node.get("Plans", []):
        yield from task_scans(child)


def indexes_read(node: dict[str, Any]) -> Iterator[str]:
    """The name of every index a plan reads (of tasks, list_members, task_lists)."""
    if "Index Name" in node:
        yield str(node["Index Name"])
    for child in node.get("Plans", []):
        yield from indexes_read(child)


# The tables the access predicate reads besides tasks: a sequential scan of either is a read
# of every user's memberships or lists.
SHARING_TABLES = ("list_members", "task_lists")


def sequential_scans(node: dict[str, Any]) -> Iterator[str]:
    """The table of every sequential scan of `SHARING_TABLES` in a plan."""
    if node["Node Type"] == "Seq Scan" and node.get("Relation Name") in SHARING_TABLES:
        yield str(node["Relation Name"])
    for child in node.get("Plans", []):
        yield from sequential_scans(child)


def problems(name: str, plan: dict[str, Any]) -> list[str]:
    """What is wrong with a plan: no read of tasks at all, a sequential scan of tasks (or of
    `SHARING_TABLES`), or an index scan of tasks not bounded by the caller's user_id (the
    member arm's is bounded by the owners of the caller's lists, `user_id = ANY(...)`). A
    primary-key lookup (one task by its id, e.g. the moved task or the next level of a
    subtree) is bounded by the key: it reads one row, which must then pass a user_id filter."""
    scans = list(task_scans(plan["Plan"]))
    found = [] if scans else [f"{name}: no scan of tasks in {plan}"]
    found += [f"{name}: sequential scan of {table}" for table in sequential_scans(plan["Plan"])]
    for node in scans:
        if node["Node Type"] == "Seq Scan":
            found.append(f"{name}: sequential scan of tasks")
        index_scan = node["Node Type"] in {"Index Scan", "Index Only Scan", "Bitmap Index Scan"}
        if not index_scan or "user_id" in node.get("Index Cond", ""):
            continue
        one_row = node.get("Index Name") == "pk_tasks" and node["Index Cond"].startswith("(id = ")
        if not (one_row and "user_id" in node.get("Filter", "")):
            found.append(f"{name}: {node.get('Index Name')} not bounded by user_id")
    return found


class _Recorder:
    """A stand-in connection that keeps the statement an outbox function sends."""

    def __init__(self) -> None:
        self.sent: list[Any] = []

    def execute(self, statement: Any, values: Any = None) -> Any:
        self.sent.append(statement.params(values) if values else statement)
        return self

    rowcount = 0

    def all(self) -> list[Any]:
        return []

    def one(self) -> tuple[Any, ...]:
        return (0, None, 0, None)


def _sent(call: Callable[[Any], Any]) -> Any:
    recorder = _Recorder()
    call(recorder)
    return recorder.sent[0]


def _literal(statement: Any) -> str:
    compiled = statement.compile(
        dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}
    )
    return str(compiled)


# name -> the SQL of a statement that reads `task_events`, exactly as its module builds it
# (the outbox's functions run against a stand-in that keeps what they send; the feed's
# statements are module constants), with sample values; the trigger and the reminders only
# INSERT (no read).
EVENT_STATEMENTS: dict[str, Callable[[], str]] = {
    "the worker leases a batch": lambda: _literal(
        _sent(lambda c: outbox.lease(c, 100, 60, ["dapr", "hook"], 10))
    ),
    "a batch delivered": lambda: _literal(
        _sent(lambda c: outbox.delivered(c, [(5, 1, ["dapr"]), (6, 2, ["dapr", "hook"])]))
    ),
    "a failed attempt": lambda: _literal(
        _sent(
            lambda c: outbox.failed(
                c, 5, attempts=1, accepted_by=["dapr"], error="down", retry_in=timedelta(seconds=5)
            )
        )
    ),
    "the backlog gauges": lambda: _literal(_sent(outbox.backlog)),
    "the dead letters": lambda: _literal(_sent(lambda c: outbox.dead_letters(c, 50))),
    "requeue the dead": lambda: _literal(_sent(lambda c: outbox.requeue(c, None))),
    "the change feed's page": lambda: statement_sql(changes._PAGE, {"after": 5, "limit": 101}),
    "a listing's feed position": lambda: statement_sql(select(changes.latest_position())),
    "a CalDAV list's sync page": lambda: statement_sql(
        changes._COLLECTION_PAGES[False], {"after": 5, "limit": 5001, "collection": 1}
    ),
    "a CalDAV sync of the tasks in no list": lambda: statement_sql(
        changes._COLLECTION_PAGES[True], {"after": 5, "limit": 5001}
    ),
    "a CalDAV list's sync token": lambda: statement_sql(
        changes._heads(1, False), {"collection_0": 1}
    ),
    "a CalDAV sync token of the tasks in no list": lambda: statement_sql(changes._heads(0, True)),
    "the activity's page": lambda: statement_sql(activity._PAGE, {"before": None, "limit": 51}),
    "a list's activity page": lambda: statement_sql(
        activity._LIST_PAGE, {"list_id": 1, "before": None, "limit": 51}
    ),
    "prune delivered changes": lambda: _literal(
        changes._PRUNE_DELIVERED.bindparams(hours=72, batch=1000)
    ),
    "prune all changes": lambda: _literal(changes._PRUNE_ANY.bindparams(hours=72, batch=1000)),
}

# A change for every task and list (the seed writes its rows with the triggers off), then
# the outbox's two states (every 1000th record dead, the oldest a week old): in health a few
# hundred records wait; after a sink's outage every record does, and the claim's "no earlier
# pending record of this task" is then a lookup per record, not a hash of them all.
EVENT_SEED = (
    "INSERT INTO task_events (user_id, task_id, type, task) "
    "SELECT user_id, id, 'created', '{}'::jsonb FROM tasks",
    "INSERT INTO task_events (user_id, list_id, type, list) "
    "SELECT user_id, id, 'list.created', '{}'::jsonb FROM task_lists",
)
# `last`: the newest id, read by a statement of its own: joined to its own table's max(id), the
# UPDATE was planned from whatever statistics the table last had, and in one CI run it did not
# end in 290 s (here the whole test takes 4 s).
EVENT_STATES = {
    "healthy": "UPDATE task_events SET state = CASE WHEN id %% 1000 = 0 THEN 'dead' "
    "WHEN id > %(last)s - 300 THEN 'pending' ELSE 'delivered' END, "
    "occurred_at = clock_timestamp() - make_interval(secs => (%(last)s - id) * 15)",
    "a backlog": "UPDATE task_events SET state = CASE WHEN id %% 1000 = 0 THEN 'dead' "
    "ELSE 'pending' END",
}


def event_indexes(node: dict[str, Any]) -> Iterator[str]:
    """The name of every index of `task_events` a plan reads."""
    name = str(node.get("Index Name", ""))
    if name.startswith(("ix_task_events_", "uq_task_events_")) or name == "pk_task_events":
        yield name
    for child in node.get("Plans", []):
        yield from event_indexes(child)


def event_plans(conn: Connection, *, seed: bool = True) -> dict[tuple[str, str], Any]:
    """(state, statement) -> its plan (EXPLAIN, FORMAT JSON): the changes (`seed`) and each
    state made, and their statistics gathered, in a transaction rolled back afterwards
    (`conn`: AUTOCOMMIT), so no worker of another test sees them."""
    found: dict[tuple[str, str], Any] = {}
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        for state, update in EVENT_STATES.items():
            cursor.execute("BEGIN")
            try:
                # A refusal left set on this session (a request's, or a statement explained
                # before) would skip the inserts (migration 0020's admit trigger).
                cursor.execute("SELECT set_config('task_api.refused', '', true)")
                for insert in EVENT_SEED if seed else ():
                    cursor.execute(insert)
                    if cursor.rowcount <= 0:
                        raise RuntimeError(f"no change written by {insert}")
                cursor.execute("SELECT max(id) FROM task_events")
                cursor.execute(update, {"last": cursor.fetchone()[0]})  # type: ignore[index]
                cursor.execute("ANALYZE task_events")
                for name, sql in EVENT_STATEMENTS.items():
                    cursor.execute(f"EXPLAIN (FORMAT JSON) {sql()}", {})
                    found[(state, name)] = cursor.fetchone()[0][0]  # type: ignore[index]
            finally:
                cursor.execute("ROLLBACK")
    finally:
        cursor.close()
    return found


# The trash as full as it can be (issue 53): a trashed copy of every top-level task with its
# subtree's snapshot, under an id no task has (`tasks` keeps its rows, so each plan reads the
# same tasks with and without it, and only the trash's presence differs).
FILL_TRASH = (
    "INSERT INTO task_trash (id, user_id, list_id, title, deleted_by, snapshot) "
    "SELECT t.id + 1000000000, t.user_id, t.list_id, t.title, t.user_id, s.snapshot "
    "FROM tasks AS t "
    "JOIN task_trash_snapshots(array(SELECT id FROM tasks WHERE parent_id IS NULL)) "
    "AS s ON s.root_id = t.id"
)
# The feed's statements a listing's reader depends on, reported beside the listings.
FEED_STATEMENTS = ("the change feed's page", "a listing's feed position")


def plan_shape(node: dict[str, Any]) -> tuple[Any, ...]:
    """A plan's shape: each node's type and what it reads, not its costs or row estimates."""
    return (
        node["Node Type"],
        node.get("Relation Name"),
        node.get("Index Name"),
        tuple(plan_shape(child) for child in node.get("Plans", ())),
    )


def report_plans(conn: Connection) -> dict[str, tuple[str, bool]]:
    """name -> (SQL, writes): `plans`, and the feed's (`FEED_STATEMENTS`)."""
    feed = {name: (EVENT_STATEMENTS[name](), False) for name in FEED_STATEMENTS}
    return plans(conn, caller_rows(conn)) | feed


def shapes(conn: Connection) -> dict[str, tuple[Any, ...]]:
    return {
        name: plan_shape(explain(conn, sql, writes=writes)["Plan"])
        for name, (sql, writes) in report_plans(conn).items()
    }


def explain_text(conn: Connection, sql: str, *, writes: bool = False) -> str:
    return "\n".join(_explained(conn, sql, "ANALYZE, BUFFERS", writes=writes))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--tasks", type=int, default=1_000_000)
    parser.add_argument("--reuse", action="store_true", help="keep an already seeded database")
    args = parser.parse_args()

    server = os.environ.get("DATABASE_URL")
    if not server:
        from backend.db.embedded import start_embedded_postgres

        server = start_embedded_postgres(Path(".data/plans-postgres"))
    url = make_url(libpq_url(server)).set(database="task_api_plans")
    admin = create_engine(normalize_url(server), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        exists = conn.scalar(text("SELECT 1 FROM pg_database WHERE datname = 'task_api_plans'"))
        if not (args.reuse and exists):
            conn.execute(text("DROP DATABASE IF EXISTS task_api_plans WITH (FORCE)"))
            conn.execute(text("CREATE DATABASE task_api_plans"))
            exists = None
    admin.dispose()
    plans_url = url.render_as_string(hide_password=False)
    engine = create_engine(normalize_url(plans_url))
    if not exists:
        migrate_up(plans_url)
        started = time.monotonic()
        with engine.begin() as conn:
            seed(conn, args.users, args.tasks)
            seed_tree(conn)
            seed_shares(conn, args.users, CALLER, CALLER_SHARES)
            for insert in EVENT_SEED:
                conn.execute(text(insert))
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE tasks"))  # seed_tree's UPDATE left dead rows
            for table in ("task_lists", "list_members", "task_events"):
                conn.execute(text(f"VACUUM ANALYZE {table}"))
        print(f"<!-- seeded in {time.monotonic() - started:.0f} s -->", file=sys.stderr)

    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("TRUNCATE task_trash"))  # a reused database's last run filled it
        conn.execute(text("ANALYZE task_trash"))
        before = shapes(conn)
        conn.execute(text(FILL_TRASH))
        conn.execute(text("VACUUM ANALYZE task_trash"))
        trashed = conn.scalar(text("SELECT count(*) FROM task_trash"))
        changed = sorted(name for name, shape in shapes(conn).items() if before[name] != shape)

    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        version = conn.scalar(text("SHOW server_version"))
        explained = {
            name: (sql, writes, explain(conn, sql, writes=writes))
            for name, (sql, writes) in report_plans(conn).items()
        }
        found = [
            p
            for name, (_, _, plan) in explained.items()
            if name not in FEED_STATEMENTS
            for p in problems(name, plan)
        ]
        found += [f"{name}: another plan with the trash full" for name in changed]
        members = conn.scalar(text("SELECT count(*) FROM list_members"))
        verdict = (
            "every plan reads tasks through an index, only the caller's entries and those of "
            "the lists shared with it (no `Seq Scan` on tasks, list_members or task_lists; a "
            "primary-key lookup reads the one task it names, checked to be the caller's or a "
            "shared list's)"
            if not found
            else "PROBLEMS: " + "; ".join(found)
        )
        print(f"# Query plans at {args.tasks:,} tasks across {args.users:,} users\n")
        print(
            f"PostgreSQL {version}; caller `{CALLER}` owns about "
            f"{args.tasks // args.users} tasks: 3 in 10 in no list, the rest in its 3 lists; 4 in "
            "10 are subtasks, up to two levels down (`scripts/seeding.py`). "
            f"{members:,} memberships: every user is a member of another user's Work list "
            f"(roles in turn), and `{CALLER}` also of {CALLER_SHARES} other users' Inbox lists "
            "(30 tasks each; editor of two in three, viewer of the rest). "
            f"Generated by `scripts/query_plans.py --users {args.users} --tasks {args.tasks}` "
            f"on {datetime.now(UTC):%Y-%m-%d}: the task listings (each two arms: the caller's "
            "own tasks and the shared lists'), a subtree read, two moves and a PATCH (each run "
            "inside a transaction rolled back), a task read by id and the lists, the exact SQL "
            f"the service sends; {verdict}. With the trash full ({trashed:,} trashed tasks: "
            "every top-level task's subtree kept in `task_trash`, `FILL_TRASH`), each plan "
            "has the shape it had before the trash was filled (node types and the relations "
            "and indexes read, compared in this run); the change feed's page and a listing's "
            "feed position are read with a change recorded for every task and list.\n"
        )
        for name, (sql, writes, plan) in explained.items():
            scans = sorted(set(indexes_read(plan["Plan"])))
            print(f"## {name}\n\nIndexes: {', '.join(f'`{s}`' for s in scans)}\n")
            print(f"```sql\n{sql}\n```\n")
            print(f"```\n{explain_text(conn, sql, writes=writes)}\n```\n")
    engine.dispose()
    print(json.dumps({"done": True, "problems": found}), file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    raise SystemExit(main())
