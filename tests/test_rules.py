"""The database's rules, named in the services (issue 37, item 3; services/statements/rules.py).

Every declared rule names triggers and cascading keys that exist in the migrated database;
every trigger and cascading key there is a rule's or plumbing with its reason, so a new
trigger fails here until someone names it. Then, derived rather than listed, what requests
fire: every write route is requested (or `NOT_REQUESTED` says why not) with a spy trigger
beside every rule's trigger (same table, events, columns and WHEN), a spy on every cascading
key, and a profile hook that sees which `@fires` methods the request walked. What fired must
be named by a method the request walked, and every rule a method names must fire in some
request that walks it. The granularity is the request: two methods one request walks (a chat
turn's question and answer) can hide each other's missing name. Last, the table in
specs/statements.md is the declarations'.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
import sys
import threading
from collections.abc import Callable, Iterator
from fnmatch import fnmatch
from types import CodeType, FrameType
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Connection, Engine, text

import backend.services
from backend.config import Settings
from backend.main import create_app
from backend.models.task_children import CHILDREN
from backend.services.statements.rules import PLUMBING, RULES, DatabaseRule
from tests.api.test_app_passwords import basic, create
from tests.chat import fake_model
from tests.chat.conftest import chat_settings
from tests.chat.fake_model import FakeModel, Reply
from tests.conftest import ROOT, Account, api_routes
from tests.resources import (
    LIST,
    LIST_REF,
    REF,
    TASK,
    body_model,
    body_of,
    creators,
    fill_path,
    fill_sample,
    in_state,
    make_row,
    path_parameters,
    samples,
    unique,
)

# Write routes neither the requests below nor the generated ones (a row for each path
# parameter, the body schema's first sample: tests/resources.py, as the isolation guards make
# them) can send, and why. A new resource's plain routes are generated: no entry here.
NOT_REQUESTED = {
    "DELETE /dav/calendars/{segment}": "a CalDAV collection's DELETE is ListService's delete "
    "(walked by DELETE /api/lists/{list_id}), with an app password: tests/dav/test_collections.py",
    **{
        f"{method} {path}": "any other DAV path, or a method the root does not answer: the "
        "one 404 or 405, nothing written"
        for method in ("POST", "PUT", "PATCH", "DELETE")
        for path in ("/dav/{rest:path}", "/dav")
    },
    "POST /api/auth/register": "writes `users` and `rate_limits`: no rule",
    "POST /api/auth/login": "writes `rate_limits`: no rule",
    "POST /api/auth/token": "writes `rate_limits`: no rule",
    "POST /api/auth/logout-all": "writes `users`: no rule",
    "DELETE /api/conversations/{conversation_id}": "a thread's rows go by their keys (PLUMBING)",
    "POST /api/chatkit": "the turn of POST /api/chat (`turn.begin`, `turn.run`)",
    # Sharing (issue 39): a member, or an invitation's token, no generated request has.
    "PATCH /api/lists/{list_id}/members/{user_id}": "writes `list_members`: no rule",
    "DELETE /api/lists/{list_id}/members/{user_id}": "writes `list_members`: no rule",
    "POST /api/invitations/accept": "writes `list_invitations`, `list_members`: no rule",
    # A reminder mail's one-click link (issue 72): its query is an HMAC no generated request has.
    "POST /api/notification-settings/unsubscribe": "writes `notification_settings`: no rule",
}

_TRIGGERS = """
SELECT t.oid, t.tgname, c.relname FROM pg_trigger AS t
JOIN pg_class AS c ON c.oid = t.tgrelid
JOIN pg_namespace AS n ON n.oid = c.relnamespace
WHERE NOT t.tgisinternal AND n.nspname = current_schema()
"""
_CASCADES = """
SELECT k.conname, child.relname, parent.relname,
       (SELECT array_agg(a.attname ORDER BY i) FROM unnest(k.conkey) WITH ORDINALITY AS u(n, i)
        JOIN pg_attribute AS a ON a.attrelid = k.conrelid AND a.attnum = u.n),
       (SELECT array_agg(a.attname ORDER BY i) FROM unnest(k.confkey) WITH ORDINALITY AS u(n, i)
        JOIN pg_attribute AS a ON a.attrelid = k.confrelid AND a.attnum = u.n)
