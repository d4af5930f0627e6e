"""The error examples in the OpenAPI document are bodies the API really sends: each one that a
test can provoke is provoked here and compared with the example, byte for byte as JSON.

An example of a missing row named by the path (`task_not_found`, a new resource's) needs no
entry: it is provoked on the routes that document it, read from the OpenAPI document, with the
path's last row missing and the others made (tests/resources.py).

A conflict documented on a collection's POST route (a name taken: `list_name_taken`, a new
resource's) needs no entry either: the body schema's first sample (tests/resources.py) is sent
twice, and the second answer is compared with the example (so a new resource writes its 409
example for its sample's values).

The rest cannot be provoked against a healthy test database (`service_unavailable`,
`database_unreachable`, `migrations_pending`; tests/reliability covers those answers), or need a
constraint the validation does not catch (`conflict`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from backend.api.actions import TASK_STATE
from backend.api.named_routes import NAMED_RESOURCES
from backend.api.responses import EXAMPLES
from backend.config import Settings
from backend.errors import LimitReached
from backend.main import create_app
from backend.models.task_children import CHILDREN, TaskChild
from backend.services.history.changes import prune
from backend.services.statements.access import least_role
from tests.conftest import ROOT, Account
from tests.resources import (
    LIST,
    TASK,
    TWIN_PREFIX,
    body_model,
    body_of,
    creators,
    fill_path,
    fill_sample,
    in_state,
    make_row,
    path_parameters,
    samples,
    task_state,
    the_app_routes,
    unique,
)

NOT_PROVOKED = {
    "service_unavailable",
    "database_unreachable",
    "migrations_pending",
    "conflict",
    # An upload's faults need a server with tight bounds or a frozen store:
    # tests/attachments/test_uploads.py (a stalled body's 408, the worker's bound's 503) and
    # tests/reliability/test_storage_hang.py (radosgw frozen: 503).
    "upload_stalled",
    "uploads_busy",
    "storage_unavailable",
    # A file over IMPORT_MAX_BYTES (50 MiB): tests/transfer/test_imports_api.py, on a server
    # with a small bound.
    "import_too_large",
}


def _task(client: TestClient, account: Account) -> int:
    created = client.post("/api/tasks", json={"title": "t"}, headers=account.headers)
    task_id: int = created.json()["data"]["id"]
    return task_id


def _undecodable(client: TestClient, alice: Account) -> httpx.Response:
    headers = {**alice.headers, "Content-Type": "application/json"}
    return client.post("/api/tasks", content=b'{"title": "\xff\xfe"}', headers=headers)


def _email_unconfirmed(client: TestClient, alice: Account) -> httpx.Response:
    return client.patch("/api/notification-settings", json={"email": True}, headers=alice.headers)


def _link_not_found(client: TestClient, alice: Account) -> httpx.Response:
    params = {"user": alice.id, "token": "A" * 43}
    return client.get("/api/notification-settings/confirm", params=params)


def _revoked(client: TestClient, alice: Account) -> httpx.Response:
    client.post("/api/auth/logout-all", headers=alice.headers)
    return client.get("/api/tasks", headers=alice.headers)


def _bulk_missing(client: TestClient, alice: Account) -> httpx.Response:
    body = {"operations": [{"op": "complete", "id": 999_999}]}
    return client.post("/api/tasks/bulk", json=body, headers=alice.headers)


def _precondition(client: TestClient, alice: Account) -> httpx.Response:
    headers = {**alice.headers, "If-Match": '"0-0"'}
    return client.patch(f"/api/tasks/{_task(client, alice)}", json={}, headers=headers)


def _key_mismatch(client: TestClient, alice: Account) -> httpx.Response:
    headers = {**alice.headers, "Idempotency-Key": "k-1"}
    client.post("/api/tasks", json={"title": "first"}, headers=headers)
    return client.post("/api/tasks", json={"title": "second"}, headers=headers)


def _newest_entry(client: TestClient, alice: Account) -> int:
    listed = client.get("/api/activity", params={"limit": 1}, headers=alice.headers)
    return int(listed.json()["data"][0]["id"])


def _undo_conflict(client: TestClient, alice: Account) -> httpx.Response:
    task_id = client.post("/api/tasks", json={"title": "Buy milk"}, headers=alice.headers)
    path = f"/api/tasks/{task_id.json()['data']['id']}"
    client.patch(path, json={"title": "Buy oat milk"}, headers=alice.headers)
    entry = _newest_entry(client, alice)
    client.patch(path, json={"title": "Buy bread"}, headers=alice.headers)
    return client.post(f"/api/activity/{entry}/undo", headers=alice.headers)


def _not_undoable(client: TestClient, alice: Account) -> httpx.Response:
    _list(client, alice)
    return client.post(f"/api/activity/{_newest_entry(client, alice)}/undo", headers=alice.headers)


def _import_not_done(client: TestClient, alice: Account) -> httpx.Response:
    from tests.resources import sample_import

    queued = client.post("/api/imports", **sample_import(), headers=alice.headers)
    return client.post(f"{queued.headers['Location']}/undo", headers=alice.headers)


def _import_not_the_source(client: TestClient, alice: Account) -> httpx.Response:
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("manifest.json", '{"format": "task-api-export", "version": 1}')
        archive.writestr("tasks.jsonl", '{"id": 1, "title": "a"}\n{"id": 2, "title": "b"}\nx\n')
    files = {"file": ("tasks-export.zip", buffer.getvalue(), "application/zip")}
    return client.post("/api/imports", files=files, headers=alice.headers)


def _list(client: TestClient, account: Account, name: str = "Groceries") -> int:
    created = client.post("/api/lists", json={"name": name}, headers=account.headers)
    assert created.status_code == 201, created.text
    list_id: int = created.json()["data"]["id"]
    return list_id


def _cycle(client: TestClient, alice: Account) -> httpx.Response:
    parent = _task(client, alice)
    child = client.post(
        "/api/tasks", json={"title": "c", "parent_id": parent}, headers=alice.headers
    )
    body = {"parent_id": child.json()["data"]["id"]}
    return client.post(f"/api/tasks/{parent}/move", json=body, headers=alice.headers)


def _name_taken(client: TestClient, alice: Account) -> httpx.Response:
    _list(client, alice)
    return client.post("/api/lists", json={"name": "Groceries"}, headers=alice.headers)


def _list_precondition(client: TestClient, alice: Account) -> httpx.Response:
    headers = {**alice.headers, "If-Match": '"0-0"'}
    return client.patch(f"/api/lists/{_list(client, alice)}", json={}, headers=headers)


def _shared(client: TestClient, alice: Account, *roles: str) -> tuple[int, list[Account]]:
    """Alice's list "Groceries" with a member of each role in `roles`, in order."""
    from tests.conftest import _registering
    from tests.sharing.helpers import join, make_list

    list_id = make_list(client, alice, "Groceries")
    register = _registering(client)
    joined = []
    for n, role in enumerate(roles):
        member = register(f"member{n}@example.com")
        join(client, alice, member, list_id, role)
        joined.append(member)
    return list_id, joined


