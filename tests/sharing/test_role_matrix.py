"""The role matrix, generated from the declarations (each route's action on the route,
backend/api/actions.py; each tool's `action`; `LEAST_ROLE`): for every declared route and every
standing a caller can have towards a list (tests/sharing/standings.py), the answer it must get.
A stranger, a removed member, one who left, a pending invitee and anyone else without a role
get the bytes a missing resource gets; a member below the route's least role gets 403 FORBIDDEN
and changes nothing; a member with the role gets a 2xx. A feed (the change feed, polled or
live, by bearer token or stream ticket) shows the list's changes to a role that may read them,
and nothing of the list to any other standing; a stream ticket is the same 401 whatever was
wrong with it. The activity of a move across the list's boundary (the owner's task moved in
from a private list or from under a private parent, or out to one) names to each standing only
the rows it may read now: any other id is null (issue 61, item 2); a move in from another
shared list names as assignees only the users it may know now, the owner and members of a
list it may read (review F2)."""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from backend.mcp.tools import TOOLS as MCP_TOOLS
from backend.models.task_children import CHILDREN, TaskChild
from backend.services.statements.access import LEAST_ROLE, Action, allows
from tests.conftest import Account
from tests.mcp.conftest import call_tool_rpc
from tests.mcp.test_isolation import LIST as ISOLATION_LIST
from tests.mcp.test_isolation import LIST_NAME as ISOLATION_LIST_NAME
from tests.mcp.test_isolation import REF as ISOLATION_REF
from tests.mcp.test_isolation import TASK as ISOLATION_TASK
from tests.mcp.test_isolation import extra_arguments
from tests.resources import body_of, in_state
from tests.sharing.conftest import SharedList
from tests.sharing.helpers import add_member, drain_feed, get, make_list, make_task
from tests.sharing.references import (
    DAV_ROUTES,
    FEEDS,
    ROUTES,
    TOOLS,
    names_a_member,
    sample_body,
    tool_subject,
)
from tests.sharing.standings import NO_ROLE, ROLES, STANDINGS, Grant, take
from tests.undo.helpers import last_entry

MISSING = 2_000_000_000
# What a route is sent comes from its declarations: its body schema's sample (`sample_body`:
# the schema's OpenAPI `examples`), a member its path or body names (`names_a_member`).


def _path(template: str, list_id: int, task_id: int, **more: Any) -> str:
    return template.format(list_id=list_id, task_id=task_id, **more)


def _child_row(
    client: TestClient, shared: SharedList, caller: Account, standing: str, child: TaskChild
) -> int:
    """A row of a task's child (backend/models/task_children.py) on the list's task, for a
    route by its id: the caller's own when the child has an author and the caller may write it
    (a route's least role is for one's own row), else the owner's."""
    own = child.author and standing in ROLES and allows(standing, child.action(writes=True))
    author = caller if own else shared.owner
    template = f"/api/tasks/{{task_id}}/{child.path}"
    made = client.post(
        f"/api/tasks/{shared.task_id}/{child.path}",
        **body_of("POST", template, dict(child.sample)),
        headers=author.headers,
    )
    assert made.status_code == 201, made.text
    row_id: int = made.json()["data"]["id"]
    return row_id


# A task's child's row id in a path -> its declaration.
CHILD_IDS = {f"{'_'.join(c.noun.split())}_id": c for c in CHILDREN if c.path}


def _entry(client: TestClient, shared: SharedList, caller: Account, standing: str) -> int:
    """An activity entry of the list's task for an undo: the caller's own change when it may
    write the task (the route's least role is for one's own change), else the owner's."""
    author = caller if standing in ROLES and allows(standing, Action.TASK_WRITE) else shared.owner
    changed = client.patch(
        f"/api/tasks/{shared.task_id}", json={"title": "To undo"}, headers=author.headers
    )
    assert changed.status_code == 200, changed.text
    entry_id: int = last_entry(client, author, shared.task_id, "task.updated")["id"]
    return entry_id