FROM pg_constraint AS k
JOIN pg_class AS child ON child.oid = k.conrelid
JOIN pg_class AS parent ON parent.oid = k.confrelid
JOIN pg_namespace AS n ON n.oid = child.relnamespace
WHERE k.contype = 'f' AND k.confdeltype = 'c' AND n.nspname = current_schema()
"""


def rules_of(function: object) -> tuple[DatabaseRule, ...]:
    """The rules `@fires` recorded on `function`."""
    return tuple(getattr(function, "__rules__", ()))


def _declared(attribute: str) -> dict[str, DatabaseRule]:
    return {name: rule for rule in RULES for name in getattr(rule, attribute)}


# A task's child's key to its task (`CHILDREN`, backend/models/task_children.py): its rows go
# with the task and follow its owner, as tests/test_task_children.py checks of every child; a
# key from one of its columns to `users` (a member's own row): the row goes with the account.
CHILD_KEYS = {
    f"fk_{child.name}_user_id_task_id_tasks": "a task's child goes with its task (CHILDREN)"
    for child in CHILDREN
} | {
    f"fk_{child.name}_{column.name}_users": "a child's row of an account goes with it"
    for child in CHILDREN
    for column in child.table.__table__.columns  # type: ignore[attr-defined]
    if any(key.column.table.name == "users" for key in column.foreign_keys)
}


def _plumbing(name: str) -> str | None:
    found = (why for pattern, why in PLUMBING.items() if fnmatch(name, pattern))
    return next(found, None) or CHILD_KEYS.get(name)


def _database(engine: Engine) -> tuple[dict[str, str], dict[str, str]]:
    """The triggers (name: table) and cascading keys (name: referenced table) there are."""
    with engine.connect() as conn:
        triggers = {name: table for _, name, table in conn.execute(text(_TRIGGERS))}
        cascades = {name: parent for name, _, parent, *_ in conn.execute(text(_CASCADES))}
    return triggers, cascades


def test_every_declared_rule_exists(db_engine: Engine) -> None:
    """A rule names triggers on its table and keys that cascade, as migrated."""
    triggers, cascades = _database(db_engine)
    for rule in RULES:
        assert rule.triggers or rule.cascades, rule.name
        assert rule.because and rule.why, rule.name
        tables = {table.strip() for table in rule.table.split(",")}
        for trigger in rule.triggers:
            assert triggers.get(trigger) in tables, f"{rule.name}: no trigger {trigger}"
        for key in rule.cascades:
            assert cascades.get(key) in tables, f"{rule.name}: no cascading key {key}"


def test_every_trigger_is_named(db_engine: Engine) -> None:
    """Every trigger and cascading key is a rule's or plumbing with a reason; every plumbing
    pattern still matches something (a stale reason is as misleading as a missing one)."""
    triggers, cascades = _database(db_engine)
    declared = {**_declared("triggers"), **_declared("cascades")}
    unnamed = sorted(
        name for name in (*triggers, *cascades) if name not in declared and not _plumbing(name)
    )
    assert unnamed == [], (
        "name each in services/statements/rules.py: a Rule (and @fires on the methods whose "
        f"write fires it) or PLUMBING with the reason: {unnamed}"
    )
    stale = [p for p in PLUMBING if not any(fnmatch(n, p) for n in (*triggers, *cascades))]
    assert stale == []
    assert [name for name in declared if _plumbing(name)] == []


def _declaring_methods() -> dict[CodeType, Any]:
    """Every method in backend/services that names a rule, by its code object."""
    found: dict[CodeType, Any] = {}
    services = pkgutil.walk_packages(backend.services.__path__, "backend.services.")
    for module_info in services:
        module = importlib.import_module(module_info.name)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ != module.__name__:
                continue
            for _, function in inspect.getmembers(cls, inspect.isfunction):
                if rules_of(function):
                    found[function.__code__] = function
    return found


def test_methods_name_only_rules_a_reader_needs() -> None:
    """`every_write` rules (the change events) fire for every write of their table: named
    once in rules.py, not on each method; every other rule is named by some method."""
    named = {rule for function in _declaring_methods().values() for rule in rules_of(function)}
    assert not {rule for rule in named if rule.every_write}
    assert {rule for rule in RULES if not rule.every_write} == named


# --- what requests fire ----------------------------------------------------------------------

_SPY = """
CREATE FUNCTION rules_spy() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO rules_fired (name) VALUES (TG_ARGV[0]);
    IF TG_OP = 'DELETE' THEN RETURN OLD; END IF;
    RETURN NEW;