def _only_owner_admins(client: TestClient, alice: Account) -> httpx.Response:
    list_id, (admin, viewer) = _shared(client, alice, "admin", "viewer")
    path = f"/api/lists/{list_id}/members/{viewer.id}"
    return client.patch(path, json={"role": "admin"}, headers=admin.headers)


def _owner_fixed(client: TestClient, alice: Account) -> httpx.Response:
    list_id, (admin,) = _shared(client, alice, "admin")
    path = f"/api/lists/{list_id}/members/{alice.id}"
    return client.patch(path, json={"role": "viewer"}, headers=admin.headers)


def _owner_cannot_leave(client: TestClient, alice: Account) -> httpx.Response:
    list_id, _ = _shared(client, alice)
    return client.delete(f"/api/lists/{list_id}/members/{alice.id}", headers=alice.headers)


def _new_owner_name_taken(client: TestClient, alice: Account) -> httpx.Response:
    list_id, (heir,) = _shared(client, alice, "editor")
    client.post("/api/lists", json={"name": "GROCERIES"}, headers=heir.headers)
    path = f"/api/lists/{list_id}/transfer"
    return client.post(path, json={"user_id": heir.id}, headers=alice.headers)


def _imports_pending(client: TestClient, alice: Account) -> httpx.Response:
    """One import more than a user may have queued (no runner runs them here)."""
    from backend.models.imports import IMPORTS_PENDING_MAX
    from tests.resources import sample_import

    for _ in range(IMPORTS_PENDING_MAX):
        queued = client.post("/api/imports", **sample_import(), headers=alice.headers)
        assert queued.status_code == 202, queued.text
    return client.post("/api/imports", **sample_import(), headers=alice.headers)


