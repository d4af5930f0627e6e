"""ETag, If-Match and If-None-Match on tasks (issue 5): every task response carries a strong
ETag that changes with every change; a stale If-Match is 412 and changes nothing, checked in
the write itself (so racing writers with one ETag get exactly one success); If-None-Match
gives 304; another user's task is the same 404 as a missing one."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from tests.conftest import Account


def create(client: TestClient, user: Account, **body: Any) -> httpx.Response:
    body.setdefault("title", "Task")
    response = client.post("/api/tasks", json=body, headers=user.headers)
    assert response.status_code == 201, response.text
    return response


def current(client: TestClient, user: Account, task_id: int) -> httpx.Response:
    response = client.get(f"/api/tasks/{task_id}", headers=user.headers)
    assert response.status_code == 200, response.text
    return response


# Every way to change one task, as (method, path suffix, json body).
WRITES: list[tuple[str, str, Any]] = [
    ("PUT", "", {"title": "Replaced", "priority": "high"}),
    ("PATCH", "", {"description": "patched"}),
    ("PATCH", "", {}),
    ("PATCH", "/complete", None),
    ("PATCH", "/complete", {"completed": False}),
]
BULK_OPS: list[dict[str, Any]] = [
    {"op": "complete"},
    {"op": "reopen"},
    {"op": "set_priority", "priority": "low"},
    {"op": "add_tag", "tag": "x"},
    {"op": "add_tag", "tag": "x"},  # already there: still a write, still a new version
    {"op": "remove_tag", "tag": "x"},
]
# The routes that take If-Match, with a body that is valid for each.
CONDITIONAL: list[tuple[str, str, Any]] = [*WRITES[:2], WRITES[3], ("DELETE", "", None)]


def send(
    client: TestClient, user: Account, method: str, task_id: int, suffix: str, body: Any, **h: str
) -> httpx.Response:
    return client.request(
        method, f"/api/tasks/{task_id}{suffix}", json=body, headers={**user.headers, **h}
    )


def test_every_task_response_carries_a_strong_etag_that_changes_with_every_change(
    client: TestClient, alice: Account
) -> None:
    created = create(client, alice)
    task_id = created.json()["data"]["id"]
    seen = [created.headers["etag"]]
    assert seen[0] == f'"{task_id}-1"' and not seen[0].startswith("W/")
    assert current(client, alice, task_id).headers["etag"] == seen[0]
    for method, suffix, body in WRITES:
        response = send(client, alice, method, task_id, suffix, body)
        assert response.status_code == 200, (method, suffix, response.text)
        assert response.headers["etag"] not in seen, (method, suffix)
        assert current(client, alice, task_id).headers["etag"] == response.headers["etag"]
        seen.append(response.headers["etag"])
    for operation in BULK_OPS:
        bulk = client.post(
            "/api/tasks/bulk",
            json={"operations": [{**operation, "id": task_id}]},
            headers=alice.headers,
        )
        assert bulk.status_code == 200, bulk.text
        etag = current(client, alice, task_id).headers["etag"]
        assert etag not in seen, operation
        seen.append(etag)
    # Two changes of one task in one bulk request (one transaction, one timestamp): two versions.
    before = int(seen[-1].strip('"').split("-")[1])
    client.post(
        "/api/tasks/bulk",
        json={"operations": [{"op": "complete", "id": task_id}, {"op": "reopen", "id": task_id}]},
        headers=alice.headers,
    )
    assert current(client, alice, task_id).headers["etag"] == f'"{task_id}-{before + 2}"'
    # Listings, stats and errors carry none: an ETag always names one task's state.
    assert "etag" not in client.get("/api/tasks", headers=alice.headers).headers


@pytest.mark.parametrize(("method", "suffix", "body"), CONDITIONAL)
def test_a_stale_if_match_is_412_and_changes_nothing(
    client: TestClient, alice: Account, method: str, suffix: str, body: Any
) -> None:
    task_id = create(client, alice).json()["data"]["id"]
    stale = current(client, alice, task_id).headers["etag"]
    client.patch(f"/api/tasks/{task_id}", json={"title": "Changed"}, headers=alice.headers)
    before = current(client, alice, task_id)
    for if_match in (stale, f'"{task_id}-99", "{task_id}-7"', "garbage", f'"{task_id + 1}-2"'):
        response = send(client, alice, method, task_id, suffix, body, **{"If-Match": if_match})
        assert response.status_code == 412, (if_match, response.text)
        assert response.json()["error"] == {
            "code": "PRECONDITION_FAILED",
            "message": "The task has changed since it was read (If-Match does not match its ETag)",
            "details": [],
        }
    after = current(client, alice, task_id)
    assert after.json() == before.json() and after.headers["etag"] == before.headers["etag"]


@pytest.mark.parametrize(("method", "suffix", "body"), CONDITIONAL)
def test_a_current_if_match_succeeds(
    client: TestClient, alice: Account, method: str, suffix: str, body: Any
) -> None:
    task_id = create(client, alice).json()["data"]["id"]
    etag = current(client, alice, task_id).headers["etag"]
    # The current tag alone, in a list, and `*` (any current version).
    for form in ("{}", '"{id}-99", {}', "*"):
        if_match = form.replace("{id}", str(task_id)).replace("{}", etag)
        response = send(client, alice, method, task_id, suffix, body, **{"If-Match": if_match})
        assert response.status_code in (200, 204), (if_match, response.text)
        if method == "DELETE":
            missing = client.get(f"/api/tasks/{task_id}", headers=alice.headers)
            assert missing.status_code == 404
            break
        etag = response.headers["etag"]


def test_a_weak_etag_never_matches_if_match(client: TestClient, alice: Account) -> None:
    created = create(client, alice)
    task_id, etag = created.json()["data"]["id"], created.headers["etag"]
    response = client.patch(
        f"/api/tasks/{task_id}",
        json={"title": "x"},
        headers={**alice.headers, "If-Match": f"W/{etag}"},
    )
    assert response.status_code == 412
    assert current(client, alice, task_id).json() == {"data": created.json()["data"]}


def test_if_none_match_gives_304_until_the_task_changes(client: TestClient, alice: Account) -> None:
    created = create(client, alice)
    task_id, etag = created.json()["data"]["id"], created.headers["etag"]
    url = f"/api/tasks/{task_id}"
    for if_none_match in (etag, f"W/{etag}", f'"{task_id}-9", {etag}', "*"):
        response = client.get(url, headers={**alice.headers, "If-None-Match": if_none_match})
        assert response.status_code == 304, if_none_match
        assert response.content == b"" and response.headers["etag"] == etag
    other = client.get(url, headers={**alice.headers, "If-None-Match": f'"{task_id}-9"'})
    assert other.status_code == 200 and other.json() == created.json()
    client.patch(f"/api/tasks/{task_id}/complete", headers=alice.headers)
    changed = client.get(url, headers={**alice.headers, "If-None-Match": etag})
    assert changed.status_code == 200 and changed.json()["data"]["completed"] is True
    assert changed.headers["etag"] != etag


def test_a_parents_etag_follows_its_subtask_counts_and_if_match_its_version(
    client: TestClient, alice: Account
) -> None:
    """The counts are answered but are not the parent's version (the database keeps them):
    If-None-Match sees them change; If-Match compares the version only."""
    parent = create(client, alice).json()["data"]["id"]
    url = f"/api/tasks/{parent}"
    bare = current(client, alice, parent).headers["etag"]
    assert bare == f'"{parent}-1"'
    child = create(client, alice, parent_id=parent).json()["data"]["id"]
    with_open = current(client, alice, parent).headers["etag"]
    assert with_open == f'"{parent}-1-1-1"'
    stale = client.get(url, headers={**alice.headers, "If-None-Match": bare})
    assert stale.status_code == 200 and stale.json()["data"]["subtask_count"] == 1
    fresh = client.get(url, headers={**alice.headers, "If-None-Match": with_open})
    assert fresh.status_code == 304 and fresh.headers["etag"] == with_open
    assert client.patch(f"/api/tasks/{child}/complete", headers=alice.headers).status_code == 200
    done = client.get(url, headers={**alice.headers, "If-None-Match": with_open})
    assert done.status_code == 200 and done.headers["etag"] == f'"{parent}-1-1-0"'
    assert done.json()["data"]["open_subtask_count"] == 0
    # A tag from before the subtask existed still names version 1.
    patched = client.patch(
        url, json={"title": "renamed"}, headers={**alice.headers, "If-Match": bare}
    )
    assert patched.status_code == 200, patched.text
    assert patched.headers["etag"] == f'"{parent}-2-1-0"'
    for refused in (
        with_open,  # version 1: stale
        f'"{parent}-2-1"',
        f'"{parent}-2-1-0-0"',
        f'"{parent}-2-x-0"',
        f'"{parent}-2-1-{"9" * 19}"',
    ):
        response = client.patch(
            url, json={"title": "no"}, headers={**alice.headers, "If-Match": refused}
        )
        assert response.status_code == 412, (refused, response.text)
    assert current(client, alice, parent).json()["data"]["title"] == "renamed"
    # Without its subtask the parent answers as a task without any, with that tag.
    assert client.delete(f"/api/tasks/{child}", headers=alice.headers).status_code == 204
    assert current(client, alice, parent).headers["etag"] == f'"{parent}-2"'


def test_another_users_task_is_the_same_404_with_any_precondition(
    client: TestClient, alice: Account, bob: Account
) -> None:
    created = create(client, alice)
    task_id, etag = created.json()["data"]["id"], created.headers["etag"]
    missing_id = task_id + 1000
    for method, suffix, body in CONDITIONAL:
        for if_match in (etag, '"0-0"', "*"):
            theirs = send(client, bob, method, task_id, suffix, body, **{"If-Match": if_match})
            nothing = send(client, bob, method, missing_id, suffix, body, **{"If-Match": if_match})
            assert theirs.status_code == nothing.status_code == 404, (method, if_match)
            assert theirs.json() == nothing.json()
    peek = client.get(f"/api/tasks/{task_id}", headers={**bob.headers, "If-None-Match": etag})
    assert peek.status_code == 404
    assert current(client, alice, task_id).headers["etag"] == etag


def test_racing_writers_with_one_etag_get_exactly_one_success(
    live_server: str, register: Callable[..., Account]
) -> None:
    user = register()
    headers = {"Authorization": f"Bearer {user.token}"}
    with httpx.Client(base_url=live_server, timeout=30) as http:
        created = http.post("/api/tasks", json={"title": "race"}, headers=headers)
        task_id, etag = created.json()["data"]["id"], created.headers["etag"]
        writers = 10
        barrier = threading.Barrier(writers)

        def patch(i: int) -> httpx.Response:
            barrier.wait(timeout=10)
            return http.patch(
                f"/api/tasks/{task_id}",
                json={"title": f"writer {i}"},
                headers={**headers, "If-Match": etag},
            )

        with ThreadPoolExecutor(max_workers=writers) as pool:
            responses = list(pool.map(patch, range(writers)))
        statuses = sorted(r.status_code for r in responses)
        assert statuses == [200] + [412] * (writers - 1), statuses
        [winner] = [r for r in responses if r.status_code == 200]
        final = http.get(f"/api/tasks/{task_id}", headers=headers)
        assert final.json()["data"]["title"] == winner.json()["data"]["title"]
        assert final.headers["etag"] == winner.headers["etag"] == f'"{task_id}-2"'


def test_browsers_may_send_the_headers_and_read_the_etag(
    client: TestClient, alice: Account
) -> None:
    origin = {"Origin": "http://localhost:3000"}
    preflight = client.options(
        "/api/tasks/1",
        headers={
            **origin,
            "Access-Control-Request-Method": "PATCH",
            "Access-Control-Request-Headers": "authorization, if-match, if-none-match, "
            "idempotency-key, content-type",
        },
    )
    assert preflight.status_code == 200, preflight.text
    allowed = preflight.headers["access-control-allow-headers"].lower()
    for header in ("if-match", "if-none-match", "idempotency-key"):
        assert header in allowed
    created = client.post("/api/tasks", json={"title": "x"}, headers={**alice.headers, **origin})
    exposed = created.headers["access-control-expose-headers"].lower()
    assert "etag" in exposed and "idempotent-replayed" in exposed