END
$$
"""
# A cascade fired when its key deleted a row: a row deleted one trigger level below the
# deletion of the row it referenced (a statement that deletes a parent and its subtasks
# itself, or a list's cascade that takes a subtask with its parent, is not the parent key's).
# The levels are the BEFORE triggers' (a cascade's AFTER triggers fire at the outer level).
_DELETED = """
CREATE FUNCTION rules_spy_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO rules_deleted VALUES (TG_TABLE_NAME, to_jsonb(OLD), pg_trigger_depth());
    RETURN OLD;
END
$$
"""
_CASCADE_SPY = """
CREATE FUNCTION rules_spy_{n}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (
        SELECT FROM rules_deleted AS d JOIN rules_deleted AS c ON c.depth = d.depth + 1
        WHERE d.tbl = '{parent}' AND ({parent_columns}) = ({old_columns})
          AND c.tbl = TG_TABLE_NAME AND c.row = to_jsonb(OLD)
    ) THEN
        INSERT INTO rules_fired (name) VALUES ('{name}');
    END IF;
    RETURN NULL;
END
$$
"""


@pytest.fixture
def spied(db_engine: Engine) -> Iterator[Callable[[], set[str]]]:
    """Spies beside every rule's trigger and cascading key; yields `fired()`, which returns
    (and forgets) the names of the triggers and keys that fired since it was last called.
    A spy is named `_spy_...` so it fires before the table's other triggers (name order): a
    BEFORE trigger's WHEN sees the row before the trigger it spies on changes it."""
    spies: list[tuple[str, str]] = []
    with db_engine.begin() as conn:
        conn.execute(text("CREATE TABLE rules_fired (name TEXT NOT NULL)"))
        conn.execute(text(_SPY))
        declared = _declared("triggers")
        for oid, name, table in conn.execute(text(_TRIGGERS)).all():
            if name in declared and not declared[name].every_write:
                definition = conn.execute(text(f"SELECT pg_get_triggerdef({oid})")).scalar_one()
                spy = f"_spy_{name}"
                definition = re.sub(
                    rf"^CREATE (CONSTRAINT )?TRIGGER {name} ",
                    rf"CREATE \1TRIGGER {spy} ",
                    definition,
                )
                definition = re.sub(
                    r"EXECUTE FUNCTION .*$", f"EXECUTE FUNCTION rules_spy('{name}')", definition
                )
                conn.execute(text(definition))
                spies.append((spy, table))
        keys = _declared("cascades")
        conn.execute(text("CREATE TABLE rules_deleted (tbl TEXT, row JSONB, depth INT)"))
        conn.execute(text(_DELETED))
        cascades = [row for row in conn.execute(text(_CASCADES)).all() if row[0] in keys]
        for table in {row[i] for row in cascades for i in (1, 2)}:
            conn.execute(
                text(
                    f"CREATE TRIGGER _spy_deleted BEFORE DELETE ON {table} "
                    "FOR EACH ROW EXECUTE FUNCTION rules_spy_deleted()"
                )
            )
            spies.append(("_spy_deleted", table))
        for n, (name, child, parent, child_columns, parent_columns) in enumerate(cascades):
            spy_function = _CASCADE_SPY.format(
                n=n,
                name=name,
                parent=parent,
                parent_columns=", ".join(f"d.row ->> '{c}'" for c in parent_columns),
                old_columns=", ".join(f"OLD.{c}::text" for c in child_columns),
            )
            conn.execute(text(spy_function))
            conn.execute(
                text(
                    f"CREATE TRIGGER _spy_{name} AFTER DELETE ON {child} "
                    f"FOR EACH ROW EXECUTE FUNCTION rules_spy_{n}()"
                )
            )
            spies.append((f"_spy_{name}", child))

    def fired() -> set[str]:
        with db_engine.begin() as conn:
            conn.execute(text("DELETE FROM rules_deleted"))
            return set(conn.execute(text("DELETE FROM rules_fired RETURNING name")).scalars())

    try:
        yield fired
    finally:
        with db_engine.begin() as conn:
            for spy, table in spies:
                conn.execute(text(f"DROP TRIGGER {spy} ON {table}"))
            conn.execute(text("DROP TABLE rules_fired, rules_deleted"))
            conn.execute(text("DROP FUNCTION rules_spy()"))
            for (oid,) in conn.execute(
                text("SELECT oid FROM pg_proc WHERE proname LIKE 'rules\\_spy\\_%'")
            ).all():
                conn.execute(text(f"DROP FUNCTION {_function_name(conn, oid)}"))