def _trashed(client: TestClient, shared: SharedList) -> int:
    """A task of the list, deleted by its owner: its id, now in the trash."""
    made = client.post(
        "/api/tasks",
        json={"title": "Deleted", "list_id": shared.list_id},
        headers=shared.owner.headers,
    )
    trash_id: int = made.json()["data"]["id"]
    gone = client.delete(f"/api/tasks/{trash_id}", headers=shared.owner.headers)
    assert gone.status_code == 204, gone.text
    return trash_id


def _named(
    client: TestClient,
    shared: SharedList,
    route: tuple[str, str],
    register: Callable[..., Account],
    grant: Grant,
) -> dict[str, Any]:
    """The member (`{user_id}`, a body's member: a transfer's `user_id`), invitation
    (`{invitation_id}`) or trashed task (`{trash_id}`) the route names: carol, a viewer of the
    list; a pending invitation of the owner's; a task of the list its owner deleted."""
    more: dict[str, Any] = {}
    if "{user_id}" in route[1] or names_a_member(route):
        carol = register("carol@example.com")
        grant(shared, carol, "viewer")
        more["user_id"] = carol.id
    if "{trash_id}" in route[1]:
        more["trash_id"] = _trashed(client, shared)
    if "{invitation_id}" in route[1]:
        made = client.post(
            f"/api/lists/{shared.list_id}/invitations",
            json={"role": "viewer"},
            headers=shared.owner.headers,
        )
        more["invitation_id"] = made.json()["data"]["id"]
    return more


@pytest.mark.parametrize("standing", STANDINGS)
@pytest.mark.parametrize("route", sorted(ROUTES), ids=lambda r: f"{r[0]} {r[1]}")
def test_the_answer_follows_the_declared_role(
    client: TestClient,
    shared_list: SharedList,
    bob: Account,
    grant: Grant,
    register: Callable[..., Account],
    db_engine: Engine,
    route: tuple[str, str],
    standing: str,
) -> None:
    method, template = route
    body = sample_body(route, shared_list.task_id, shared_list.list_id)
    more = _named(client, shared_list, route, register, grant)
    body = body and {**body, **dict.fromkeys(names_a_member(route), more.get("user_id"))}
    # The list's task in the state the route declares (`acts(..., task=...)`): a snooze's due date.
    in_state(client, shared_list.owner, shared_list.task_id, method, template)
    caller = take(client, shared_list, bob, grant, db_engine, standing)
    for name, child in CHILD_IDS.items():
        if f"{{{name}}}" in template:
            more[name] = _child_row(client, shared_list, caller, standing, child)
    if "{event_id}" in template:
        more["event_id"] = _entry(client, shared_list, caller, standing)
    path = _path(template, shared_list.list_id, shared_list.task_id, **more)
    answer = client.request(method, path, **body_of(method, template, body), headers=caller.headers)
    if standing in NO_ROLE:
        absent = {**more, **{name: MISSING for name in ("trash_id", "event_id") if name in more}}
        missing = client.request(
            method,
            _path(template, MISSING, MISSING, **absent),
            **body_of(method, template, body),
            headers=caller.headers,
        )
        assert answer.status_code == 404, answer.text
        assert answer.content == missing.content
    elif allows(standing, ROUTES[route]):
        assert 200 <= answer.status_code < 300, answer.text
    else:
        assert answer.status_code == 403, answer.text
        assert answer.json()["error"]["code"] == "FORBIDDEN"
        assert LEAST_ROLE[ROUTES[route]].value in answer.json()["error"]["message"]


def _arguments(tool: str, shared: SharedList) -> tuple[str, dict[str, Any]]:
    """The argument that names the tool's row (`tool_subject`) and the tool's arguments: the
    first of the isolation guard's (tests/mcp/test_isolation.py `extra_arguments`: each
    required argument's `Field(examples=[...])`) that names no row but the list's task and
    list, those filled in."""
    declared = next(t for t in MCP_TOOLS if t.name == tool)
    rows = {ISOLATION_TASK: shared.task_id, ISOLATION_LIST: shared.list_id}
    own = [a for a in extra_arguments(declared) if set(map(str, a.values())) & OTHER_ROWS == set()]
    assert own, f"{tool}: no arguments name only the list's task or list"
    filled = {k: rows.get(v, v) if isinstance(v, str) else v for k, v in own[0].items()}
    return tool_subject(declared), filled