PROVOKE: dict[str, Callable[[TestClient, Account], httpx.Response]] = {
    "imports_pending": _imports_pending,
    "email_unconfirmed": _email_unconfirmed,
    "notification_link_not_found": _link_not_found,
    "only_owner_admins": _only_owner_admins,
    "owner_fixed": _owner_fixed,
    "owner_cannot_leave": _owner_cannot_leave,
    "new_owner_name_taken": _new_owner_name_taken,
    "invalid_changes_cursor": lambda client, alice: client.get(
        "/api/tasks/changes", params={"cursor": "x.y"}, headers=alice.headers
    ),
    "undecodable": _undecodable,
    "missing_token": lambda client, _: client.get("/api/tasks"),
    "invalid_token": lambda client, _: client.get(
        "/api/tasks", headers={"Authorization": "Bearer x"}
    ),
    "revoked_token": _revoked,
    "bad_credentials": lambda client, alice: client.post(
        "/api/auth/login", json={"email": alice.email, "password": "wrong-password"}
    ),
    "bulk_task_not_found": _bulk_missing,
    "undo_conflict": _undo_conflict,
    "import_not_done": _import_not_done,
    "import_not_the_source": _import_not_the_source,
    "not_undoable": _not_undoable,
    "activity_entry_not_found": lambda client, alice: client.post(
        "/api/activity/999999999/undo", headers=alice.headers
    ),
    "email_taken": lambda client, alice: client.post(
        "/api/auth/register", json={"email": alice.email, "password": "password-123"}
    ),
    "precondition_failed": _precondition,
    "payload_too_large": lambda client, alice: client.post(
        "/api/tasks", content=b"x" * 65_537, headers=alice.headers
    ),
    "validation_error": lambda client, alice: client.post(
        "/api/tasks", json={"title": ""}, headers=alice.headers
    ),
    "invalid_cursor": lambda client, alice: client.get(
        "/api/tasks?cursor=not-a-cursor", headers=alice.headers
    ),
    "idempotency_key_mismatch": _key_mismatch,
    "list_reference_not_found": lambda client, alice: client.post(
        "/api/tasks", json={"title": "t", "list_id": 999_999}, headers=alice.headers
    ),
    "parent_not_found": lambda client, alice: client.post(
        "/api/tasks", json={"title": "t", "parent_id": 999_999}, headers=alice.headers
    ),
    "subtask_cycle": _cycle,
    "list_name_taken": _name_taken,
    "list_precondition_failed": _list_precondition,
    # The test app has no chat provider configured.
    "chat_not_configured": lambda client, alice: client.post(
        "/api/chat", json={"message": "hi"}, headers=alice.headers
    ),
}
# A chat provider's failures need a model server: tests/chat/test_failures.py provokes each
# one with the fake model and compares its code and message (its details name the turn's
# conversation and committed tool calls, so the body is the example's plus those).
CHAT_PROVIDER = {
    "chat_provider_error",
    "chat_provider_unavailable",
    "chat_provider_timeout",
    "chat_too_many_turns",
    "idempotency_key_in_use",
}
# An item of a ChatKit thread exists only once a turn stored it (the fake model):
# tests/chat/test_chatkit_isolation.py compares its body with the example's.
CHATKIT = {"chatkit_item_not_found"}
# Limits (every `LIMIT_REACHED` example, from the declarations: a new resource's limit needs
# no entry), reached by rows written directly in a test of their own (thousands of requests
# otherwise): here, and `list_members_full` in tests/sharing/test_invitations.py. Each is
# compared with what the API answers somewhere in tests/ (`test_every_limit_is_reached`).
FILLED = {name for name, example in EXAMPLES.items() if example.code == LimitReached.code}
# A member's refusal, in a list shared by a membership row written on the test's own engine:
# test_the_sharing_examples. A task's child's refusals of another's row are generated
# (`AUTHOR_REFUSALS`).
SHARED = {"forbidden"}
# A task's children with a per-task limit and routes: each one's `too_many_<path>` is reached
# by test_a_childs_limit_example, generated from `CHILDREN`.
LIMITED = [child for child in CHILDREN if child.per_task and child.path]