def _function_name(conn: Connection, oid: int) -> str:
    return str(conn.execute(text(f"SELECT {oid}::regprocedure")).scalar_one())


class _Walked:
    """The `@fires` methods called while recording, from any thread (tests/test_walk.py)."""

    def __init__(self, declaring: dict[CodeType, Any]) -> None:
        self.declaring = {code: function.__qualname__ for code, function in declaring.items()}
        self.recording = False
        self.called: set[str] = set()
        self._lock = threading.Lock()

    def hook(self, frame: FrameType, event: str, _arg: Any) -> None:
        if event == "call" and self.recording and frame.f_code in self.declaring:
            with self._lock:
                self.called.add(self.declaring[frame.f_code])


@pytest.fixture
def model() -> Iterator[FakeModel]:
    yield from fake_model.serve()


@pytest.fixture
def walked(settings: Settings, model: FakeModel) -> Iterator[tuple[_Walked, TestClient]]:
    """A client whose every thread is traced (tests/test_walk.py), chatting with `model`."""
    tracer = _Walked(_declaring_methods())
    threading.setprofile(tracer.hook)
    sys.setprofile(tracer.hook)
    try:
        # Every write route is requested, some twice: not the write limit's test.
        limitless = chat_settings(settings, model, rate_limit_task_writes_per_user=10_000)
        with TestClient(create_app(limitless)) as client:
            yield tracer, client
    finally:
        sys.setprofile(None)
        threading.setprofile(None)


_DUE = "2999-01-04T09:00:00Z"
_REMINDED = {"due_date": _DUE, "reminders": [{"minutes_before_due": 5}]}


