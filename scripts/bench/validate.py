"""Before any timing: every server must answer the benchmarked requests with 2xx and the same
bodies (ids, timestamps and a new task's place aside for writes) as the reference (the API when
it runs), or the comparison would be meaningless. The API before (`--before REF`) answers with
the fields it had: fields added since are left out of the comparison with it (`_comparable`)."""

from __future__ import annotations

from typing import Any

import httpx

# A new task goes first among its siblings: its `position` depends on the tasks created before.
VOLATILE = {"id", "created_at", "updated_at", "completed_at", "position"}
CREATE_BODY = {
    "title": "Validation task",
    "description": "same on both",
    "priority": "high",
    "due_date": "2030-12-01",
    "tags": ["bench", "Work", "bench"],
}
WRITE_HEADERS = ("ETag", "RateLimit", "RateLimit-Policy")
# Reads compared byte for byte: (check, path, what the page must be). A listing's body holds
# its `meta.changes_cursor` (the feed position read with the page); "next" is a page with a
# `next_cursor` and `Link` (the timed 100-task list has one once the mix has added tasks);
# "empty" is the API's empty-page path (the position read with the proof the page is empty).
SEARCH_NOTHING = "no-such-task-zq"
READS = (
    ("list 100", "/api/tasks", "full"),
    ("list 10 with next_cursor", "/api/tasks?limit=10", "next"),
    ("list filter+search", "/api/tasks?status=pending&q=invoice", "full"),
    ("list empty page (not timed)", f"/api/tasks?q={SEARCH_NOTHING}", "empty"),
    ("get one", "/api/tasks/{task_id}", "one"),
)


class Mismatch(AssertionError):
    pass


def _strip(body: Any) -> Any:
    data = body["data"]
    return {k: v for k, v in data.items() if k not in VOLATILE}


def _comparable(reference: Any, other: Any, older: bool) -> Any:
    """`reference` as `other` can be compared with it: whole, or, for the API before
    (`older`), only where `other` has the key (an object of the API's may have gained fields
    since; none may have lost one)."""
    if not older:
        return reference
    if isinstance(reference, dict) and isinstance(other, dict):
        if not other.keys() <= reference.keys():
            return reference  # a field the API no longer has: compared whole, so it differs
        return {k: _comparable(reference[k], other[k], older) for k in other}
    if isinstance(reference, list) and isinstance(other, list) and len(reference) == len(other):
        return [_comparable(r, o, older) for r, o in zip(reference, other, strict=True)]
    return reference


def _differs(name: str, reference: Any, other: Any) -> bool:
    return _comparable(reference, other, name == "before") != other


def _call(client: httpx.Client, method: str, url: str, token: str, **kw: Any) -> httpx.Response:
    response = client.request(method, url, headers={"Authorization": f"Bearer {token}"}, **kw)
    if not 200 <= response.status_code < 300:
        raise Mismatch(f"{method} {url}: {response.status_code} {response.text[:300]}")
    return response


def _write_headers(name: str, response: httpx.Response) -> None:
    missing = [h for h in WRITE_HEADERS if h not in response.headers]
    if missing:
        raise Mismatch(f"{name}: no {', '.join(missing)} header(s): {dict(response.headers)}")


def _expect(name: str, kind: str, body: Any, response: httpx.Response) -> None:
    """The page is of the kind the check is for (else the comparison would prove less)."""
    if kind == "parent" and not body["data"].get("subtask_count"):
        raise Mismatch(f"{name}: the task has no subtasks: {body}")
    if kind in ("one", "parent"):
        return
    data, meta = body["data"], body["meta"]
    if kind == "empty" and data:
        raise Mismatch(f"{name}: expected an empty page, got {len(data)} tasks")
    if kind != "empty" and not data:
        raise Mismatch(f"{name}: empty page; the seed should give every user tasks")
    if kind == "next" and not (meta["next_cursor"] and response.headers.get("Link")):
        raise Mismatch(f"{name}: no next_cursor or Link: {meta}")
    if not meta.get("changes_cursor"):
        raise Mismatch(f"{name}: no meta.changes_cursor: {meta}")