# Placeholders of the isolation guard's arguments that name another row.
OTHER_ROWS = {ISOLATION_REF, ISOLATION_LIST_NAME}


@pytest.mark.parametrize("standing", STANDINGS)
@pytest.mark.parametrize("tool", sorted(TOOLS))
def test_a_tool_answers_as_its_route_does(
    client: TestClient,
    shared_list: SharedList,
    bob: Account,
    grant: Grant,
    db_engine: Engine,
    tool: str,
    standing: str,
) -> None:
    caller = take(client, shared_list, bob, grant, db_engine, standing)
    by, given = _arguments(tool, shared_list)
    real = {"list_id": shared_list.list_id, "task_id": shared_list.task_id}.get(by)
    if by == "trash_id":
        real = _trashed(client, shared_list)
    arguments = {**given, by: real}
    result = call_tool_rpc(client, "/mcp", caller.token, tool, arguments)
    if standing in NO_ROLE:
        missing = call_tool_rpc(client, "/mcp", caller.token, tool, {**arguments, by: MISSING})
        assert result["content"] == missing["content"]
        assert result["isError"] is (tool != "list_tasks")  # an unknown list's tasks: none
    elif allows(standing, TOOLS[tool]):
        assert result["isError"] is False, result
    else:
        assert result["isError"] is True
        assert json.loads(result["content"][0]["text"])["error"]["code"] == "FORBIDDEN"


STREAM = ("GET", "/api/changes/stream")
TICKETS = "/api/changes/stream/tickets"
# Every way a feed is read: the live stream by its bearer token and by a stream ticket.
FEED_READS = [
    (route, via) for route in sorted(FEEDS) for via in ("bearer", "ticket")[: 1 + (route == STREAM)]
]


def _ticket(client: TestClient, account: Account) -> str:
    made = client.post(TICKETS, headers=account.headers)
    assert made.status_code == 201, made.text
    ticket: str = made.json()["data"]["ticket"]
    return ticket


def _changes(
    client: TestClient, route: tuple[str, str], via: str, caller: Account, cursor: str
) -> list[dict[str, Any]]:
    """The caller's changes after `cursor` through the feed route: the polled feed followed
    to its end, or the stream's events (the test settings end a stream after 0.5 s)."""
    if route != STREAM:
        return drain_feed(client, caller, cursor)[0]
    params, headers = {"cursor": cursor}, caller.headers
    if via == "ticket":
        params["ticket"], headers = _ticket(client, caller), {}
    answer = client.get(route[1], params=params, headers=headers)
    assert answer.status_code == 200, answer.text
    lines = answer.text.splitlines()
    return [json.loads(line.removeprefix("data: ")) for line in lines if line.startswith("data: ")]


@pytest.mark.parametrize("standing", STANDINGS)
@pytest.mark.parametrize("feed", FEED_READS, ids=lambda f: f"{f[0][0]} {f[0][1]} {f[1]}")
def test_a_feed_shows_a_list_as_the_declared_role_reads_it(
    client: TestClient,
    shared_list: SharedList,
    bob: Account,
    grant: Grant,
    db_engine: Engine,
    feed: tuple[tuple[str, str], str],
    standing: str,
) -> None:
    route, via = feed
    caller = take(client, shared_list, bob, grant, db_engine, standing)
    _, cursor = drain_feed(client, caller)  # after whatever its standing left (tombstones)
    owner = shared_list.owner
    renamed = client.patch(
        f"/api/tasks/{shared_list.task_id}", json={"title": "Renamed"}, headers=owner.headers
    )
    assert renamed.status_code == 200, renamed.text
    added = make_task(client, owner, "Added", list_id=shared_list.list_id)
    # The caller's own change after the owner's: read, it shows the read went past them.
    marker = make_task(client, caller, "Marker")
    seen = [change["task_id"] for change in _changes(client, route, via, caller, cursor)]
    assert marker in seen
    of_list = [task_id for task_id in seen if task_id in (shared_list.task_id, added)]
    if standing not in NO_ROLE and allows(standing, FEEDS[route]):
        assert of_list == [shared_list.task_id, added]
    else:
        assert of_list == []