def test_requests_fire_what_their_methods_name(
    spied: Callable[[], set[str]],
    walked: tuple[_Walked, TestClient],
    model: FakeModel,
    alice: Account,
    bob: Account,
    db_engine: Engine,
) -> None:
    tracer, client = walked
    writes = {
        f"{method} {route.path}": route.path_regex
        for route in api_routes(client.app)  # type: ignore[arg-type]
        if not route.path.startswith("/api/{user_id}")  # the twins call the same methods
        for method in route.methods & {"POST", "PUT", "PATCH", "DELETE"}
    }
    requested: set[str] = set()
    by_trigger = {**_declared("triggers"), **_declared("cascades")}
    declared = {f.__qualname__: set(rules_of(f)) for f in _declaring_methods().values()}
    seen: dict[str, set[DatabaseRule]] = {}  # method: the rules that fired while it was walked

    def call(
        method: str,
        path: str,
        body: Any = None,
        *,
        setup: bool = False,
        by: Account = alice,
        template: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        spied()
        tracer.called.clear()
        tracer.recording = not setup
        try:
            sent = body_of(method, template or path, body) if headers is None else {"content": body}
            response: httpx.Response = client.request(
                method, path, **sent, headers=headers or by.headers
            )
        finally:
            tracer.recording = False
        assert response.is_success, (method, path, response.text)
        requested.update(
            name
            for name, regex in writes.items()
            if name.startswith(f"{method} ") and regex.match(path)
        )
        names = spied()
        fired = {by_trigger[name] for name in names if not by_trigger[name].every_write}
        if not setup:
            named = {rule for walked in tracer.called for rule in declared[walked]}
            assert fired <= named, (
                f"{method} {path} fired {sorted(r.name for r in fired - named)}, which no "
                f"method it walked names ({sorted(tracer.called)})"
            )
            for walked_method in tracer.called:
                seen.setdefault(walked_method, set()).update(fired & declared[walked_method])
        if headers is not None or not response.content:
            return None
        return response.json().get("data")

    def task(setup: bool = True, **body: Any) -> int:
        return int(call("POST", "/api/tasks", {"title": "t", **body}, setup=setup)["id"])

    def completed_parent() -> tuple[int, int]:
        parent = task()
        child = task(parent_id=parent)
        call("PATCH", f"/api/tasks/{parent}/complete", {"completed": True}, setup=True)
        return parent, child

    def series_with_checklist() -> int:
        parent = task(recurrence="FREQ=DAILY", **_REMINDED)
        task(parent_id=parent, **_REMINDED)
        return parent

    # create: placed, reminded; an open subtask under a completed parent reopens and counts.
    task(setup=False, **_REMINDED)
    parent, _ = completed_parent()
    task(setup=False, parent_id=parent)
    # set_completed: a series with a checklist (completes down, counts, reminders, the
    # successor placed with its copies); a subtask reopened under its completed parent.
    call("PATCH", f"/api/tasks/{series_with_checklist()}/complete", {"completed": True})
    parent, child = completed_parent()
    call("PATCH", f"/api/tasks/{child}/complete", {"completed": False})
    # update: the same through PATCH, and a schedule change.
    call("PATCH", f"/api/tasks/{series_with_checklist()}", {"completed": True})
    parent, child = completed_parent()
    call("PATCH", f"/api/tasks/{child}", {"completed": False})
    call("PATCH", f"/api/tasks/{task(**_REMINDED)}", {"due_date": "2999-02-01T09:00:00Z"})

    # A schedule change is written over the row read (`write_over`): each rule it names.
    call("PATCH", f"/api/tasks/{series_with_checklist()}", {"completed": True, **_REMINDED})
    parent, child = completed_parent()
    call("PATCH", f"/api/tasks/{child}", {"completed": False, "due_date": _DUE})
    call("PATCH", f"/api/tasks/{task()}", {"parent_id": completed_parent()[0], "due_date": _DUE})
    # CalDAV writes by href compose the same public statements (`write_new`, `write_over`): a
    # create, and a series' object sent back completed.
    made = create(client, alice, "rules")
    dav = basic(made["username"], made["password"])
    calendar = "/dav/calendars/no-list/"
    put = {**dav, "Content-Type": "text/calendar; charset=utf-8"}
    body = (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Test//EN\r\nBEGIN:VTODO\r\n"
        "UID:rules-1\r\nDTSTAMP:20261116T090245Z\r\nSUMMARY:r\r\nDUE:29990104T090000Z\r\n"
        "BEGIN:VALARM\r\nACTION:DISPLAY\r\nTRIGGER:-PT5M\r\nEND:VALARM\r\n"
        "END:VTODO\r\nEND:VCALENDAR\r\n"
    )
    call("PUT", f"{calendar}rules-1.ics", body, headers={**put, "If-None-Match": "*"})
    served = f"{calendar}task-{series_with_checklist()}@task-api.ics"
    got = client.get(served, headers=dav).content.replace(b"NEEDS-ACTION", b"COMPLETED")
    call("PUT", served, got, headers=put)
    # An update by href with no precondition (`write_named`) and one naming its tag
    # (`write_at_version`): each completes a reminded parent with an open subtask. A DELETE
    # by href (`delete_named`): a subtask (its parent's count), then a parent (its subtree).
    for vouched in (False, True):
        parent = task(**_REMINDED)
        task(parent_id=parent, **_REMINDED)
        served = f"{calendar}task-{parent}@task-api.ics"
        got = client.get(served, headers=dav)
        precondition = {"If-Match": got.headers["ETag"]} if vouched else {}
        done = got.content.replace(b"NEEDS-ACTION", b"COMPLETED")
        call("PUT", served, done, headers={**put, **precondition})
    parent = task()
    call("DELETE", f"{calendar}task-{task(parent_id=parent)}@task-api.ics", headers=dav)
    task(parent_id=parent)
    call("DELETE", f"{calendar}task-{parent}@task-api.ics", headers=dav)

    # undo: a subtask's reopening undone completes it again (counts); its completion undone
    # reopens it and its parent; a listed, reminded task's due date undone reschedules both
    # kinds of reminders.
    def undo_last(task_id: int, event: str) -> None:
        listed = client.get("/api/activity", params={"limit": 100}, headers=alice.headers)
        entry = next(
            item
            for item in listed.json()["data"]
            if item["object_id"] == task_id and item["event"] == event
        )
        call("POST", f"/api/activity/{entry['id']}/undo")

    parent, child = completed_parent()
    call("PATCH", f"/api/tasks/{child}/complete", {"completed": False}, setup=True)
    undo_last(child, "task.reopened")
    undo_last(child, "task.completed")
    parent, child = completed_parent()
    call("PATCH", f"/api/tasks/{parent}/complete", {"completed": False}, setup=True)
    undo_last(parent, "task.reopened")
    undone_list = int(call("POST", "/api/lists", {"name": "U"}, setup=True)["id"])
    reminded = task(list_id=undone_list, **_REMINDED)
    call("PATCH", f"/api/tasks/{reminded}", {"due_date": "2999-03-01T09:00:00Z"}, setup=True)
    undo_last(reminded, "task.updated")
    # move: an open task moved under a completed parent reopens it and counts in.
    parent, _ = completed_parent()
    call("POST", f"/api/tasks/{task()}/move", {"parent_id": parent})
    # delete: a parent takes its subtree; a subtask leaves its parent's count.
    parent = task()
    child = task(parent_id=parent)
    call("DELETE", f"/api/tasks/{child}")
    task(parent_id=parent)
    call("DELETE", f"/api/tasks/{parent}")
    # bulk: a series completed, a subtask reopened, a parent deleted.
    series = series_with_checklist()
    _, reopened = completed_parent()
    deleted = task()
    task(parent_id=deleted)
    operations = [
        {"op": "complete", "id": series},
        {"op": "reopen", "id": reopened},
        {"op": "delete", "id": deleted},
    ]
    call("POST", "/api/tasks/bulk", {"operations": operations})
    # delete_completed: a completed parent and its completed subtask.
    completed_parent()
    call("DELETE", "/api/tasks/completed")
    # a list's deletion takes its tasks (and their subtrees).
    listed = int(call("POST", "/api/lists", {"name": "L"}, setup=True)["id"])
    task(parent_id=task(list_id=listed))
    call("DELETE", f"/api/lists/{listed}")
    # PUT merges as PATCH does; a list's other writes fire only their events.
    parent = task()
    task(parent_id=parent)
    call("PUT", f"/api/tasks/{parent}", {"completed": True})
    listed = int(call("POST", "/api/lists", {"name": "M"})["id"])
    call("PUT", f"/api/lists/{listed}", {"name": "N"})
    call("PATCH", f"/api/lists/{listed}", {"name": "O"})
    call("POST", f"/api/lists/{listed}/move", {})
    # A transfer carries a list's tasks and their subtasks to the new owner (the keys' ON
    # UPDATE CASCADE): the heir joins through an invitation first.
    team = int(call("POST", "/api/lists", {"name": "Team"}, setup=True)["id"])
    task(parent_id=task(list_id=team))
    token = call("POST", f"/api/lists/{team}/invitations", {"role": "editor"}, setup=True)["token"]
    signed_up = client.post(
        "/api/auth/register", json={"email": "heir@example.com", "password": "password-123"}
    ).json()["data"]
    heir = {"Authorization": f"Bearer {signed_up['access_token']}"}
    joined = client.post("/api/invitations/accept", json={"token": token}, headers=heir)
    assert joined.status_code == 200, joined.text
    call("POST", f"/api/lists/{team}/transfer", {"user_id": signed_up["user"]["id"]})
    # A chat turn: its question and answer, and the tool's write through the same service.
    model.script(
        Reply(calls=(("add_task", '{"title": "from chat"}'),)),
        Reply(text="Added."),
    )
    call("POST", "/api/chat", {"message": "add a task"})
    # A task that changes lists takes its comments along and keeps only the assignees who
    # may be assigned there: a PATCH, a move and a bulk move.
    first = int(call("POST", "/api/lists", {"name": "First"}, setup=True)["id"])
    second = int(call("POST", "/api/lists", {"name": "Second"}, setup=True)["id"])
    mine = {"list_id": first, "assignees": [alice.id]}
    call("PATCH", f"/api/tasks/{task(**mine)}", {"list_id": second})
    call("PATCH", f"/api/tasks/{task(**mine)}", {"list_id": second, "due_date": _DUE})
    call("POST", f"/api/tasks/{task(**mine)}/move", {"list_id": second})
    moving = [{"op": "move", "id": task(**mine), "list_id": second}]
    call("POST", "/api/tasks/bulk", {"operations": moving})
    # A move's undo moves it back with the move's statement: the same rules.
    moved_back = task(**mine)
    call("POST", f"/api/tasks/{moved_back}/move", {"list_id": second}, setup=True)
    undo_last(moved_back, "task.updated")
    # A member's reminders are its own: created with a task, carried by a series' next
    # occurrence, dropped when it leaves the list (migration 0034).
    shared = int(call("POST", "/api/lists", {"name": "Shared"}, setup=True)["id"])
    with db_engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO list_members (user_id, list_id, member_id, role) VALUES "
                "(:owner, :list_id, :member, 'editor')"
            ),
            {"owner": alice.id, "list_id": shared, "member": bob.id},
        )
    series = task(list_id=shared, recurrence="FREQ=DAILY", **_REMINDED)
    call("PATCH", f"/api/tasks/{series}", {"reminders": [{"minutes_before_due": 9}]}, by=bob)
    call("POST", "/api/tasks", {"title": "b", "list_id": shared, **_REMINDED}, by=bob)
    call("PATCH", f"/api/tasks/{series}/complete", {"completed": True})
    # A member's updates by href keep its reminders its own, as its PATCH does.
    bobs = create(client, bob, "rules")
    bob_put = {**put, **basic(bobs["username"], bobs["password"])}
    alarm = b"BEGIN:VALARM\r\nACTION:DISPLAY\r\nTRIGGER:-PT7M\r\nEND:VALARM\r\nEND:VTODO"
    for vouched in (False, True):
        served = f"/dav/calendars/{shared}/task-{task(list_id=shared, due_date=_DUE)}@task-api.ics"
        got = client.get(served, headers=bob_put)
        precondition = {"If-Match": got.headers["ETag"]} if vouched else {}
        call(
            "PUT",
            served,
            got.content.replace(b"END:VTODO", alarm),
            headers={**bob_put, **precondition},
        )
    call("DELETE", f"/api/lists/{shared}/members/{bob.id}")
    # Deleting an account hands its shared list over, and its memberships go (unassigning).
    theirs = client.post("/api/lists", json={"name": "Theirs"}, headers=bob.headers)
    with db_engine.begin() as conn:
        membership = (
            "INSERT INTO list_members (user_id, list_id, member_id, role) VALUES "
            "(:owner, :list_id, :member, 'editor')"
        )
        conn.execute(text(membership), {"owner": alice.id, "list_id": first, "member": bob.id})
        conn.execute(
            text(membership),
            {"owner": bob.id, "list_id": theirs.json()["data"]["id"], "member": alice.id},
        )
    call("DELETE", "/api/auth/me")

    # Every other write route, generated, by Bob (Alice has gone): its path's rows made first
    # (set-up), its body the schema's first sample with placeholders filled; what it fires
    # must be named as above. A route by a task's id runs twice: on a plain task, and on a
    # reminded subtask of a completed parent (what a write that places, reopens, counts or
    # reminds reads), so a new route's rules are fired with no request written here.
    app_routes = api_routes(client.app)  # type: ignore[arg-type]
    routes = {f"{m} {r.path}": r for r in app_routes for m in r.methods or ()}
    makers = creators(list({id(r): r for r in routes.values()}.values()))

    def subtask_under_a_completed_parent() -> dict[str, int]:
        parent = int(call("POST", "/api/tasks", {"title": "p"}, setup=True, by=bob)["id"])
        child = {"title": "c", "parent_id": parent, **_REMINDED}
        made = int(call("POST", "/api/tasks", child, setup=True, by=bob)["id"])
        call("PATCH", f"/api/tasks/{parent}/complete", {"completed": True}, setup=True, by=bob)
        return {"task_id": made}

    generated = [
        (name, known)
        for name in sorted(set(writes) - requested - set(NOT_REQUESTED))
        for known in (
            {},
            *([subtask_under_a_completed_parent()] if "{task_id}" in name else []),
        )
    ]
    for name, known in generated:
        method, path = name.split(" ", 1)
        for parameter in path_parameters(path):
            make_row(client, bob, parameter, known, makers)
        if "task_id" in known:  # in the state the route declares (`acts(..., task=...)`)
            in_state(client, bob, known["task_id"], method, path)
        schema = body_model(routes[name])
        body = None
        if schema is not None:
            assert samples(schema), f"{name}: no sample for {schema.__name__}"
            placeholders = {
                TASK: make_row(client, bob, "task_id", known, makers),
                LIST: make_row(client, bob, "list_id", known, makers),
                REF: make_row(client, bob, "task_id", {}, makers),
                LIST_REF: make_row(client, bob, "list_id", {}, makers),
            }
            body = fill_sample(unique(samples(schema)[0], schema), placeholders)
        call(method, fill_path(path, known), body, by=bob, template=path)

    unrequested = sorted(set(writes) - requested - set(NOT_REQUESTED))
    assert unrequested == [], "request each here, or say in NOT_REQUESTED why not"
    unproven = {
        method: sorted(rule.name for rule in rules - seen.get(method, set()))
        for method, rules in declared.items()
        if rules - seen.get(method, set())
    }
    assert unproven == {}, "named rules that no request walking the method fired"