def _missing_rows() -> dict[str, list[tuple[str, str]]]:
    """Each 404 example without details (a row named by the path) -> the GET and DELETE routes
    that document it (not the /api/{user_id}/ twins: their own tests), from the document."""
    document = create_app(Settings(environment="test", jwt_secret="t" * 48)).openapi()
    found: dict[str, list[tuple[str, str]]] = {}
    for path, operations in document["paths"].items():
        if path.startswith(TWIN_PREFIX) or not path_parameters(path):
            continue
        for method, operation in operations.items():
            if method not in ("get", "delete"):
                continue
            content = operation["responses"].get("404", {}).get("content", {})
            for name in content.get("application/json", {}).get("examples", {}):
                if EXAMPLES[name].status == 404 and not EXAMPLES[name].details:
                    found.setdefault(name, []).append((method.upper(), path))
    return found


MISSING_ROWS = _missing_rows()


def _state_refusals() -> dict[str, list[tuple[str, str]]]:
    """Each example provoked nowhere else that a route declaring its task's state documents
    (`acts(..., task=...)`, `x-task-state`: a snooze's `no_due_date`) -> those routes (not
    the /api/{user_id}/ twins): each answers it to its sample on a task not in that state."""
    document = create_app(Settings(environment="test", jwt_secret="t" * 48)).openapi()
    elsewhere = {*PROVOKE, *NOT_PROVOKED, *CHAT_PROVIDER, *CHATKIT, *SHARED, *FILLED}
    elsewhere |= {*MISSING_ROWS, "rate_limited", "cursor_expired"}
    found: dict[str, list[tuple[str, str]]] = {}
    for path, operations in document["paths"].items():
        if path.startswith(TWIN_PREFIX):
            continue
        for method, operation in operations.items():
            if TASK_STATE not in operation:
                continue
            for response in operation["responses"].values():
                content = response.get("content", {}).get("application/json", {})
                for name in content.get("examples", {}):
                    if name in EXAMPLES and name not in elsewhere:
                        found.setdefault(name, []).append((method.upper(), path))
    return found


STATE_REFUSALS = _state_refusals()


def _sent_twice() -> dict[str, list[str]]:
    """Each 409 example provoked nowhere else -> the POST routes (under /api/, not a twin)
    that document it, from the document."""
    document = create_app(Settings(environment="test", jwt_secret="t" * 48)).openapi()
    found: dict[str, list[str]] = {}
    for path, operations in document["paths"].items():
        if path.startswith(TWIN_PREFIX) or "post" not in operations:
            continue
        content = operations["post"]["responses"].get("409", {}).get("content", {})
        for name in content.get("application/json", {}).get("examples", {}):
            provoked = {*PROVOKE, *NOT_PROVOKED, *CHAT_PROVIDER, *CHATKIT, *SHARED, *STATE_REFUSALS}
            if name not in provoked:
                found.setdefault(name, []).append(path)
    return found