def _spoiled(client: TestClient, db_engine: Engine, account: Account, fault: str) -> str:
    """A ticket with `fault`, made the way it happens."""
    if fault == "never issued":
        return secrets.token_urlsafe(32)
    ticket = _ticket(client, account)
    if fault == "used":
        assert client.get(STREAM[1], params={"ticket": ticket}).status_code == 200
    elif fault == "expired":
        with db_engine.begin() as conn:
            conn.execute(
                text("UPDATE stream_tickets SET expires_at = now() - interval '1 s'"),
            )
    elif fault == "token revoked":
        assert client.post("/api/auth/logout-all", headers=account.headers).status_code == 204
    elif fault == "account deleted":
        assert client.delete("/api/auth/me", headers=account.headers).status_code == 204
    return ticket


# Whatever is wrong with a stream ticket, its use is answered the same.
TICKET_FAULTS = ("never issued", "used", "expired", "token revoked", "account deleted")


@pytest.mark.parametrize("fault", TICKET_FAULTS)
def test_a_bad_ticket_is_the_same_401_whatever_was_wrong(
    client: TestClient, db_engine: Engine, register: Callable[..., Account], fault: str
) -> None:
    holder = register()
    answer = client.get(STREAM[1], params={"ticket": _spoiled(client, db_engine, holder, fault)})
    unknown = client.get(STREAM[1], params={"ticket": secrets.token_urlsafe(32)})
    assert answer.status_code == 401, answer.text
    assert answer.content == unknown.content
    assert answer.headers["www-authenticate"] == unknown.headers["www-authenticate"]


@dataclass
class Boundary:
    """The owner's rows beside the shared list L (its task T): a private list P with a task
    PT, and a personal task PP (in no list)."""

    private_list: int
    private_task: int
    personal_task: int


def _boundary(client: TestClient, shared: SharedList) -> Boundary:
    owner = shared.owner
    private_list = make_list(client, owner, "Private")
    return Boundary(
        private_list=private_list,
        private_task=make_task(client, owner, "PT", list_id=private_list),
        personal_task=make_task(client, owner, "PP"),
    )


# Each move across L's boundary by its owner: the task moved (made where it starts), the
# request, and the move's `[old, new]` of `list_id` and `parent_id` (and `assignees`), as the
# owner reads them (names: "L", "P", "T", "PT", "PP", the task itself "X"; "O" another list
# of the owner's shared with carol, "A" the owner, "C" carol; None: no list, top level). None
# for the expected pairs: the move leaves L, so no member sees its entry.
MOVE_ROUTES = ("PATCH", "POST /move")
BOUNDARY_MOVES: dict[str, tuple[dict[str, str], dict[str, str | None], dict[str, Any] | None]] = {
    # made with,             moved with,                         [old, new] of list, parent
    "from a private list": (
        {"list_id": "P"},
        {"list_id": "L"},
        {"list_id": ["P", "L"]},
    ),
    "from under a private parent": (
        {"parent_id": "PT"},
        {"list_id": "L", "parent_id": None},
        {"list_id": ["P", "L"], "parent_id": ["PT", None]},
    ),
    "from under a private parent to under T": (
        {"parent_id": "PT"},
        {"parent_id": "T"},
        {"list_id": ["P", "L"], "parent_id": ["PT", "T"]},
    ),
    "from under a personal task": (
        {"parent_id": "PP"},
        {"list_id": "L", "parent_id": None},
        {"list_id": [None, "L"], "parent_id": ["PP", None]},
    ),
    "out to a private list": (
        {"list_id": "L"},
        {"list_id": "P"},
        None,
    ),
    "from another shared list with assignees": (
        {"list_id": "O", "assignees": ["A", "C"]},
        {"list_id": "L"},
        {"list_id": ["O", "L"], "assignees": [["A", "C"], ["A"]]},
    ),
}
# The fields whose values are arrays of user ids: a member reads only those it may know.
USER_FIELDS = ("assignees",)


