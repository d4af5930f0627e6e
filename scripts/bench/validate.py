"""Before any timing: both servers must answer the benchmarked requests with 2xx and the same
bodies (ids and timestamps aside for writes), or the comparison would be meaningless."""

from __future__ import annotations

from typing import Any

import httpx

VOLATILE = {"id", "created_at", "updated_at", "completed_at"}
CREATE_BODY = {
    "title": "Validation task",
    "description": "same on both",
    "priority": "high",
    "due_date": "2030-12-01",
    "tags": ["bench", "Work", "bench"],
}


class Mismatch(AssertionError):
    pass


def _strip(body: Any) -> Any:
    data = body["data"]
    return {k: v for k, v in data.items() if k not in VOLATILE}


def _call(client: httpx.Client, method: str, url: str, token: str, **kw: Any) -> httpx.Response:
    response = client.request(method, url, headers={"Authorization": f"Bearer {token}"}, **kw)
    if not 200 <= response.status_code < 300:
        raise Mismatch(f"{method} {url}: {response.status_code} {response.text[:300]}")
    return response


def validate(api: str, baseline: str, tokens: list[str], owned: list[list[int]]) -> list[str]:
    """Compare the two servers; return what was checked, raise Mismatch on any difference."""
    checked = []
    with httpx.Client(timeout=10) as client:
        user, task_id = owned[0]
        token = tokens[user - 1]
        for name, path in (
            ("list 100", "/api/tasks"),
            ("list filter+search", "/api/tasks?status=pending&q=invoice"),
            ("get one", f"/api/tasks/{task_id}"),
        ):
            a = _call(client, "GET", api + path, token).json()
            b = _call(client, "GET", baseline + path, token).json()
            if a != b:
                raise Mismatch(f"{name}: bodies differ\napi:      {a}\nbaseline: {b}")
            if name.startswith("list") and not a["data"]:
                raise Mismatch(f"{name}: empty page; the seed should give every user tasks")
            checked.append(f"{name}: identical bodies ({len(str(a))} characters)")

        created = []
        for base in (api, baseline):
            r = _call(client, "POST", base + "/api/tasks", token, json=CREATE_BODY)
            if r.status_code != 201 or not r.headers.get("location", "").endswith(
                f"/api/tasks/{r.json()['data']['id']}"
            ):
                raise Mismatch(f"create on {base}: {r.status_code}, Location {r.headers}")
            created.append(r.json())
        if _strip(created[0]) != _strip(created[1]):
            raise Mismatch(f"create: bodies differ\napi: {created[0]}\nbaseline: {created[1]}")
        checked.append("create: 201, Location, identical bodies but id/timestamps")

        patch = {"title": "Renamed by validation", "priority": "low"}
        a = _call(client, "PATCH", f"{api}/api/tasks/{task_id}", token, json=patch).json()
        b = _call(client, "PATCH", f"{baseline}/api/tasks/{task_id}", token, json=patch).json()
        if _strip(a) != _strip(b) or a["data"]["id"] != b["data"]["id"]:
            raise Mismatch(f"update: bodies differ\napi: {a}\nbaseline: {b}")
        checked.append("update (PATCH): identical bodies but timestamps")

        before = _call(client, "GET", f"{api}/api/tasks/{task_id}", token).json()["data"]
        a = _call(client, "PATCH", f"{api}/api/tasks/{task_id}/complete", token).json()["data"]
        b = _call(client, "PATCH", f"{baseline}/api/tasks/{task_id}/complete", token).json()
        b = b["data"]
        if a["completed"] == before["completed"] or b["completed"] != before["completed"]:
            raise Mismatch(f"toggle: expected a flip each time: {before} -> {a} -> {b}")
        for state in (a, b):
            if (state["completed_at"] is None) == state["completed"]:
                raise Mismatch(f"toggle: completed_at inconsistent: {state}")
        same = {k: v for k, v in b.items() if k not in VOLATILE}
        if same != {k: v for k, v in before.items() if k not in VOLATILE}:
            raise Mismatch(f"toggle: two toggles changed more than timestamps: {before} {b}")
        checked.append("toggle: each server flips completion, completed_at consistent")

        # Each server deletes the task the other created: 204, then 404 on both.
        for base, body in ((baseline, created[0]), (api, created[1])):
            path = f"/api/tasks/{body['data']['id']}"
            r = _call(client, "DELETE", base + path, token)
            if r.status_code != 204 or r.content:
                raise Mismatch(f"delete on {base}: {r.status_code} {r.content!r}")
            for other in (api, baseline):
                gone = client.get(other + path, headers={"Authorization": f"Bearer {token}"})
                if gone.status_code != 404:
                    raise Mismatch(f"deleted task still there on {other}: {gone.status_code}")
        checked.append("delete: 204 with no body; the task is gone on both")

        for base in (api, baseline):
            bad = client.get(base + "/api/tasks", headers={"Authorization": "Bearer x.y.z"})
            if bad.status_code != 401:
                raise Mismatch(f"{base} accepted a malformed token: {bad.status_code}")
        checked.append("a malformed token is refused (401) by both")
    return checked