SENT_TWICE = _sent_twice()


def _author_refusals() -> dict[str, tuple[TaskChild, str]]:
    """Each refusal of another's row of a task's child with an `author` (api/child_routes.py:
    `not_the_<noun>_author` where it `edits`, `not_the_<noun>_author_or_<role>` where deleting
    another's needs more than writing) -> its child and the method that provokes it, from
    `CHILDREN` and the examples its routes document: a new child needs no line here."""
    found: dict[str, tuple[TaskChild, str]] = {}
    for child in CHILDREN:
        if not (child.author and child.path):
            continue
        stem = f"not_the_{child.snake}_author"
        for name in EXAMPLES:
            if name == stem:
                found[name] = (child, "PATCH")
            elif name.startswith(f"{stem}_or_"):
                found[name] = (child, "DELETE")
    return found


AUTHOR_REFUSALS = _author_refusals()


def test_every_example_is_provoked_or_says_why_not() -> None:
    # rate_limited: test_the_rate_limit_example, on an app with limits on; cursor_expired:
    # test_the_cursor_expired_example, after pruning; a missing row: test_a_missing_row.
    provoked = set(PROVOKE) | NOT_PROVOKED | FILLED | CHAT_PROVIDER | CHATKIT | SHARED
    provoked |= set(MISSING_ROWS) | set(SENT_TWICE) | set(AUTHOR_REFUSALS) | set(STATE_REFUSALS)
    assert provoked | {"rate_limited", "cursor_expired"} == set(EXAMPLES)
    assert not set(PROVOKE) & NOT_PROVOKED


def test_every_limit_is_reached() -> None:
    """A limit's example is named in some test besides this file's declarations (a test that
    fills the rows and compares the answer with `EXAMPLES[name]`), or is a named-rows
    resource's (each reached by tests/api/test_named_resources.py) or a task's child's (each
    reached by test_a_childs_limit_example)."""
    here = Path(__file__).resolve()
    sources = [p.read_text() for p in (ROOT / "tests").rglob("*.py") if p.resolve() != here]
    sources.append(here.read_text().split("def test_every_limit_is_reached", 1)[1])
    assert {"limit_reached", "too_many_lists", "list_members_full"} <= FILLED
    generic = {resource.full.name for resource in NAMED_RESOURCES}  # test_named_resources.py
    generic |= {f"too_many_{child.path}" for child in LIMITED}  # test_a_childs_limit_example
    unreached = sorted(
        name for name in FILLED - generic if not any(f'"{name}"' in s for s in sources)
    )
    assert not unreached, f"limit examples no test reaches: {unreached}"


@pytest.mark.parametrize("name", sorted(PROVOKE))
def test_the_example_is_what_the_api_answers(client: TestClient, alice: Account, name: str) -> None:
    example = EXAMPLES[name]
    response = PROVOKE[name](client, alice)
    assert response.status_code == example.status, response.text
    assert response.json() == example.example()["value"]


@pytest.mark.parametrize("name", sorted(MISSING_ROWS))
def test_a_missing_row(client: TestClient, alice: Account, name: str) -> None:
    """Some route documenting the example answers it, byte for byte, when the last row of its
    path is missing (the rows before it are Alice's own)."""
    makers = creators(the_app_routes())
    answers = []
    for method, path in MISSING_ROWS[name]:
        *outer, last = path_parameters(path)
        known: dict[str, int] = {}
        for parameter in outer:
            make_row(client, alice, parameter, known, makers)
        missing: dict[str, object] = {**known, last: 999_999}
        if path.endswith("/{user_id}"):  # a list's member (sharing): the user is the row
            make_row(client, alice, last, known, makers)
            missing = {**known, "user_id": "no-such-user"}
        response = client.request(method, fill_path(path, missing), headers=alice.headers)
        if response.status_code == 404 and response.json() == EXAMPLES[name].example()["value"]:
            return
        answers.append((method, path, response.status_code, response.text))
    pytest.fail(f"no route documenting {name} answers it: {answers}")


