"""The reference matrix, generated from the declarations (issue 49): every field of every
route's body or query and every MCP tool's arguments that declares a `Reference` to a task, a
list or a user it assigns (backend/models/references.py; found by tests/sharing/references.py,
so a new field adds its cases with no test edited) x every caller (the owner of the route's
row, a member with each role, a stranger, a removed member) x every kind of row the field may
name (the caller's own personal task, its own list's, a list of the owner's where it has each
role, the route's own list, the owner's private list, the owner's personal task, another
user's row, a missing id; for an assignee: the list's owner, the caller, a member, a removed
member, a stranger, an unknown id).

The answer each case must get:
- the route's own row (a path's `{task_id}`/`{list_id}`, a tool's `task_id`) unreachable: the
  bytes the same request by a missing id gets; its role below the route's action: 403;
- the named row unreadable (another user's, the owner's private one for a member, a missing
  id): the bytes the same request naming a missing id gets (a write: 404), nothing changed;
- readable with a role below the field's action: 403 `FORBIDDEN`, nothing changed;
- in another owner's space than the route's row (a task moves only between one owner's
  lists): refused, nothing changed (a list: 422, as the contract says; a task: 404 or 422);
- an assignee who is neither the task's owner nor a member of its list: the bytes an unknown
  id gets (422);
- otherwise a 2xx.

Each test is one field and one caller; it sends every kind of row and fails listing every
case that answered otherwise (the case ids: `<field> | <caller> | <row>`).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from backend.mcp.tools import TOOLS as MCP_TOOLS
from backend.models.references import LISTS, MEMBERS, TASKS, Reference
from backend.models.types import TAGS_MAX_COUNT
from backend.services.statements.access import LEAST_ROLE, Action, allows
from tests.conftest import Account, api_routes
from tests.mcp.conftest import call_tool_rpc
from tests.mcp.test_isolation import extra_arguments
from tests.resources import LIST, TASK, Placeholder, body_model, samples
from tests.sharing.conftest import SharedList
from tests.sharing.helpers import add_member, remove_member
from tests.sharing.references import ROUTES, TOOLS, Field, declared_app, failure, id_fields

MISSING = 2_000_000_000
# A missing route row: another id than the missing named one (a row named after itself is
# refused from the two ids alone: "a task cannot be its own parent").
MISSING_SUBJECT = MISSING + 1
ROLES = ("admin", "editor", "commenter", "viewer")
STANDINGS = ("owner", *ROLES, "stranger", "removed")


def _in_matrix(reference: Reference | None) -> bool:
    """A reference to a task or a list, or to a user who may be assigned a task. Not here:
    a transfer's member (tests/sharing/test_transfer.py and the role matrix), a
    conversation (chat's own tests) and the caller's own `user_id` of a tool
    (tests/mcp)."""
    if reference is None or reference.action is None:
        return False
    if reference.table == MEMBERS:
        return reference.action is Action.TASK_WRITE
    return reference.table in (TASKS, LISTS)


FIELDS = [f for f in id_fields(declared_app()) if _in_matrix(f.reference)]

# What each route or tool with such a field is sent besides it ("$task": the route's own
# task; "$list": its own list), where `_derived_base` would not do: a body whose samples
# naming the field (or, none naming it, the first) carry other changes a field's case would
# meet (a rule: a subtask may not recur; another step of a bulk's on the route's task), a
# tool whose examples do. A route or tool without a line (a new one's, a task's child's)
# takes `_derived_base`: nothing to add here.
BASES: dict[tuple[str, str], dict[str, Any]] = {
    # The field alone, not the first sample's other changes (assignees: no sample names it).
    ("PATCH", "/api/tasks/{task_id}"): {},
    ("PUT", "/api/tasks/{task_id}"): {},
    # One move of the route's own task into its own list (it stays where it is): the field
    # replaces one of them.
    ("POST", "/api/tasks/bulk"): {
        "operations": [{"op": "move", "id": "$task", "list_id": "$list"}]
    },
    ("tool", "add_task"): {"title": "Named"},
}


def _placeholders(value: Any) -> Any:
    """A sample with its task and list placeholders (tests/resources.py) the route's own."""
    if isinstance(value, dict):
        return {k: _placeholders(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_placeholders(v) for v in value]
    if isinstance(value, Placeholder):
        return {TASK: "$task", LIST: "$list"}.get(value, value)
    return value


def _derived_base(f: Field) -> dict[str, Any]:
    """What a route or tool with no line in `BASES` is sent besides the field, from its
    declarations: a tool its `task_id` the route's own task and every other required argument
    its first `examples` (or a task's child's field its declared sample); a body the first of
    its schema's samples that names the field (tests/resources.py: `SAMPLES`, the schema's
    `examples`, a child's sample), that field left out where it is the body's own, else its
    first sample; a query or a path nothing."""
    method, name = f.target
    if method == "tool":
        tool = next(tool for tool in MCP_TOOLS if tool.name == name)
        base = extra_arguments(tool)[0]
        if "task_id" in tool.arguments.model_json_schema(by_alias=True)["properties"]:
            base = {**base, "task_id": "$task"}
        return dict(base)
    if f.where != "body":
        return {}
    route = next(r for r in api_routes(declared_app()) if r.path == name and method in r.methods)
    model = body_model(route)
    assert model is not None and samples(model), f"{f.target}: no sample body"
    naming = [sample for sample in samples(model) if _has(sample, f.path)]
    if not naming:
        return dict(_placeholders(samples(model)[0]))
    return {k: v for k, v in _placeholders(naming[0]).items() if k != f.path}


def _has(body: Any, path: str) -> bool:
    """Whether `body` has a value at `path` (`operations[].list_id`: in its first item)."""
    head, _, rest = path.partition(".")
    key = head.removesuffix("[]")
    if not isinstance(body, dict) or key not in body:
        return False
    if not rest:
        return True
    value = body[key]
    return _has(value[0] if head.endswith("[]") and value else value, rest)


def _base(f: Field) -> dict[str, Any]:
    return BASES[f.target] if f.target in BASES else _derived_base(f)


@dataclass
class Row:
    """A row a case names: its id, whose space it is in, and the list it is in (None: a
    personal task)."""

    id: int
    space: str
    list_id: int | None


@dataclass
class World:
    alice: Account  # the owner of the route's list
    bob: Account  # the caller, in every standing
    carol: Account  # another user
    shared: int  # alice's list the route's task is in; bob's standing is towards it
    lists: dict[str, int] = field(default_factory=dict)  # row kind -> the list it is in
    roles: dict[int, dict[str, str]] = field(default_factory=dict)  # list -> member -> role
    # A viewer of the route's list and a member removed from it (the assignee kinds).
    members: dict[str, Account] = field(default_factory=dict)


def _account(client: TestClient, email: str) -> Account:
    made = client.post("/api/auth/register", json={"email": email, "password": "password-123"})
    assert made.status_code == 201, made.text
    body = made.json()["data"]
    token = body["access_token"]
    return Account(
        body["user"]["id"], email, "password-123", token, {"Authorization": f"Bearer {token}"}
    )


_names = itertools.count()


def _list(client: TestClient, owner: Account) -> int:
    made = client.post("/api/lists", json={"name": f"L{next(_names)}"}, headers=owner.headers)
    assert made.status_code == 201, made.text
    list_id: int = made.json()["data"]["id"]
    return list_id


def _task(client: TestClient, owner: Account, list_id: int | None, **more: Any) -> int:
    body = {"title": f"T{next(_names)}", **({"list_id": list_id} if list_id else {}), **more}
    made = client.post("/api/tasks", json=body, headers=owner.headers)
    assert made.status_code == 201, made.text
    task_id: int = made.json()["data"]["id"]
    return task_id


def _world(client: TestClient, db_engine: Engine) -> World:
    alice = _account(client, "alice@example.com")
    bob = _account(client, "bob@example.com")
    carol = _account(client, "carol@example.com")
    world = World(alice, bob, carol, shared=_list(client, alice))
    world.lists["bob's list"] = _list(client, bob)
    for role in ROLES:
        list_id = _list(client, alice)
        add_member(db_engine, alice, list_id, bob, role)
        world.lists[f"alice's, bob {role}"] = list_id
        world.roles[list_id] = {bob.id: role}
    world.lists["the route's list"] = world.shared
    world.lists["alice's private list"] = _list(client, alice)
    world.lists["carol's list"] = _list(client, carol)
    return world


def _members(client: TestClient, db_engine: Engine, world: World) -> None:
    dave = _account(client, "dave@example.com")
    erin = _account(client, "erin@example.com")
    add_member(db_engine, world.alice, world.shared, dave, "viewer")
    world.roles.setdefault(world.shared, {})[dave.id] = "viewer"
    add_member(db_engine, world.alice, world.shared, erin, "editor")
    remove_member(db_engine, world.shared, erin)
    world.members = {"dave (a viewer of the route's list)": dave, "erin (removed from it)": erin}


def _owner_of(world: World, kind: str) -> Account:
    if kind.startswith("bob"):
        return world.bob
    return world.carol if kind.startswith("carol") else world.alice


def _fresh_row(client: TestClient, world: World, table: str, kind: str) -> Row | None:
    """A new row of `kind` (None: missing), so no case sees what an earlier one changed."""
    if kind == "missing":
        return None
    owner = _owner_of(world, kind)
    if table == LISTS:
        return Row(world.lists[kind], owner.id, world.lists[kind])
    if kind.endswith("personal task"):
        completed = {"completed": True} if owner is world.alice else {}
        return Row(_task(client, owner, None, **completed), owner.id, None)
    list_id = world.lists[kind]
    return Row(_task(client, owner, list_id), owner.id, list_id)


TASK_KINDS = (
    "bob's personal task",
    "bob's list",
    *(f"alice's, bob {role}" for role in ROLES),
    "the route's list",
    "alice's private list",
    "alice's personal task",
    "carol's list",
    "missing",
)
LIST_KINDS = tuple(k for k in TASK_KINDS if not k.endswith("personal task"))
# Who an assignee field may name: the task's owner or a member of its list (a task in no
# list: its owner only); anyone else answers as an unknown id (422).
MEMBER_KINDS = (
    "alice (the list's owner)",
    "bob",
    "dave (a viewer of the route's list)",
    "erin (removed from it)",
    "carol (no member)",
    "missing",
)
MISSING_USER = "00000000-0000-4000-8000-000000000000"


def _user(world: World, kind: str) -> str:
    if kind == "missing":
        return MISSING_USER
    named = {"alice": world.alice, "bob": world.bob, "carol": world.carol}
    account = named.get(kind.split(" ")[0]) or world.members[kind]
    return account.id


def _assignable(world: World, caller: Account, subject: bool, user: str) -> bool:
    """Whether `user` may be assigned the task: the route's task is in alice's shared list
    (its owner and members); a task a route creates is the caller's personal one."""
    if not subject:
        return user == caller.id
    return user == world.alice.id or user in world.roles.get(world.shared, {})


def _role(world: World, caller: Account, row: Row | None) -> str | None:
    """The caller's role towards the row (None: it cannot read it)."""
    if row is None:
        return None
    if row.space == caller.id:
        return "owner"
    if row.list_id is None:
        return None
    return world.roles.get(row.list_id, {}).get(caller.id)


def _standing(world: World, db_engine: Engine, standing: str) -> Account:
    """Give bob `standing` towards the route's list; the caller of that standing."""
    shared = world.roles.setdefault(world.shared, {})
    remove_member(db_engine, world.shared, world.bob)
    shared.pop(world.bob.id, None)
    if standing == "owner":
        return world.alice
    if standing == "removed":
        add_member(db_engine, world.alice, world.shared, world.bob, "admin")
        remove_member(db_engine, world.shared, world.bob)
    elif standing != "stranger":
        add_member(db_engine, world.alice, world.shared, world.bob, standing)
        shared[world.bob.id] = standing
    return world.bob


@dataclass(frozen=True)
class Answer:
    status: int
    content: bytes
    code: str | None


_TOOL_STATUS = {"NOT_FOUND": 404, "FORBIDDEN": 403, "CONFLICT": 409}


def _send(
    client: TestClient,
    target: tuple[str, str],
    caller: Account,
    subject: dict[str, int],
    where: str,
    body: dict[str, Any],
) -> Answer:
    method, name = target
    if method == "tool":
        result = call_tool_rpc(client, "/mcp", caller.token, name, body)
        content = json.dumps(result["content"]).encode()
        if not result["isError"]:
            return Answer(200, content, None)
        code = json.loads(result["content"][0]["text"])["error"]["code"]
        return Answer(_TOOL_STATUS.get(code, 422), content, code)
    path = name.format(**subject)
    if where == "query":
        answer = client.request(method, path, params=body, headers=caller.headers)
    else:
        answer = client.request(method, path, json=body, headers=caller.headers)
    code = answer.json()["error"]["code"] if answer.status_code >= 400 else None
    return Answer(answer.status_code, answer.content, code)


def _fill(value: Any, task: int, list_id: int) -> Any:
    if value == "$task":
        return task
    if value == "$list":
        return list_id
    if isinstance(value, dict):
        return {k: _fill(v, task, list_id) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, task, list_id) for v in value]
    return value


def _set(body: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """`body` with the field at `path` (`operations[].list_id`: in the first item) set."""
    head, _, rest = path.partition(".")
    if head.endswith("[]"):
        key = head[:-2]
        items = list(body[key])
        items[0] = _set(items[0], rest, value)
        return {**body, key: items}
    if rest:
        return {**body, head: _set(body[head], rest, value)}
    return {**body, head: value}


def _state(db_engine: Engine) -> list[Any]:
    with db_engine.connect() as conn:
        tasks = conn.execute(text("SELECT * FROM tasks ORDER BY id")).all()
        lists = conn.execute(text("SELECT * FROM task_lists ORDER BY id")).all()
    return [tuple(r) for r in tasks] + [tuple(r) for r in lists]


def _subject_action(target: tuple[str, str], base: dict[str, Any]) -> Action | None:
    """The action on the route's own row (a path's `{task_id}`/`{list_id}`, or the task and
    list its base body names); None: it has none (a create, a listing)."""
    if target in ROUTES:
        return ROUTES[target]
    if "$task" in json.dumps(base) or "$list" in json.dumps(base):
        return TOOLS[target[1]] if target[0] == "tool" else Action.TASK_WRITE
    return None


def _check(
    client: TestClient, db_engine: Engine, world: World, f: Field, standing: str
) -> list[str]:
    """Every row kind for field `f` sent by the caller of `standing`; the failed cases."""
    reference = f.reference
    assert reference is not None and reference.action is not None
    caller = _standing(world, db_engine, standing)
    base = _base(f)
    subject_action = _subject_action(f.target, base)
    kinds = _kinds(f)
    if reference.table == MEMBERS:
        _members(client, db_engine, world)
    failures: list[str] = []
    # The route's task and the named rows are made once and made again only after a case
    # that changed rows: a refused case leaves them as they were (which it checks).
    task: int | None = None
    made: dict[str, Row | None] = {}
    before: list[Any] | None = None  # the rows as the previous case left them
    for kind in kinds:
        expected: Answer | None = None
        if task is None:
            task, before = _task(client, world.alice, world.shared), None
        row: Row | None = None
        named: Any
        if reference.table == MEMBERS:
            named = [_user(world, kind)]
            missing_named: Any = [MISSING_USER]
        else:
            if kind not in made:
                made[kind], before = _fresh_row(client, world, reference.table, kind), None
            row = made[kind]
            named = row.id if row else MISSING
            missing_named = MISSING
        subject = {"task_id": task, "list_id": world.shared}
        body = _set(_fill(base, task, world.shared), f.path, named)
        before = before or _state(db_engine)
        answer = _send(client, f.target, caller, subject, f.where, body)
        after = _state(db_engine)
        changed = after != before
        before = after
        subject_role = _role(world, caller, Row(task, world.alice.id, world.shared))
        ref_role = _role(world, caller, row)
        if subject_action is not None and subject_role is None:
            gone = {"task_id": MISSING_SUBJECT, "list_id": MISSING_SUBJECT}
            without = _set(_fill(base, MISSING_SUBJECT, MISSING_SUBJECT), f.path, named)
            expected = _send(client, f.target, caller, gone, f.where, without)
            ok = answer == expected and answer.status == 404 and not changed
            want = "the answer for a missing route row (404)"
            if f.target not in ROUTES and ref_role and not allows(ref_role, reference.action):
                # Named in the body beside the field, the route's row is one of two refused:
                # which the server names first is its choice (neither tells of the other).
                ok = answer.status in (403, 404) and not changed
                want = "403 or 404 (one row unreadable, its role below on the other)"
        elif subject_action is not None and not allows(subject_role, subject_action):
            ok = answer.status == 403 and answer.code == "FORBIDDEN" and not changed
            want = "403 (its role on the route's row)"
            if f.target not in ROUTES and ref_role is None:
                # As above: the route's row named in the body (a bulk move's task and list).
                ok = answer.status in (403, 404) and not changed
                want = "403 or 404 (its role on one row, the other unreadable)"
        elif reference.table == MEMBERS:
            if _assignable(world, caller, subject_action is not None, named[0]):
                ok = 200 <= answer.status < 300
                want = "2xx (may be assigned)"
            else:
                missing = _set(_fill(base, task, world.shared), f.path, missing_named)
                expected = _send(client, f.target, caller, subject, f.where, missing)
                echoed = Answer(
                    answer.status,
                    answer.content.replace(named[0].encode(), MISSING_USER.encode()),
                    answer.code,
                )
                ok = echoed == expected and answer.status == 422 and not changed
                want = "the answer for an unknown user id (422)"
        elif ref_role is None:
            missing = _set(_fill(base, task, world.shared), f.path, missing_named)
            expected = _send(client, f.target, caller, subject, f.where, missing)
            ok = answer == expected and not changed
            if f.where != "query" and f.target != ("tool", "list_tasks"):
                ok = ok and answer.status == 404
            want = "the answer for a missing id"
        elif not allows(ref_role, reference.action):
            ok = answer.status == 403 and answer.code == "FORBIDDEN" and not changed
            want = f"403 (needs {LEAST_ROLE[reference.action].value})"
        elif subject_action is not None and row is not None and row.space != world.alice.id:
            # A task moves only between one owner's lists: a list of another owner's is
            # 422 (specs/api-contract.md, "Shared lists"); a task there, as a missing one.
            ok = answer.status in ((422,) if reference.table == LISTS else (404, 422))
            ok = ok and not changed
            want = "refused (another owner's space than the route's row)"
        else:
            ok = 200 <= answer.status < 300
            want = "2xx"
        if changed:
            task, before = None, None
            made.clear()
        if not ok:
            missed = None if expected is None else (expected.status, expected.content)
            got = (answer.status, answer.content)
            failures.append(failure(f"{f.id} | {standing} | {kind}", want, got, changed, missed))
    return failures


KINDS = {TASKS: TASK_KINDS, LISTS: LIST_KINDS, MEMBERS: MEMBER_KINDS}


def _kinds(f: Field) -> tuple[str, ...]:
    """The kinds of row field `f` is sent: its table's, but a list route's own list (a list is
    never its own anchor: 422 from the two ids alone)."""
    assert f.reference is not None
    own = f.reference.table == LISTS and "{list_id}" in f.target[1]
    return tuple(k for k in KINDS[f.reference.table] if not (own and k == "the route's list"))


CASES = [(f, standing) for f in FIELDS for standing in STANDINGS]


def test_every_referring_route_has_a_base() -> None:
    """A line in `BASES` or one derived from the declarations, for each; no stale line."""
    assert set(BASES) <= {f.target for f in FIELDS}
    for f in FIELDS:
        assert isinstance(_base(f), dict), f.id


def test_the_matrix_size(capsys: pytest.CaptureFixture[str]) -> None:
    """Every declared reference in the matrix, every caller, every row kind; the size is
    printed (issue 49's target)."""
    size = sum(len(_kinds(f)) for f, _ in CASES)
    routes = {f.target for f in FIELDS}
    with capsys.disabled():
        print(
            f"\nreference matrix: {len(FIELDS)} fields on {len(routes)} routes and tools x "
            f"{len(STANDINGS)} callers x their row kinds = {size} cases"
        )
    tables = {f.reference.table for f in FIELDS if f.reference}
    assert tables == set(KINDS)
    assert size >= len(FIELDS) * len(STANDINGS) * min(map(len, KINDS.values()))


@pytest.mark.parametrize("standing", STANDINGS)
@pytest.mark.parametrize("field", FIELDS, ids=lambda f: f.id)
def test_a_named_row_answers_by_the_callers_role_on_it(
    client: TestClient, db_engine: Engine, field: Field, standing: str
) -> None:
    world = _world(client, db_engine)
    failures = _check(client, db_engine, world, field, standing)
    assert failures == [], "\n".join(failures)


def test_a_bulk_step_below_editor_is_forbidden_before_its_values(
    client: TestClient,
    shared_list: SharedList,
    bob: Account,
    grant: Callable[[SharedList, Account, str | None], None],
) -> None:
    """A viewer's bulk step on a shared task is 403, not the 404 of a task it cannot see,
    and not what the step's values would get (issue 49: a full tag list is 422 to an
    editor, 403 to a viewer); nothing changes."""
    full = [f"t{i}" for i in range(TAGS_MAX_COUNT)]
    tagged = client.patch(
        f"/api/tasks/{shared_list.task_id}", json={"tags": full}, headers=shared_list.owner.headers
    )
    assert tagged.status_code == 200, tagged.text
    grant(shared_list, bob, "viewer")
    steps = (
        {"op": "add_tag", "id": shared_list.task_id, "tag": "one-more"},
        {"op": "complete", "id": shared_list.task_id},
        {"op": "delete", "id": shared_list.task_id},
    )
    for step in steps:
        answer = client.post("/api/tasks/bulk", json={"operations": [step]}, headers=bob.headers)
        assert answer.status_code == 403, answer.text
        assert answer.json()["error"]["code"] == "FORBIDDEN"
    kept = client.get(f"/api/tasks/{shared_list.task_id}", headers=shared_list.owner.headers)
    assert kept.json()["data"]["tags"] == full
    assert kept.json()["data"]["completed"] is False
    grant(shared_list, bob, "editor")
    over = client.post("/api/tasks/bulk", json={"operations": [steps[0]]}, headers=bob.headers)
    assert over.status_code == 422, over.text