def _moved(
    client: TestClient,
    shared: SharedList,
    rows: Boundary,
    move: str,
    route: str,
    carol: Callable[[], Account],
    db_engine: Engine,
) -> tuple[int, dict[str, Any]]:
    """The owner makes a task where `move` starts and moves it across; its id, and every id
    by its name."""
    owner = shared.owner
    ids: dict[str, Any] = {
        "L": shared.list_id,
        "T": shared.task_id,
        "P": rows.private_list,
        "PT": rows.private_task,
        "PP": rows.personal_task,
        "A": owner.id,
        None: None,
    }
    made_with, moved_with, _ = BOUNDARY_MOVES[move]
    if "O" in made_with.values():  # another list of the owner's, shared with carol only
        ids["O"] = make_list(client, owner, "Other")
        ids["C"] = carol().id
        add_member(db_engine, owner, ids["O"], carol(), "viewer")

    def named(value: Any) -> Any:
        return [ids[name] for name in value] if isinstance(value, list) else ids[value]

    task_id = make_task(client, owner, "X", **{k: named(v) for k, v in made_with.items()})
    body = {k: ids[v] for k, v in moved_with.items()}
    if route == "PATCH":
        answer = client.patch(f"/api/tasks/{task_id}", json=body, headers=owner.headers)
    else:
        answer = client.post(f"/api/tasks/{task_id}/move", json=body, headers=owner.headers)
    assert answer.status_code == 200, answer.text
    return task_id, ids


def _move_entries(items: list[dict[str, Any]], task_id: int) -> list[dict[str, Any]]:
    return [
        item
        for item in items
        if item["object_type"] == "task"
        and item["object_id"] == task_id
        and item["event"] == "task.updated"
    ]


@pytest.mark.parametrize("standing", STANDINGS)
@pytest.mark.parametrize("route", MOVE_ROUTES)
@pytest.mark.parametrize("move", sorted(BOUNDARY_MOVES))
def test_the_activity_of_a_move_across_the_boundary_names_only_readable_rows(
    client: TestClient,
    shared_list: SharedList,
    bob: Account,
    grant: Grant,
    db_engine: Engine,
    register: Callable[..., Account],
    move: str,
    route: str,
    standing: str,
) -> None:
    rows = _boundary(client, shared_list)
    caller = take(client, shared_list, bob, grant, db_engine, standing)
    carol: list[Account] = []

    def carol_once() -> Account:
        if not carol:
            carol.append(register("carol@example.com"))
        return carol[0]

    task_id, ids = _moved(client, shared_list, rows, move, route, carol_once, db_engine)
    recorded = BOUNDARY_MOVES[move][2]
    everywhere = get(client, caller, "/api/activity", limit=100)["data"]
    listed = client.get(
        f"/api/lists/{shared_list.list_id}/activity", params={"limit": 100}, headers=caller.headers
    )
    if standing in NO_ROLE:  # nothing of the list, the move's entry neither
        assert _move_entries(everywhere, task_id) == []
        assert listed.status_code == 404, listed.text
        return
    assert listed.status_code == 200, listed.text
    in_list = listed.json()["data"]
    if recorded is None:  # moved out: the entry is P's, the owner's alone
        assert _move_entries(in_list, task_id) == []
        assert bool(_move_entries(everywhere, task_id)) is (standing == "owner")
        return
    # What a member reads of the owner's rows: L and its tasks, no list, no parent; of its
    # users: the owner and L's members (itself), never carol (a member of O alone).
    readable = {None, ids["L"], ids["T"]}
    known = {ids["A"], bob.id}
    owner = standing == "owner"
    expected = {
        field: [[ids[name] for name in side if owner or ids[name] in known] for side in pair]
        if field in USER_FIELDS
        else [ids[name] if owner or ids[name] in readable else None for name in pair]
        for field, pair in recorded.items()
    }
    for items in (everywhere, in_list):
        entry = _move_entries(items, task_id)[0]
        assert {field: entry["changes"].get(field) for field in expected} == expected
        if owner:
            continue
        # Nor in any other entry a member reads: no id of the owner's rows it may not read.
        for item in items:
            for field in ("list_id", "parent_id"):
                for value in (item["changes"] or {}).get(field, []):
                    assert value in readable, (item, field)
            for field in USER_FIELDS:
                for side in (item["changes"] or {}).get(field, []):
                    assert set(side) <= known, (item, field)


