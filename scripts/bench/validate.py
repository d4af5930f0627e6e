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
    if isinstance(reference, str) and other == f"{reference}T00:00:00Z":
        return other  # a due day, which an API before ea494ec held as midnight UTC
    return reference


def _differs(name: str, reference: Any, other: Any) -> bool:
    return _comparable(reference, other, name == "before") != other


def _without_counts(tag: str | None) -> str | None:
    """A task's tag as the API before 20432ba wrote it: `"<id>-<version>"`, no subtask counts."""
    return None if tag is None else '"' + "-".join(tag.strip('"').split("-")[:2]) + '"'


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
                if header == "ETag" and values.get("before") == _without_counts(values[reference]):
                    values["before"] = values[reference]  # an API before 20432ba: no counts
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
        if _differs(order[-1], _strip({"data": before}), _strip({"data": state})):
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


# The naive app (scripts/bench/naive.py) answers with the task's plain columns in the API's
# envelope, no list metadata, no ETag or RateLimit. What it must get right: the same tasks with
# the same values where it has the field, and writes that do what was asked, for its owner only.
NAIVE_WRITTEN = ("title", "description", "priority", "completed")


def _same_instant(a: Any, b: Any) -> bool:
    """Two JSON timestamps (or other values) equal, whatever the spelling of UTC."""
    if isinstance(a, str) and isinstance(b, str) and a[:4].isdigit() and "T" in a:
        try:
            from datetime import datetime

            parsed = [datetime.fromisoformat(v.replace("Z", "+00:00")) for v in (a, b)]
            if parsed[0].tzinfo is None:
                parsed[0] = parsed[0].replace(tzinfo=parsed[1].tzinfo)
            return parsed[0] == parsed[1]
        except ValueError:
            return a == b
    return bool(a == b)


def _naive_task(name: str, task: Any, reference: Any | None) -> None:
    """A task of the naive app's: an object with an id and a title, and, beside the API's
    answer for the same task, no field the API lacks and the same value in every field."""
    if not isinstance(task, dict) or not isinstance(task.get("id"), int) or "title" not in task:
        raise Mismatch(f"{name}: not a task: {task}")
    if reference is None:
        return
    extra = set(task) - set(reference)
    if extra:
        raise Mismatch(f"{name}: fields the API does not have: {sorted(extra)}")
    for key, value in task.items():
        if not _same_instant(value, reference[key]):
            raise Mismatch(f"{name}: {key} is {value!r}, the API says {reference[key]!r}")


def naive(
    url: str, tokens: list[str], owned: list[list[int]], *, reference: str | None = None
) -> list[str]:
    """Check the naive app's five routes (and its refusals); `reference`: the API's URL, whose
    answers its reads must match on the fields it has. Return what was checked, raise
    Mismatch on any difference."""
    (user, task_id), token = owned[0], tokens[owned[0][0] - 1]
    stranger = next((t for u, t in owned if u != user), None)  # another user's task
    checked = []
    with httpx.Client(timeout=10) as client:

        def answer(base: str, path: str) -> Any:
            return _call(client, "GET", base + path, token).json()

        page = answer(url, "/api/tasks")
        one = answer(url, f"/api/tasks/{task_id}")
        tasks = page.get("data") if isinstance(page, dict) else None
        if not isinstance(tasks, list) or not tasks or not isinstance(one, dict):
            raise Mismatch(f"naive list 100: no page of tasks in the envelope: {page}")
        if reference is not None:
            expected = answer(reference, "/api/tasks")["data"]
            if [t["id"] for t in tasks] != [t["id"] for t in expected]:
                raise Mismatch("naive list 100: not the API's tasks in the API's order")
            for mine, theirs in zip(tasks, expected, strict=True):
                _naive_task("naive list 100", mine, theirs)
            _naive_task(
                "naive get one", one["data"], answer(reference, f"/api/tasks/{task_id}")["data"]
            )
        else:
            _naive_task("naive get one", one.get("data"), None)
        checked.append(
            f"naive: list 100 and get one: {len(tasks)} tasks, "
            + ("the API's tasks and values on the fields it has" if reference else "envelope")
        )

        created = _call(client, "POST", url + "/api/tasks", token, json=CREATE_BODY)
        data = created.json()["data"]
        _naive_task("naive create", data, None)
        if created.status_code != 201 or any(
            data[k] != CREATE_BODY.get(k, data[k]) for k in NAIVE_WRITTEN
        ):
            raise Mismatch(f"naive create: {created.status_code} {data}")
        patch = {"title": "Renamed by validation", "priority": "low"}
        updated = _call(client, "PATCH", f"{url}/api/tasks/{data['id']}", token, json=patch)
        if {k: updated.json()["data"][k] for k in patch} != patch:
            raise Mismatch(f"naive update: {updated.json()}")
        state = data
        for _ in range(2):
            toggled = _call(client, "PATCH", f"{url}/api/tasks/{data['id']}/complete", token)
            new = toggled.json()["data"]
            if (
                new["completed"] == state["completed"]
                or (new["completed_at"] is None) == new["completed"]
            ):
                raise Mismatch(f"naive toggle: expected a flip: {state} -> {new}")
            state = new
        mine = answer(url, f"/api/tasks/{data['id']}")["data"]
        if mine["title"] != patch["title"] or mine["completed"]:
            raise Mismatch(f"naive: the writes did not stick: {mine}")
        checked.append("naive: create 201, update and toggle (twice) do what was asked")

        refusals = [("GET", "/api/tasks", "Bearer x.y.z", 401)]
        if stranger is not None:
            for method, suffix in (("GET", ""), ("PATCH", "/complete")):
                refusals.append((method, f"/api/tasks/{stranger}{suffix}", f"Bearer {token}", 404))
        for method, path, authorization, code in refusals:
            got = client.request(method, url + path, headers={"Authorization": authorization})
            if got.status_code != code:
                raise Mismatch(f"naive {method} {path}: {got.status_code}, expected {code}")
        checked.append("naive: a malformed token is refused (401), another user's task is 404")
    return checked