def rules_table() -> str:
    """The table of specs/statements.md's "Rules the database keeps", from the declarations."""
    methods: dict[DatabaseRule, dict[str, list[str]]] = {}
    for function in _declaring_methods().values():
        cls, name = function.__qualname__.split(".")
        for rule in rules_of(function):
            methods.setdefault(rule, {}).setdefault(cls, []).append(f"`{name}`")
    lines = [
        "| rule | what it does | trigger or key (table) | named on | in SQL: why |",
        "|---|---|---|---|---|",
    ]
    for rule in RULES:
        names = ", ".join(f"`{name}`" for name in (*rule.triggers, *rule.cascades))
        table = rule.table
        if rule.shown:
            names, table = rule.shown
        on = sorted(methods.get(rule, {}).items())
        fired = "; ".join(f"{cls} {', '.join(sorted(names))}" for cls, names in on)
        fired = fired or "every write of its tables"
        why = " and ".join(rule.why)
        lines.append(
            f"| {rule.name} | {rule.does} | {names} ({table}) | {fired} | {why}: {rule.because} |"
        )
    return "\n".join(lines) + "\n"


# What prints the table: its output replaces the one under "Rules the database keeps on a write".
REGENERATE = "python -c \"from tests.test_rules import rules_table; print(rules_table(), end='')\""


def test_the_table_in_statements_md() -> None:
    """specs/statements.md lists the rules as declared (a new trigger or cascading key is a
    new `Rule` in backend/services/statements/rules.py, then a new line here): the failure says the
    command that prints the table to paste."""
    table = rules_table()
    assert table in (ROOT / "specs" / "statements.md").read_text(), (
        "specs/statements.md's table of rules is not the declared one: replace it (under \"Rules "
        f'the database keeps on a write") with the output of\n  {REGENERATE}\n'
    )