def validate(
    servers: dict[str, str],
    tokens: list[str],
    owned: list[list[int]],
    *,
    parent: tuple[str, int] | None = None,
) -> list[str]:
    """Compare every server (name -> base URL; the first is the reference) with the first;
    return what was checked, raise Mismatch on any difference. `parent`: a seeded task with
    subtasks and its owner's token, whose subtask counts must be the same everywhere."""
    names = list(servers)
    reference = names[0]
    both = " and ".join(names) if len(names) < 3 else ", ".join(names[:-1]) + " and " + names[-1]
    checked = []
    with httpx.Client(timeout=10) as client:
        user, task_id = owned[0]
        reads = [
            (name, path.format(task_id=task_id), kind, tokens[user - 1])
            for name, path, kind in READS
        ]
        if parent is not None:
            owner, parent_id = parent
            reads.append(
                ("get one with subtasks (not timed)", f"/api/tasks/{parent_id}", "parent", owner)
            )
        token = tokens[user - 1]
        for name, path, kind, reader in reads:
            responses = {s: _call(client, "GET", servers[s] + path, reader) for s in names}
            bodies = {s: r.json() for s, r in responses.items()}
            for other in names[1:]:
                if _differs(other, bodies[reference], bodies[other]):
                    raise Mismatch(
                        f"{name}: bodies differ\n{reference}: {bodies[reference]}\n"
                        f"{other}: {bodies[other]}"
                    )
            _expect(name, kind, bodies[reference], responses[reference])
            for header in ("ETag", "Link"):
                values = {s: r.headers.get(header) for s, r in responses.items()}
                if len(set(values.values())) > 1:
                    raise Mismatch(f"{name}: {header} headers differ: {values}")
            checked.append(f"{name}: identical bodies ({len(str(bodies[reference]))} characters)")
            if kind == "one" and "before" in bodies:
                added = sorted(set(bodies[reference]["data"]) - set(bodies["before"]["data"]))
                if added:
                    checked.append(
                        "the API before is compared on the fields it has; added since: "
                        + ", ".join(added)
                    )

        created: dict[str, Any] = {}
        for s in names:
            r = _call(client, "POST", servers[s] + "/api/tasks", token, json=CREATE_BODY)
            if r.status_code != 201 or not r.headers.get("location", "").endswith(
                f"/api/tasks/{r.json()['data']['id']}"
            ):
                raise Mismatch(f"create on {s}: {r.status_code}, Location {r.headers}")
            _write_headers(f"create on {s}", r)
            created[s] = r.json()
        for s in names[1:]:
            if _differs(s, _strip(created[reference]), _strip(created[s])):
                raise Mismatch(
                    f"create: bodies differ\n{reference}: {created[reference]}\n{s}: {created[s]}"
                )
        checked.append(
            "create: 201, Location, ETag, RateLimit, identical bodies but id/timestamps/position"
        )

        patch = {"title": "Renamed by validation", "priority": "low"}
        updated = {}
        for s in names:
            r = _call(client, "PATCH", f"{servers[s]}/api/tasks/{task_id}", token, json=patch)
            _write_headers(f"update on {s}", r)
            updated[s] = r.json()
        for s in names[1:]:
            a, b = updated[reference], updated[s]
            if _differs(s, _strip(a), _strip(b)) or a["data"]["id"] != b["data"]["id"]:
                raise Mismatch(f"update: bodies differ\n{reference}: {a}\n{s}: {b}")
        checked.append("update (PATCH): ETag, RateLimit, identical bodies but timestamps")

        path = f"/api/tasks/{task_id}"
        before = _call(client, "GET", servers[reference] + path, token).json()["data"]
        # Each server toggles in turn (then the reference once more if needed, so the task
        # ends as it started): completion must flip every time.
        order = names + ([reference] if len(names) % 2 else [])
        state = before
        for s in order:
            r = _call(client, "PATCH", f"{servers[s]}{path}/complete", token)
            _write_headers(f"toggle on {s}", r)
            new = r.json()["data"]
            if new["completed"] == state["completed"]:
                raise Mismatch(f"toggle on {s}: expected a flip: {state} -> {new}")
            if (new["completed_at"] is None) == new["completed"]:
                raise Mismatch(f"toggle on {s}: completed_at inconsistent: {new}")
            state = new
        same = {k: v for k, v in state.items() if k not in VOLATILE}
        if same != {k: v for k, v in before.items() if k not in VOLATILE}:
            raise Mismatch(
                f"toggle: an even number of toggles changed more than timestamps: {before} {state}"
            )
        checked.append(f"toggle: {both} each flip completion, completed_at consistent")

        # Each server deletes the task the next one created: 204, then 404 on every server.
        for index, s in enumerate(names):
            victim = created[names[(index + 1) % len(names)]]
            path = f"/api/tasks/{victim['data']['id']}"
            r = _call(client, "DELETE", servers[s] + path, token)
            if r.status_code != 204 or r.content:
                raise Mismatch(f"delete on {s}: {r.status_code} {r.content!r}")
            if "RateLimit" not in r.headers:
                raise Mismatch(f"delete on {s}: no RateLimit header: {dict(r.headers)}")
            for other in names:
                gone = client.get(
                    servers[other] + path, headers={"Authorization": f"Bearer {token}"}
                )
                if gone.status_code != 404:
                    raise Mismatch(f"deleted task still there on {other}: {gone.status_code}")
        checked.append("delete: 204 with no body, RateLimit; the task is gone on every server")

        for s in names:
            bad = client.get(servers[s] + "/api/tasks", headers={"Authorization": "Bearer x.y.z"})
            if bad.status_code != 401:
                raise Mismatch(f"{s} accepted a malformed token: {bad.status_code}")
        checked.append(f"a malformed token is refused (401) by {both}")
    return checked