@pytest.mark.parametrize("name", sorted(SENT_TWICE))
def test_a_sample_sent_twice(client: TestClient, alice: Account, name: str) -> None:
    """Some POST route documenting the conflict answers it, byte for byte, to its body
    schema's first sample sent a second time (the rows of its path Alice's own)."""
    routes = the_app_routes()
    makers = creators(routes)
    posts = {r.path: r for r in routes if "POST" in r.methods}
    answers = []
    for path in SENT_TWICE[name]:
        known: dict[str, int] = {}
        for parameter in path_parameters(path):
            make_row(client, alice, parameter, known, makers)
        if "task_id" in known:  # in the state the route declares (`acts(..., task=...)`)
            in_state(client, alice, known["task_id"], "POST", path)
        model = body_model(posts[path])
        assert model is not None and samples(model), f"{path}: no sample body to send twice"
        url, body = fill_path(path, known), samples(model)[0]
        client.post(url, json=body, headers=alice.headers)
        response = client.post(url, json=body, headers=alice.headers)
        if response.status_code == 409 and response.json() == EXAMPLES[name].example()["value"]:
            return
        answers.append((path, body, response.status_code, response.text))
    pytest.fail(f"no POST route documenting {name} answers it to its sample sent twice: {answers}")


def test_the_rate_limit_example(settings: Settings, register: Callable[..., Account]) -> None:
    limited = settings.model_copy(
        update={
            "rate_limit_enabled": True,
            "rate_limit_task_window_seconds": 3600,
            "rate_limit_task_writes_per_user": 1,
        }
    )
    alice = register()
    with TestClient(create_app(limited), raise_server_exceptions=False) as client:
        # One write per window: of three, at least one is refused even if a window ends.
        answers = [
            client.post("/api/tasks", json={"title": "t"}, headers=alice.headers) for _ in range(3)
        ]
    refused = [answer for answer in answers if answer.status_code == 429]
    assert refused, [answer.status_code for answer in answers]
    assert refused[0].json() == EXAMPLES["rate_limited"].example()["value"]


def test_the_cursor_expired_example(client: TestClient, alice: Account, db_engine: Engine) -> None:
    cursor = client.get("/api/tasks", headers=alice.headers).json()["meta"]["changes_cursor"]
    _task(client, alice)
    with db_engine.begin() as conn:  # as if past retention
        conn.execute(text("UPDATE task_events SET occurred_at = now() - interval '1 year'"))
    assert prune(db_engine, 1, undelivered=True) == 1
    answer = client.get("/api/tasks/changes", params={"cursor": cursor}, headers=alice.headers)
    assert answer.status_code == 410
    assert answer.json() == EXAMPLES["cursor_expired"].example()["value"]


def test_the_limit_examples(client: TestClient, alice: Account, setup_engine: Engine) -> None:
    """10,000 tasks in a list and 100 lists, written directly, with no deadline (the limits
    are what a request that would pass them is told)."""
    from backend.models.task_list import LISTS_PER_USER, TASKS_PER_LIST

    full = _list(client, alice, "Full")
    with setup_engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO tasks (user_id, title, list_id, position) "
                "SELECT :user, 't' || n, :list, n FROM generate_series(1, :count) AS n"
            ),
            {"user": alice.id, "list": full, "count": TASKS_PER_LIST},
        )
        conn.execute(
            text(
                "INSERT INTO task_lists (user_id, name, name_key, position) "
                "SELECT :user, 'l' || n, 'l' || n, n FROM generate_series(1, :count) AS n"
            ),
            {"user": alice.id, "count": LISTS_PER_USER - 1},
        )
    answer = client.post("/api/tasks", json={"title": "t", "list_id": full}, headers=alice.headers)
    assert answer.status_code == 422
    assert answer.json() == EXAMPLES["limit_reached"].example()["value"]
    answer = client.post("/api/lists", json={"name": "one more"}, headers=alice.headers)
    assert answer.status_code == 422
    assert answer.json() == EXAMPLES["too_many_lists"].example()["value"]