# -- DAV (issue 62): each declared DAV method (backend/dav/routes.py `acts_by_method`) --------


@dataclass(frozen=True)
class DavSend:
    """One way a declared DAV method is sent: its headers and body, at the list's collection,
    the list's task's object (`task-<id>@task-api.ics`) or a name nothing holds (a create),
    and the 2xx a role that may gets."""

    name: str
    target: str
    ok: int
    headers: tuple[tuple[str, str], ...] = ()
    body: str = ""


_PROPFIND = '<D:propfind xmlns:D="DAV:"><D:prop><D:getetag/><D:displayname/></D:prop></D:propfind>'
_REPORT = '<C:{kind} xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">{inner}</C:{kind}>'
_MULTIGET = _REPORT.format(
    kind="calendar-multiget", inner="<D:prop><D:getetag/></D:prop><D:href>OBJECT</D:href>"
)
_QUERY = _REPORT.format(
    kind="calendar-query",
    inner='<D:prop><C:calendar-data/></D:prop><C:filter><C:comp-filter name="VCALENDAR">'
    '<C:comp-filter name="VTODO"/></C:comp-filter></C:filter>',
)
_VTODO = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Matrix//EN\r\nBEGIN:VTODO\r\nUID:{uid}\r\n"
    "SUMMARY:Written over DAV\r\nX-MATRIX:kept\r\nEND:VTODO\r\nEND:VCALENDAR\r\n"
)
_PROPPATCH = (
    '<D:propertyupdate xmlns:D="DAV:" xmlns:A="http://apple.com/ns/ical/"><D:set><D:prop>'
    "<D:displayname>Renamed over DAV</D:displayname><A:calendar-color>#FF0000FF</A:calendar-color>"
    "</D:prop></D:set></D:propertyupdate>"
)
NEW_NAME = "matrix-new.ics"
CALENDAR = (("Content-Type", "text/calendar"),)
# How each declared DAV method is sent: every variant a client sends (Depth 0 and 1, both
# reports, an update and a create). A method declared without one fails
# `test_every_declared_dav_method_is_sent`.
COLLECTION, OBJECT = "/dav/calendars/{segment}", "/dav/calendars/{segment}/{name:path}"
DAV_SENDS: dict[tuple[str, str], tuple[DavSend, ...]] = {
    ("PROPFIND", COLLECTION): (
        DavSend("depth 0", "collection", 207, (("Depth", "0"),), _PROPFIND),
        DavSend("depth 1", "collection", 207, (("Depth", "1"),), _PROPFIND),
    ),
    ("REPORT", COLLECTION): (
        DavSend("multiget", "collection", 207, (("Depth", "1"),), _MULTIGET),
        DavSend("query", "collection", 207, (("Depth", "1"),), _QUERY),
    ),
    ("PROPPATCH", COLLECTION): (DavSend("rename", "collection", 207, (), _PROPPATCH),),
    ("DELETE", COLLECTION): (DavSend("", "collection", 204),),
    ("PROPFIND", OBJECT): (DavSend("depth 0", "object", 207, (("Depth", "0"),), _PROPFIND),),
    ("GET", OBJECT): (DavSend("", "object", 200),),
    ("HEAD", OBJECT): (DavSend("", "object", 200),),
    ("PUT", OBJECT): (
        DavSend("update", "object", 204, CALENDAR, _VTODO.format(uid="task-TASK@task-api")),
        DavSend(
            "create", "new", 201, (*CALENDAR, ("If-None-Match", "*")), _VTODO.format(uid="new")
        ),
    ),
    ("DELETE", OBJECT): (DavSend("", "object", 204),),
}
DAV_CASES = [(route, send) for route in sorted(DAV_ROUTES) for send in DAV_SENDS.get(route, ())]


