"""The named-row matrix, generated from the declarations (issue 49): every id a route of the
routes' declared actions (tests/sharing/references.py `ROUTES`) carries in its path or body
that names a row of a task's child, a member or an invitation (a `Reference` to the table of
a child with routes, `CHILDREN` in backend/models/task_children.py: comments today, or to
`list_members` or `list_invitations`: found by tests/sharing/references.py, so a new one adds
its cases with no test edited; a child's kinds of row, how one is made, through its POST route
with its body schema's sample, and its rule come from its declaration) x every standing
(tests/sharing/standings.py: the owner, each role, a stranger, a removed member, one who left,
a pending invitee, an expired invitation's holder) x every kind of row its table's id may name.

The answer each case must get:
- no role in the route's list: the bytes the same request by a missing list or task gets (404);
- a member below the route's declared action: 403 `FORBIDDEN` (leaving, a member
  removing itself, needs no role);
- a named row the route cannot reach (missing, another task's comment, another list's
  invitation, a user who is no member): the bytes the same request naming a missing id gets;
- then the row's own rule (specs/api-contract.md, "Comments", "Members, transfer and
  invitations"): another's comment is read by any reader, edited by nobody and deleted by an
  admin; the owner as the member named is 409; an admin, or an admin invitation, needs the
  owner;
- otherwise a 2xx. A refused case changes nothing.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from backend.models.references import INVITATIONS, MEMBERS, Reference
from backend.models.task_children import CHILDREN, TaskChild
from backend.services.statements.access import LEAST_ROLE, Action, allows, least_role
from tests.conftest import Account
from tests.resources import FILE_ROUTES, body_of
from tests.sharing.conftest import SharedList
from tests.sharing.helpers import add_member, invite, make_list, make_task, remove_member
from tests.sharing.references import ROUTES, Field, declared_app, failure, id_fields, sample_body
from tests.sharing.standings import NO_ROLE, STANDINGS, Grant, take

CONTRACT = (Path(__file__).parents[2] / "specs" / "api-contract.md").read_text()
MISSING = 2_000_000_000
MISSING_USER = "00000000-0000-4000-8000-000000000000"
# Every child of a task with routes of its own (backend/models/task_children.py `CHILDREN`):
# its rows' kinds, how one is made and its rule come from the declaration.
ROUTED = {child.name: child for child in CHILDREN if child.path is not None}
TABLES = (*ROUTED, MEMBERS, INVITATIONS)


def _named(reference: Reference | None) -> bool:
    """A comment, a member or an invitation the route acts on (an assignee, a member named
    for a task write, is the reference matrix's)."""
    if reference is None or reference.table not in TABLES:
        return False
    return not (reference.table == MEMBERS and reference.action is Action.TASK_WRITE)


FIELDS = [f for f in id_fields(declared_app()) if f.target in ROUTES and _named(f.reference)]


def _child_kinds(child: TaskChild) -> dict[str, bool]:
    """The kinds of a child's row a route of its may name: on the route's task, the caller's,
    the owner's and an admin's; on another task of the list or the owner's private task."""
    noun = child.noun
    return {
        f"the caller's own {noun}": True,
        f"the owner's {noun}": True,
        f"an admin's {noun}": True,
        f"{child.a_noun} on another task of the list": False,
        f"{child.a_noun} on the owner's private task": False,
        "missing": False,
    }


# The kinds of row each table's id may name; those marked False are unreachable from the
# route's row (the answer a missing id gets).
KINDS: dict[str, dict[str, bool]] = {
    **{name: _child_kinds(child) for name, child in ROUTED.items()},
    MEMBERS: {
        "the owner": True,
        "the caller": True,
        "a viewer": True,
        "an admin": True,
        "a removed member": False,
        "a member who left": False,
        "a pending invitee": False,
        "a stranger": False,
        "missing": False,
    },
    INVITATIONS: {
        "a viewer invitation": True,
        "an admin invitation": True,
        "an invitation of another list": False,
        "missing": False,
    },
}
_names = itertools.count()


@dataclass
class World:
    shared: SharedList
    ids: dict[str, Any]  # kind -> the id that names it (the caller's own: filled per caller)
    people: dict[str, Account]


def _people(register: Callable[..., Account]) -> dict[str, Account]:
    return {kind: register() for kind in ("a viewer", "an admin", "gone", "left", "invitee")}


def _child_row(client: TestClient, child: TaskChild, task: int, author: Account) -> int:
    """A row of the child on the task, added by `author` through its POST route with its
    body schema's sample."""
    route = ("POST", f"/api/tasks/{{task_id}}/{child.path}")
    body = None if route in FILE_ROUTES else sample_body(route, task, 0)
    made = client.post(
        f"/api/tasks/{task}/{child.path}", **body_of(*route, body), headers=author.headers
    )
    assert made.status_code == 201, made.text
    row_id: int = made.json()["data"]["id"]
    return row_id


def _authored(child: TaskChild) -> bool:
    """A child whose rows record who added them (its declared `author`): only that author
    changes one (a member who may `delete_any` deletes any), else any writer of the task."""
    return child.author is not None


def who_deletes(child: TaskChild) -> str:
    """The contract's "who" for a child's `DELETE`, from its declaration."""
    writer = least_role(child.action(writes=True))
    if not child.author:
        return f"{writer}+"
    if child.delete_any is child.write:
        return f"{writer}+ (anyone's)"
    if child.delete_any:
        return f"its author ({writer}+), or {least_role(child.delete_any)}+"
    return f"its author ({writer}+)"


def _world(
    client: TestClient, db_engine: Engine, alice: Account, bob: Account, people: dict[str, Account]
) -> World:
    """Alice's list (a task, another task), her private list (a task), another of her lists;
    its members, a removed one, one who left, a pending invitee; the comments and invitations
    each kind names. Made again after a case that changed rows."""
    n = next(_names)
    list_id = make_list(client, alice, f"Team {n}")
    task = make_task(client, alice, "T", list_id=list_id)
    other_task = make_task(client, alice, "T2", list_id=list_id)
    private = make_task(client, alice, "P", list_id=make_list(client, alice, f"Private {n}"))
    other_list = make_list(client, alice, f"Other {n}")
    add_member(db_engine, alice, list_id, people["a viewer"], "viewer")
    add_member(db_engine, alice, list_id, people["an admin"], "admin")
    add_member(db_engine, alice, list_id, people["gone"], "editor")
    remove_member(db_engine, list_id, people["gone"])
    add_member(db_engine, alice, list_id, people["left"], "editor")
    left = client.delete(
        f"/api/lists/{list_id}/members/{people['left'].id}", headers=people["left"].headers
    )
    assert left.status_code == 204, left.text
    invite(client, alice, list_id, "editor", people["invitee"].email)
    add_member(db_engine, alice, list_id, bob, "admin")  # bob's rows, then its standing
    ids: dict[str, Any] = {}
    for child in ROUTED.values():
        noun = child.noun
        ids |= {
            f"bob's {noun}": _child_row(client, child, task, bob),
            f"the owner's {noun}": _child_row(client, child, task, alice),
            f"an admin's {noun}": _child_row(client, child, task, people["an admin"]),
            f"{child.a_noun} on another task of the list": _child_row(
                client, child, other_task, alice
            ),
            f"{child.a_noun} on the owner's private task": _child_row(
                client, child, private, alice
            ),
        }
    ids |= {
        "the owner": alice.id,
        "a viewer": people["a viewer"].id,
        "an admin": people["an admin"].id,
        "a removed member": people["gone"].id,
        "a member who left": people["left"].id,
        "a pending invitee": people["invitee"].id,
        "a viewer invitation": invite(client, alice, list_id, "viewer")["id"],
        "an admin invitation": invite(client, alice, list_id, "admin")["id"],
        "an invitation of another list": invite(client, alice, other_list, "viewer")["id"],
    }
    remove_member(db_engine, list_id, bob)
    shared = SharedList(owner=alice, list_id=list_id, task_id=task)
    return World(shared, ids, people)


def _missing(table: str) -> Any:
    return MISSING_USER if table == MEMBERS else MISSING


def _id(world: World, table: str, kind: str, caller: Account, stranger: Account) -> Any:
    if kind == "missing":
        return _missing(table)
    if kind == "the caller":
        return caller.id
    if kind == "a stranger":
        return stranger.id
    if table in ROUTED and kind.startswith("the caller's own "):
        noun = ROUTED[table].noun
        owner = caller.id == world.shared.owner.id
        return world.ids[f"the owner's {noun}" if owner else f"bob's {noun}"]
    return world.ids[kind]


def _rule(f: Field, role: str, kind: str, owner: bool) -> int | None:
    """The row's own rule once the caller may use the route and reaches the row: the status
    (None: a 2xx)."""
    method, route = f.target
    table = f.reference.table if f.reference else ""
    if table in ROUTED:
        noun = ROUTED[table].noun
        mine = kind == f"the caller's own {noun}" or (owner and kind == f"the owner's {noun}")
        # Any row of a task the caller may read is read; only its author edits an authored
        # one (a comment), one who may `delete_any` deletes it (an attachment: any writer);
        # any writer changes another.
        if method == "GET" or mine or not _authored(ROUTED[table]):
            return None
        delete_any = ROUTED[table].delete_any
        if method == "DELETE" and delete_any is not None and allows(role, delete_any):
            return None
        return 403
    if table == MEMBERS:
        if kind == "the owner" or (owner and kind == "the caller"):
            return 409
        admin = kind == "an admin" or (kind == "the caller" and role == "admin")
        if route.endswith("/transfer"):
            return None
        if admin or (sample_body(f.target, 0, 0) or {}).get("role") == "admin":
            return None if allows(role, Action.ADMIN_MANAGE) else 403
        return None
    if kind == "an admin invitation":
        return None if allows(role, Action.ADMIN_MANAGE) else 403
    return None


def _request(f: Field, list_id: int, task_id: int, named: Any) -> tuple[str, str, Any]:
    method, template = f.target
    body = sample_body(f.target, task_id, list_id)
    name = f.path
    if f.where == "body":
        body = {**(body or {}), name: named}
        return method, template.format(list_id=list_id, task_id=task_id), body
    return method, template.format(list_id=list_id, task_id=task_id, **{name: named}), body


def _state(db_engine: Engine) -> list[Any]:
    tables = ("tasks", "task_lists", "list_members", "list_invitations", *ROUTED)
    with db_engine.connect() as conn:
        return [conn.execute(text(f"SELECT * FROM {t} ORDER BY 1, 2")).all() for t in tables]


def _check(
    client: TestClient,
    db_engine: Engine,
    f: Field,
    standing: str,
    register: Callable[..., Account],
    grant: Grant,
) -> list[str]:
    alice, bob, stranger = register(), register(), register()
    people = _people(register)
    table = f.reference.table if f.reference else ""
    action = ROUTES[f.target]
    failures: list[str] = []
    world: World | None = None
    for kind, reachable in KINDS[table].items():
        if world is None:
            world = _world(client, db_engine, alice, bob, people)
            caller = take(client, world.shared, bob, grant, db_engine, standing)
        owner = caller.id == alice.id
        named = _id(world, table, kind, caller, stranger)
        shared = world.shared
        method, path, body = _request(f, shared.list_id, shared.task_id, named)
        before = _state(db_engine)
        answer = client.request(method, path, json=body, headers=caller.headers)
        changed = _state(db_engine) != before
        leaving = method == "DELETE" and table == MEMBERS and kind == "the caller"
        expected = None
        if standing in NO_ROLE:
            missing = _request(f, MISSING, MISSING, named)
            expected = client.request(*missing[:2], json=missing[2], headers=caller.headers)
            ok = (answer.status_code, answer.content) == (404, expected.content) and not changed
            want = "the bytes of a missing list or task (404)"
        elif leaving:
            ok = answer.status_code == (409 if owner else 204)
            want = "409 (the owner)" if owner else "204 (leaving)"
        elif not allows(standing, action):
            ok = answer.status_code == 403 and not changed
            ok = ok and answer.json()["error"]["code"] == "FORBIDDEN"
            want = f"403 (needs {LEAST_ROLE[action].value})"
        elif not reachable:
            missing = _request(f, shared.list_id, shared.task_id, _missing(table))
            expected = client.request(*missing[:2], json=missing[2], headers=caller.headers)
            ok = (answer.status_code, answer.content) == (404, expected.content) and not changed
            want = "the bytes of a missing id (404)"
        else:
            status = _rule(f, standing, kind, owner)
            ok = (
                (200 <= answer.status_code < 300)
                if status is None
                else answer.status_code == status
            )
            ok = ok and (status is None or not changed)
            want = "2xx" if status is None else str(status)
        if changed:
            world = None
        if not ok:
            missing_answer = None if expected is None else (expected.status_code, expected.content)
            got = (answer.status_code, answer.content)
            failures.append(
                failure(f"{f.id} | {standing} | {kind}", want, got, changed, missing_answer)
            )
    return failures


@pytest.mark.parametrize("child", ROUTED.values(), ids=lambda c: c.name)
def test_the_contract_states_who_deletes_each_childs_rows(child: TaskChild) -> None:
    """The rule this matrix tests for a child's `DELETE` (its declaration's `author` and
    `delete_any`) is the one specs/api-contract.md states in that route's row."""
    operation = f"deleteTask{''.join(word.capitalize() for word in child.noun.split())}"
    rows = [line for line in CONTRACT.splitlines() if f"| `{operation}` |" in line]
    assert len(rows) == 1, f"specs/api-contract.md has no one row of {operation}"
    who = rows[0].split(" | ")[2].strip()
    assert who == who_deletes(child), (operation, who)


def test_the_matrix_size(capsys: pytest.CaptureFixture[str]) -> None:
    """Every named-row field x every standing x its table's kinds; the size is printed."""
    size = sum(len(KINDS[f.reference.table]) for f in FIELDS if f.reference) * len(STANDINGS)
    with capsys.disabled():
        print(
            f"\nnamed-row matrix: {len(FIELDS)} fields x {len(STANDINGS)} standings x their "
            f"row kinds = {size} cases"
        )
    assert {f.reference.table for f in FIELDS if f.reference} == set(TABLES)
    assert {f.where for f in FIELDS} == {"path", "body"}


@pytest.mark.parametrize("standing", STANDINGS)
@pytest.mark.parametrize("field", FIELDS, ids=lambda f: f.id)
def test_a_named_row_answers_by_the_callers_standing_and_its_rule(
    client: TestClient,
    db_engine: Engine,
    register: Callable[..., Account],
    grant: Grant,
    field: Field,
    standing: str,
) -> None:
    failures = _check(client, db_engine, field, standing, register, grant)
    assert failures == [], "\n".join(failures)