def test_the_sharing_examples(
    client: TestClient,
    alice: Account,
    register: Callable[..., Account],
    db_engine: Engine,
) -> None:
    """Alice's list shared with Bob as a viewer: what a member below the role is told."""
    bob = register()
    list_id = _list(client, alice)
    task = client.post("/api/tasks", json={"title": "t", "list_id": list_id}, headers=alice.headers)
    comments = f"/api/tasks/{task.json()['data']['id']}/comments"
    alices = client.post(comments, json={"body": "mine"}, headers=alice.headers).json()["data"]
    with db_engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO list_members (user_id, list_id, member_id, role) "
                "VALUES (:owner, :list, :member, 'viewer')"
            ),
            {"owner": alice.id, "list": list_id, "member": bob.id},
        )
    answers = {
        "forbidden": client.post(comments, json={"body": "x"}, headers=bob.headers),
    }
    assert client.get(f"{comments}/{alices['id']}", headers=bob.headers).status_code == 200
    with db_engine.begin() as conn:
        conn.execute(text("UPDATE list_members SET role = 'editor'"))
    files = f"/api/tasks/{task.json()['data']['id']}/attachments"
    upload = client.post(files, files={"file": ("a.txt", b"a")}, headers=alice.headers)
    theirs = f"{files}/{upload.json()['data']['id']}"
    for name, answer in answers.items():
        example = EXAMPLES[name]
        assert answer.status_code == example.status, (name, answer.text)
        assert answer.json() == example.example()["value"], name
    # An editor deletes the owner's file: any writer deletes any attachment, so no refusal of
    # another's is documented.
    assert "not_the_attachment_author_or_editor" not in EXAMPLES
    assert client.delete(theirs, headers=bob.headers).status_code == 204


@pytest.mark.parametrize(
    ("name", "route"),
    [(name, route) for name, routes in sorted(STATE_REFUSALS.items()) for route in routes],
    ids=lambda value: value if isinstance(value, str) else " ".join(value),
)
def test_a_task_not_in_the_declared_state(
    client: TestClient, alice: Account, name: str, route: tuple[str, str]
) -> None:
    """The route's sample on a task made from the first sample of a task (none of the state's
    fields set; the path's other rows Alice's own): the example, byte for byte, and the task
    unchanged. Generated from the route's declaration: no case written here."""
    method, path = route
    routes = the_app_routes()
    makers = creators(routes)
    known: dict[str, int] = {}
    for parameter in path_parameters(path):
        make_row(client, alice, parameter, known, makers)
    task = f"/api/tasks/{known['task_id']}"
    before = client.get(task, headers=alice.headers).json()["data"]
    assert {key: before[key] for key in task_state(method, path)} != task_state(method, path)
    model = body_model(next(r for r in routes if r.path == path and method in r.methods))
    body = None
    if model is not None:
        rows = {TASK: known["task_id"], LIST: known.get("list_id", 0)}
        body = fill_sample(unique(samples(model)[0], model), rows)
    answer = client.request(method, fill_path(path, known), json=body, headers=alice.headers)
    assert answer.status_code == EXAMPLES[name].status, answer.text
    assert answer.json() == EXAMPLES[name].example()["value"]
    assert client.get(task, headers=alice.headers).json()["data"] == before