def test_every_declared_dav_method_is_sent() -> None:
    """The DAV matrix covers what backend/dav/routes.py declares, and only that."""
    assert set(DAV_SENDS) == set(DAV_ROUTES)


def _basic(client: TestClient, account: Account) -> dict[str, str]:
    """An `Authorization: Basic` header with a new app password of `account`'s."""
    made = client.post(
        "/api/app-passwords",
        json={"name": "matrix", "scope": "read_write"},
        headers=account.headers,
    )
    assert made.status_code == 201, made.text
    data = made.json()["data"]
    pair = f"{data['username']}:{data['password']}".encode()
    return {"Authorization": "Basic " + base64.b64encode(pair).decode()}


def _dav_path(send: DavSend, list_id: int, task_id: int) -> str:
    collection = f"/dav/calendars/{list_id}/"
    if send.target == "collection":
        return collection
    return collection + (NEW_NAME if send.target == "new" else f"task-{task_id}@task-api.ics")


def _list_state(client: TestClient, shared: SharedList) -> Any:
    """The list's tasks as the owner reads them (every field: a write would show)."""
    page = client.get(f"/api/tasks?list_id={shared.list_id}", headers=shared.owner.headers)
    assert page.status_code == 200, page.text
    return page.json()["data"]


@pytest.mark.parametrize("standing", STANDINGS)
@pytest.mark.parametrize(
    "case", DAV_CASES, ids=lambda c: f"{c[0][0]} {c[0][1]} {c[1].name}".rstrip()
)
def test_a_dav_method_answers_as_the_declared_role_allows(
    client: TestClient,
    shared_list: SharedList,
    bob: Account,
    grant: Grant,
    db_engine: Engine,
    case: tuple[tuple[str, str], DavSend],
    standing: str,
) -> None:
    """Signed in with an app password (Basic): a role the method's action allows gets its
    2xx; one below it 403 with nothing changed; no role, the missing collection's or
    object's 404, byte for byte."""
    (method, _), send = case
    caller = take(client, shared_list, bob, grant, db_engine, standing)
    auth = _basic(client, caller)
    task_id, list_id = shared_list.task_id, shared_list.list_id

    def request(in_list: int) -> Any:
        body = send.body.replace("TASK", str(task_id))
        body = body.replace("OBJECT", _dav_path(DavSend("", "object", 0), in_list, task_id))
        headers = {**auth, **dict(send.headers)}
        return client.request(
            method, _dav_path(send, in_list, task_id), content=body.encode(), headers=headers
        )

    before = _list_state(client, shared_list)
    answer = request(list_id)
    if standing in NO_ROLE:
        missing = request(MISSING)
        assert answer.status_code == 404, answer.text
        assert answer.content == missing.content
        assert _list_state(client, shared_list) == before
    elif allows(standing, DAV_ROUTES[case[0]]):
        assert answer.status_code == send.ok, answer.text
        if method in ("GET", "HEAD"):
            assert answer.headers["etag"]
    else:
        assert answer.status_code == 403, answer.text
        assert b"<D:error" in answer.content or b":error" in answer.content
        assert _list_state(client, shared_list) == before


def test_the_matrix_size(capsys: pytest.CaptureFixture[str]) -> None:
    """Every declared route, tool, feed read and DAV request x every standing; the size is
    printed, the DAV methods in it."""
    rest, dav = len(ROUTES), len(DAV_CASES)
    size = (rest + len(TOOLS) + len(FEED_READS) + dav) * len(STANDINGS)
    methods = sorted({method for (method, _), _ in DAV_CASES})
    with capsys.disabled():
        print(
            f"\nrole matrix: ({rest} routes + {len(TOOLS)} tools + {len(FEED_READS)} feed reads"
            f" + {dav} DAV requests [{', '.join(methods)}]) x {len(STANDINGS)} standings"
            f" = {size} cases"
        )
    assert {"PROPFIND", "REPORT", "GET", "HEAD", "PUT", "DELETE"} <= set(methods)