@pytest.mark.parametrize("name", sorted(AUTHOR_REFUSALS))
def test_a_childs_refusal_example(
    client: TestClient,
    alice: Account,
    register: Callable[..., Account],
    db_engine: Engine,
    name: str,
) -> None:
    """Alice's row of the child on her list's task; Bob, a member with the least role that
    writes the child (`write`), changes it (`PATCH`) or deletes it (`DELETE`): the refusal's
    example, byte for byte, and the row is still Alice's. Generated from `CHILDREN`: a new
    child with an `author` needs no case here."""
    child, method = AUTHOR_REFUSALS[name]
    bob = register()
    list_id = _list(client, alice)
    task = client.post("/api/tasks", json={"title": "t", "list_id": list_id}, headers=alice.headers)
    template = f"/api/tasks/{{task_id}}/{child.path}"
    collection = template.format(task_id=task.json()["data"]["id"])
    made = client.post(
        collection, **body_of("POST", template, dict(child.sample)), headers=alice.headers
    )
    assert made.status_code == 201, made.text
    row = f"{collection}/{made.json()['data']['id']}"
    writer = least_role(child.action(writes=True))
    with db_engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO list_members (user_id, list_id, member_id, role) "
                "VALUES (:owner, :list, :member, :role)"
            ),
            {"owner": alice.id, "list": list_id, "member": bob.id, "role": writer},
        )
    body = {k: v for k, v in child.sample.items() if k in child.fields} or dict(child.sample)
    sent = {"json": body} if method == "PATCH" else {}
    answer = client.request(method, row, **sent, headers=bob.headers)
    example = EXAMPLES[name]
    assert answer.status_code == example.status == 403, answer.text
    assert answer.json() == example.example()["value"]
    assert client.get(row, headers=alice.headers).json()["data"] == made.json()["data"]


def _user_columns(child: TaskChild) -> list[str]:
    """The child's columns with a key to `users` (an author's, say)."""
    table = child.table.__table__  # type: ignore[attr-defined]
    return [
        column.name
        for column in table.columns
        if any(key.column.table.name == "users" for key in column.foreign_keys)
    ]


@pytest.mark.parametrize("child", LIMITED, ids=lambda child: child.name)
def test_a_childs_limit_example(
    client: TestClient, alice: Account, setup_engine: Engine, child: TaskChild
) -> None:
    """A task holding as many of a child's rows as there can be (`per_task`, written directly:
    its sample, every user column the owner's, the task's list where it keeps a copy), then one
    more through its POST route: the `too_many_<path>` example (child_routes.py), byte for
    byte. Generated from `CHILDREN`: a new child's limit needs no case here."""
    assert child.per_task and child.path
    list_id = _list(client, alice)
    made = client.post("/api/tasks", json={"title": "t", "list_id": list_id}, headers=alice.headers)
    task_id = made.json()["data"]["id"]
    table = child.table.__table__  # type: ignore[attr-defined]
    row = {"user_id": alice.id, "task_id": task_id, **child.sample}
    row |= dict.fromkeys(_user_columns(child), alice.id)
    if "list_id" in table.columns:
        row["list_id"] = list_id
    with setup_engine.begin() as conn:
        conn.execute(table.insert(), [row] * child.per_task)
    url = f"/api/tasks/{task_id}/{child.path}"
    if child.create is None:  # no JSON create: a file (attachments)
        answer = client.post(url, files={"file": ("a.txt", b"a")}, headers=alice.headers)
    else:
        answer = client.post(url, json=dict(child.sample), headers=alice.headers)
    example = EXAMPLES[f"too_many_{child.path}"]
    assert answer.status_code == example.status == 422, answer.text
    assert answer.json() == example.example()["value"]


def test_the_new_owner_limit_example(client: TestClient, alice: Account, db_engine: Engine) -> None:
    """A transfer to a member with as many lists as there can be (written directly)."""
    from backend.models.task_list import LISTS_PER_USER

    list_id, (heir,) = _shared(client, alice, "editor")
    with db_engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO task_lists (user_id, name, name_key, position) "
                "SELECT :user, 'l' || n, 'l' || n, n FROM generate_series(1, :count) AS n"
            ),
            {"user": heir.id, "count": LISTS_PER_USER},
        )
    path = f"/api/lists/{list_id}/transfer"
    answer = client.post(path, json={"user_id": heir.id}, headers=alice.headers)
    assert answer.status_code == 422
    assert answer.json() == EXAMPLES["new_owner_too_many_lists"].example()["value"]
