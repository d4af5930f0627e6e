"""The TypeScript example: a client generated from the committed specs/openapi.json
(openapi-typescript types, openapi-fetch calls) and its thin wrapper (src/task-api.ts),
type-checked by tsc (src/type-checks.ts: wrong calls, lists, subtasks and moves included, must
not compile), then run under Node against the real server: every route (lists, moves and
subtrees too; a list shared with a second account: invitation, roles, assignees, removal),
the conditional and idempotent requests, a typed LIMIT_REACHED, retries after
Retry-After on a rate-limited server and on a stub, and abort signals.

Generating in the test (rather than committing the output) means the types can never be
stale: after an API change, regenerating specs/openapi.json is enough, and tsc then flags
every call that no longer fits.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from typing import Any

import httpx
import pytest

from tests.conftest import ROOT, running_server, skip_or_fail_in_ci
from tests.storage.conftest import BUCKET, radosgw_server  # noqa: F401
from tests.storage.radosgw import Radosgw

CLIENT = ROOT / "examples" / "ts-client"


def npm(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["npm", *args], cwd=CLIENT, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture(scope="module")
def built_client() -> None:
    if shutil.which("node") is None or shutil.which("npm") is None:
        skip_or_fail_in_ci("TYPED-CLIENT TEST NOT RUN: node and npm are not installed")
    installed = npm("ci", "--no-audit", "--no-fund")
    assert installed.returncode == 0, installed.stdout + installed.stderr
    # generate (openapi-typescript) + tsc; the @ts-expect-error lines in type-checks.ts make
    # tsc fail if the generated types ever stop catching a wrong call.
    built = npm("run", "build")
    assert built.returncode == 0, built.stdout + built.stderr
    schema = (CLIENT / "src" / "schema.d.ts").read_text()
    assert "export interface paths" in schema and "listTasks: {" in schema


def node(script: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["node", f"dist/{script}", *args],
        cwd=CLIENT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def steps_of(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert result.returncode == 0, result.stdout + result.stderr
    steps = [json.loads(line) for line in result.stdout.splitlines()]
    names = [s["step"] for s in steps]
    assert len(names) == len(set(names)), names
    return {s["step"]: s["value"] for s in steps}


def test_client_runs_every_route(built_client: None, live_server: str) -> None:
    result = node("demo.js", BASE_URL=live_server)
    values = steps_of(result)
    assert list(values) == [
        "health", "register", "token", "me", "create", "create-replayed", "list", "get",
        "get-not-modified", "update", "update-stale", "replace", "toggle", "set",
        "delete-stale", "delete", "get-deleted", "trash", "create-invalid", "create-more", "bulk",
        "filter", "pages", "all-tasks", "stats", "clear-completed", "clear-completed-again",
        "user-path", "bulk-delete", "changes", "stream", "stats-after", "bulk-missing", "recurring",
        "recurring-next", "create-lists", "list-name-taken", "create-in-list", "list-page",
        "move-task", "move-stale", "move-cycle", "subtree", "complete-down", "subtasks-page",
        "bulk-move", "update-list", "update-list-stale", "lists", "get-list", "stats-by-list",
        "user-lists", "delete-list", "get-deleted-list", "filter-name-taken", "saved-filters",
        "get-deleted-filter", "comments", "comment-elsewhere",
        "comments-after", "invite", "accept", "member-tasks", "assign", "members", "activity",
        "downgrade", "viewer-write", "remove", "removed-read", "revoked-accept", "transfer",
        "left-read", "push", "aborted",
        "after-logout-all", "after-delete-me",
    ]  # fmt: skip
    assert values["health"] == {
        "health": {"status": "ok"},
        "ready": {"status": "ready", "database": "ok", "migrations": "current"},
    }
    assert values["token"]["token_type"] == "bearer"
    assert values["push"] == {
        "key": 65,
        "same": True,
        "listed": [True],
        "settings": {
            "push": False,
            "email": False,
            "email_address": None,
            "email_confirmed": False,
            "time_zone": None,
            "quiet_hours": None,
        },
    }
    # The live stream from the feed's cursor: the feed's changes, each with an id.
    assert values["stream"] == [[*change, True] for change in values["changes"]["changes"]]
    # Comments: two pages of one, an edit by its author, another task's id a missing comment.
    assert values["comments"] == {
        "pages": [["Tuesday?"], ["Booked:\n9 am"]],
        "edited": ["Tuesday.", True],
    }
    assert values["comment-elsewhere"] == {"status": 404, "code": "NOT_FOUND", "details": []}
    # A saved filter: applied, a parameter beside it replacing its own; renamed, replaced.
    saved = values["saved-filters"]
    assert saved["query"] == {"priority": ["high"], "sort": "title"}
    assert ["Renew passport", "high"] in saved["applied"]
    assert {priority for _, priority in saved["applied"]} == {"high"}
    assert ["Sort photos", "low"] in saved["overridden"]
    assert {priority for _, priority in saved["overridden"]} == {"low"}
    assert saved["renamed"] == ["Hot", saved["query"]] and saved["replaced"] == ["Everything", {}]
    assert (saved["listed"], saved["read"]) == (["Everything"], "Everything")
    assert values["filter-name-taken"]["status"] == 409
    assert values["get-deleted-filter"] == {"status": 404, "code": "NOT_FOUND", "details": []}
    assert values["comments-after"] == ["Tuesday."]

    # Create with an Idempotency-Key, and its replay: one task, the same answer.
    created, replayed = values["create"], values["create-replayed"]
    task = created["task"]
    assert (task["title"], task["description"]) == ("Buy milk", "2 litres")
    assert task["user_id"] == values["me"]["id"]
    assert created["location"] == f"/api/tasks/{task['id']}"
    assert created["etag"] == f'"{task["id"]}-1"'
    assert (created["replayed"], replayed["replayed"]) == (False, True)
    assert replayed["task"] == task and replayed["etag"] == created["etag"]
    assert [t["id"] for t in values["list"]["data"]] == [task["id"]]
    meta = values["list"]["meta"]
    assert (meta["count"], meta["limit"], meta["has_more"]) == (1, 10, False)

    # ETags: 304 for the current one; a stale If-Match is a 412 and changes nothing.
    assert values["get"] == {"task": task, "etag": created["etag"]}
    assert values["get-not-modified"] is None
    assert values["update"]["task"]["title"] == "Buy oat milk"
    assert values["update"]["etag"] == f'"{task["id"]}-2"'
    assert values["update-stale"] == {"status": 412, "code": "PRECONDITION_FAILED", "details": []}
    replaced = values["replace"]["task"]
    # PUT changes what it sends and keeps the rest (the description set on create).
    assert (replaced["title"], replaced["description"]) == ("Buy bread", "2 litres")
    assert (
        values["toggle"]["task"]["completed"] is True and values["toggle"]["task"]["completed_at"]
    )
    assert values["set"]["task"]["completed"] is False
    assert values["delete-stale"]["status"] == 412
    assert values["get-deleted"] == {"status": 404, "code": "NOT_FOUND", "details": []}
    assert values["trash"] == {"trashed": [task["id"]], "restored": "Buy bread", "after": 0}
    invalid = values["create-invalid"]
    assert (invalid["status"], invalid["code"]) == (422, "VALIDATION_ERROR")
    assert invalid["details"][0]["field"] == "body.title"

    # bulk: every op, in order, each result the task after it (null once deleted).
    rent, plants, mum, junk = values["create-more"]
    results = values["bulk"]
    assert [(r["index"], r["op"], r["id"]) for r in results] == [
        (0, "complete", plants), (1, "complete", mum), (2, "reopen", mum),
        (3, "set_priority", rent), (4, "add_tag", rent), (5, "add_tag", mum),
        (6, "remove_tag", mum), (7, "delete", junk),
    ]  # fmt: skip
    assert results[3]["task"]["priority"] == "high"
    assert results[4]["task"]["tags"] == ["home", "bills"]
    assert results[7]["task"] is None
    filtered = values["filter"]
    assert [t["id"] for t in filtered["data"]] == [rent]
    assert (filtered["meta"]["count"], filtered["meta"]["total"]) == (1, 1)
    pages = values["pages"]
    assert [p["titles"] for p in pages] == [["Call mum", "Pay rent"], ["Water plants"]]
    assert pages[0]["next_cursor"] and pages[1]["next_cursor"] is None
    assert values["all-tasks"] == ["Call mum", "Pay rent", "Water plants"]
    assert values["stats"] == {
        "total": 3, "pending": 2, "completed": 1, "overdue": 0,
        "by_priority": {"none": 1, "low": 1, "medium": 0, "high": 1},
        "by_list": [{"list_id": None, "name": None, "total": 3, "pending": 2, "completed": 1}],
    }  # fmt: skip
    assert (values["clear-completed"], values["clear-completed-again"]) == (1, 0)

    # The published contract's paths through the generated client.
    assert values["user-path"] == {
        "own": ["Call mum", "Pay rent"],
        "other": {
            "status": 404,
            "error": {"error": {"code": "NOT_FOUND", "message": "Task not found", "details": []}},
        },
    }
    assert [(r["op"], r["id"], r["task"]) for r in values["bulk-delete"]] == [
        ("delete", rent, None),
        ("delete", mum, None),
    ]
    assert values["changes"] == {
        "changes": [["deleted", rent, None], ["deleted", mum, None]],
        "has_more": False,
    }
    assert values["stats-after"]["total"] == 0
    missing = values["bulk-missing"]
    assert (missing["status"], missing["code"]) == (404, "NOT_FOUND")
    assert missing["details"][0]["field"] == "body.operations.0"
    # Recurrence: Monday and Thursday 09:00 in Berlin, across the change to summer time.
    assert values["recurring"] == {
        "recurrence": "FREQ=WEEKLY;BYDAY=MO,TH",
        "next_due_date": "2030-04-01T07:00:00Z",
        "occurrences": ["2030-04-01T07:00:00Z", "2030-04-04T07:00:00Z", "2030-04-08T07:00:00Z"],
    }
    assert values["recurring-next"] == [
        ["2030-03-28T08:00:00Z", True, False],
        ["2030-04-01T07:00:00Z", False, True],  # one next occurrence, though completed twice
    ]
    check_lists_subtasks_and_moves(values)
    check_sharing(values)
    assert values["aborted"] == "AbortError"
    assert values["after-logout-all"]["status"] == 401
    assert values["after-delete-me"]["status"] == 401

    # The server agrees: the demo's account is gone.
    login = httpx.post(
        f"{live_server}/api/auth/login",
        json={"email": values["register"]["email"], "password": "ts-client-password"},
    )
    assert login.status_code == 401


def check_lists_subtasks_and_moves(values: dict[str, Any]) -> None:
    """The demo's lists section: a list, two tasks and a checklist in it, moves, the subtree,
    the list routes, stats by list, the twins, and deleting the list with its tasks."""
    groceries, errands = values["create-lists"]
    shop, chores = groceries["list"], errands["list"]
    assert (shop["name"], shop["color"], shop["task_count"]) == ("Groceries", "#2e7d32", 0)
    assert groceries["location"] == f"/api/lists/{shop['id']}"
    assert groceries["etag"] == f'"{shop["id"]}-1"'
    assert (chores["name"], chores["color"]) == ("Errands", None)
    assert chores["position"] > shop["position"]  # a new list goes last
    taken = values["list-name-taken"]
    assert (taken["status"], taken["code"]) == (409, "CONFLICT")
    milk, bread, oat, whole = values["create-in-list"]
    # A new top-level task goes first; counts of each task's subtasks come with it.
    assert values["list-page"] == [["Bread", 0, 0], ["Milk", 2, 2]]
    moved = values["move-task"]
    assert (moved["task"]["id"], moved["task"]["list_id"]) == (bread, shop["id"])
    assert moved["etag"] == f'"{bread}-2"'
    assert moved["page"] == [["Milk", 2, 2], ["Bread", 0, 0]]
    assert values["move-stale"] == {"status": 412, "code": "PRECONDITION_FAILED", "details": []}
    cycle = values["move-cycle"]
    assert (cycle["status"], cycle["code"]) == (422, "VALIDATION_ERROR")
    assert cycle["details"][0]["field"] == "body.parent_id"
    # Whole milk was moved before Oat milk: the subtree is depth-first in manual order.
    assert values["subtree"] == [
        ["Milk", None, False], ["Whole milk", milk, False], ["Oat milk", milk, False],
    ]  # fmt: skip
    assert values["complete-down"] == [
        ["Milk", None, True], ["Whole milk", milk, True], ["Oat milk", milk, True],
    ]  # fmt: skip
    assert values["subtasks-page"] == [["Whole milk", shop["id"]], ["Oat milk", shop["id"]]]
    [result] = values["bulk-move"]
    assert (result["op"], result["id"], result["task"]["list_id"]) == ("move", bread, chores["id"])
    # The list's PUT renames it and keeps the colour it does not send.
    assert values["update-list"] == ["#ffaa00", "Chores", "#ffaa00", f'"{chores["id"]}-3"']
    assert values["update-list-stale"]["status"] == 412
    assert values["lists"] == [["Chores", 1, 1], ["Groceries", 3, 0]]  # moved before it
    got = values["get-list"]
    assert (got["list"]["task_count"], got["list"]["open_task_count"]) == (3, 0)
    assert got["etag"] == groceries["etag"]  # its tasks changed, not the list
    by_list = values["stats-by-list"]
    assert [(s["list_id"], s["total"], s["pending"]) for s in by_list[:2]] == [
        (chores["id"], 1, 1), (shop["id"], 3, 0),
    ]  # fmt: skip
    assert by_list[2]["list_id"] is None
    assert values["user-lists"] == {
        "own": ["Chores", "Groceries"],
        "other": {
            "status": 404,
            "error": {"error": {"code": "NOT_FOUND", "message": "List not found", "details": []}},
        },
    }
    deleted = values["delete-list"]
    assert sorted(deleted["changes"]) == [["deleted", t] for t in sorted((milk, oat, whole))]
    assert deleted["lists"] == ["Chores"]
    assert values["get-deleted-list"] == {"status": 404, "code": "NOT_FOUND", "details": []}


def check_sharing(values: dict[str, Any]) -> None:
    """The demo's sharing section: an invitation (its token shown once), a second account
    accepting it as an editor, working in the list and assigning itself, then downgraded
    (a write is 403 FORBIDDEN), then removed (unassigned; a read is the 404 of a missing
    task); a revoked invitation's token refused; a transfer to the member, and the old owner
    leaving."""
    assert values["invite"] == {
        "role": "editor",
        "status": "pending",
        "token": True,
        "pending": [[True, "editor", False]],
    }
    assert values["accept"] == {"accepted": ["Team", "editor"], "listed": ["Team", "editor"]}
    # The owner's task, in the owner's space (its user_id), seen by the member.
    assert values["member-tasks"] == [["Print the flyer", True]]
    assert values["assign"] == {"assignees": [True], "assigned_to_me": ["Print the flyer"]}
    assert values["members"] == [["owner", True, False], ["editor", False, True]]
    assert values["activity"] == ["task.updated", True, ["assignees"]]
    assert values["downgrade"] == ["viewer", "viewer"]
    forbidden = values["viewer-write"]
    assert (forbidden["status"], forbidden["code"]) == (403, "FORBIDDEN")
    assert values["remove"] == {"members": ["owner"], "unassigned": []}
    assert values["removed-read"] == {"status": 404, "code": "NOT_FOUND", "details": []}
    assert values["revoked-accept"] == {"status": 404, "code": "NOT_FOUND", "details": []}
    # The transfer: the member owns the list, the old owner is an admin (and then leaves it).
    assert values["transfer"] == {
        "role": "admin",
        "members": [["owner", True], ["admin", False]],
    }
    assert values["left-read"] == {"status": 404, "code": "NOT_FOUND", "details": []}


def test_client_keeps_a_day_a_day(built_client: None, live_server: str) -> None:
    """A task due on a day: `due_date: "2030-12-01"` comes back as that day (`all_day`,
    `dueOf` a day, never an instant at midnight UTC) on every read, through a zone change and
    a PUT of the day as read; an instant stays an instant (in UTC); both are due that day."""
    values = steps_of(node("checks.js", "due-day", BASE_URL=live_server))
    day = {"kind": "day", "day": "2030-12-01"}
    assert values["day-created"] == ["2030-12-01", True, day, "Pacific/Auckland"]
    assert values["day-read"] == values["day-created"]
    assert values["day-zone-changed"] == ["2030-12-01", True, day, "America/New_York"]
    assert values["day-sent-back"] == values["day-zone-changed"]
    instant = {"kind": "instant", "at": "2030-12-01T16:00:00.000Z"}
    assert values["instant"] == ["2030-12-01T16:00:00Z", False, instant, "UTC"]
    # The day starts at 05:00Z in New York (its start sorts among instants), the call at 16:00Z.
    assert values["due-that-day"] == [["Pay rent", "2030-12-01"], ["Call", "2030-12-01T16:00:00Z"]]


def test_client_uses_a_token_from_the_cli(built_client: None, live_server: str) -> None:
    minted = subprocess.run(
        [sys.executable, "-m", "backend", "token", "ts-client-user"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert minted.returncode == 0, minted.stderr
    values = steps_of(node("demo.js", BASE_URL=live_server, TOKEN=minted.stdout.strip()))
    assert "register" not in values and "after-delete-me" not in values
    assert values["me"]["id"] == "ts-client-user"
    assert values["user-path"]["own"] == ["Call mum", "Pay rent"]


def test_client_throws_a_typed_error_on_a_bad_token(built_client: None, live_server: str) -> None:
    result = node("demo.js", BASE_URL=live_server, TOKEN="forged")
    assert result.returncode == 1
    assert result.stderr.strip().startswith("401 UNAUTHORIZED: ")


def test_client_waits_out_429s_on_a_rate_limited_server(
    built_client: None, database_url: str
) -> None:
    """One task write per two-second window: four creates in a row each succeed, the 429s in
    between waited out as Retry-After says; without retries the 429 reaches the caller. (An
    abort signal ending a wait early is checked against the stub, whose 30 s Retry-After a
    slow machine cannot blur with a cut wait, as it could this server's 1-2 s ones. With two
    a window, the four could fall two and two into adjacent windows on a slow machine, and no
    429 was seen: CI failed on it; with one, a create right after a success is refused unless
    a window boundary falls between them.)"""
    limits = {
        "RATE_LIMIT_ENABLED": "true",
        "RATE_LIMIT_TASK_WRITES_PER_USER": "1",
        "RATE_LIMIT_TASK_WINDOW_SECONDS": "2",
        "RATE_LIMIT_SIGN_UP_PER_IP": "0",
        "RATE_LIMIT_SIGN_UP_PER_ACCOUNT": "0",
    }
    with running_server(database_url, **limits) as (base_url, _, _):
        values = steps_of(node("checks.js", "rate-limited", BASE_URL=base_url))
    created = values["created-through-429s"]
    assert created["titles"] == created["listed"] == ["t1", "t2", "t3", "t4"]
    assert 429 in created["statuses"] and created["statuses"].count(201) == 4
    assert set(created["statuses"]) == {201, 429}
    assert created["seconds"] >= 1
    refused = values["refused"]
    assert (refused["status"], refused["code"]) == (429, "RATE_LIMITED")
    assert 1 <= refused["retryAfter"] <= 2


def test_client_reports_a_limit_as_a_typed_error(built_client: None, live_server: str) -> None:
    """The 101st list is 422 LIMIT_REACHED, an ApiError whose `code` the client's ErrorCode
    type names; the 100 lists made before it are kept, none after."""
    values = steps_of(node("checks.js", "limit-reached", BASE_URL=live_server))
    refused = values["lists-refused"]
    assert (refused["created"], refused["status"], refused["limit"]) == (100, 422, True)
    assert "100 lists" in refused["message"]
    assert values["lists-kept"] == 100


def test_error_codes_type_names_every_code_the_api_documents() -> None:
    """`ErrorCode` in task-api.ts: every code of the OpenAPI document's error examples, and
    only codes the contract's table (or the client itself, HTTP_ERROR) names."""
    source = (CLIENT / "src" / "task-api.ts").read_text()
    union = re.search(r"export type ErrorCode =(.*?);", source, re.DOTALL)
    assert union, "task-api.ts exports ErrorCode"
    typed = set(re.findall(r'"([A-Z_]+)"', union.group(1)))
    document = json.loads((ROOT / "specs" / "openapi.json").read_text())
    examples = document["components"]["examples"].values()
    answered = {e["value"]["error"]["code"] for e in examples if "error" in e.get("value", {})}
    assert "LIMIT_REACHED" in answered
    assert answered <= typed, f"add to ErrorCode in task-api.ts: {sorted(answered - typed)}"
    contract = (ROOT / "specs" / "api-contract.md").read_text()
    documented = set(re.findall(r"`([A-Z][A-Z_]+[A-Z])`", contract))
    assert typed - {"HTTP_ERROR"} <= documented, sorted(typed - documented)


def test_client_retries_503_and_key_in_use_against_a_stub(built_client: None) -> None:
    """503 and 409 IDEMPOTENCY_KEY_IN_USE with Retry-After are retried (the same body and
    Idempotency-Key sent again); a wait longer than allowed is not; an abort signal ends a
    wait early (0.3 s into a 30 s Retry-After: a wait not cut would take 30 s or more)."""
    values = steps_of(node("checks.js", "stub"))
    assert values["503-then-200"]["total"] == 0
    assert values["503-then-200"]["seconds"] >= 1
    assert values["409-then-201"] == {"id": 7, "etag": '"7-1"', "replayed": True}
    assert values["wait-too-long"] == {"status": 503, "retryAfter": 120}
    aborted = values["aborted-wait"]
    assert aborted["error"] == "TimeoutError" and aborted["seconds"] < 20, aborted
    requests = values["requests"]
    assert [(r["method"], r["url"]) for r in requests] == [
        ("GET", "/api/tasks/stats"),
        ("GET", "/api/tasks/stats"),
        ("POST", "/api/tasks"),
        ("POST", "/api/tasks"),
        ("GET", "/api/tasks/stats"),
        ("POST", "/api/tasks"),  # the aborted create: its retry was never sent
    ]
    first, retry = requests[2], requests[3]
    assert first["key"] and first["key"] == retry["key"]
    assert json.loads(first["body"]) == json.loads(retry["body"]) == {"title": "x"}


def test_chat_and_its_stream(built_client: None, database_url: str) -> None:
    """`chat`, `chatStream` (parsed events), the conversation pages and a typed error, against
    the real server whose model is the fake Chat Completions server (tests/chat/)."""
    from tests.chat import fake_model
    from tests.chat.fake_model import call, say

    for model in fake_model.serve():
        env = {"CHAT_BASE_URL": model.url, "CHAT_MODEL": "fake-model"}
        model.script(call("add_task", {"title": "Buy milk"}), say("Added \u201cBuy milk\u201d."))
        model.script(say("You have one task: Buy milk."))
        with running_server(database_url, **env) as (base_url, _, _):
            values = steps_of(node("checks.js", "chat", BASE_URL=base_url))
    answer = values["chat"]
    assert answer["response"] == "Added \u201cBuy milk\u201d."
    assert [(c["name"], c["outcome"]) for c in answer["tool_calls"]] == [("add_task", "ok")]
    streamed = values["chat-stream"]
    assert streamed["events"] == ["start", "delta", "done"]
    assert streamed["text"] == "You have one task: Buy milk."
    assert streamed["done"]["response"] == streamed["text"]
    assert [c["id"] for c in values["conversations"]] == [answer["conversation_id"]]
    assert values["messages"] == [
        ["user", "add a task to buy milk", 0],
        ["assistant", "Added \u201cBuy milk\u201d.", 1],
        ["user", "what do I have?", 0],
        ["assistant", "You have one task: Buy milk.", 0],
    ]
    assert values["chat-missing"] == {"status": 404, "code": "NOT_FOUND"}
    assert values["conversations-after"] == 0


@pytest.mark.parametrize("storage", ["filesystem", "s3"])
def test_client_uploads_lists_downloads_and_deletes_attachments(
    built_client: None, database_url: str, storage: str, request: pytest.FixtureRequest
) -> None:
    """`uploadAttachment` (bytes with a name, a File), `listAttachments`, `getAttachment`,
    `downloadAttachment` (the bytes compared; on S3 the API's redirect to a presigned URL
    followed without the bearer token), `attachmentLimits`, `deleteAttachment` and the
    missing file's typed 404, against the real server on each storage."""
    env = {"RATE_LIMIT_ENABLED": "false"}
    if storage == "s3":
        server: Radosgw = request.getfixturevalue("radosgw_server")
        env |= {
            "S3_BUCKET": BUCKET,
            "S3_ENDPOINT_URL": server.endpoint,
            "S3_REGION": server.region,
            "S3_ACCESS_KEY_ID": server.access_key,
            "S3_SECRET_ACCESS_KEY": server.secret_key,
            "S3_ADDRESSING_STYLE": "path",
            "S3_PREFIX": "ts-client/",
        }
    with running_server(database_url, **env) as (base_url, _, _):
        values = steps_of(node("checks.js", "attachments", BASE_URL=base_url))
    uploaded = values["attachment-upload"]
    data = bytes((n * 7) % 256 for n in range(70_000))
    note = "Paid in full, 12 \u20ac\n".encode()
    assert uploaded == [
        [
            "receipt.bin",
            len(data),
            hashlib.sha256(data).hexdigest(),
            "application/octet-stream",
            True,
        ],
        ["re\u00e7u.txt", len(note), hashlib.sha256(note).hexdigest(), "text/plain", True],
    ]
    first, second = values["attachments-listed"]
    assert first < second
    assert values["attachment-get"] == "receipt.bin"
    [binary, text] = values["attachment-download"]
    assert binary == ["receipt.bin", "application/octet-stream", len(data), True]
    assert text[0] == "re\u00e7u.txt" and text[1].startswith("text/plain")
    assert text[2:] == [len(note), True]
    limits = values["attachment-limits"]
    assert limits["used_bytes"] == len(data) + len(note) and limits["max_per_task"] == 100
    name, kind, nonempty = values["export"]
    assert re.fullmatch(r"tasks-export-\d{4}-\d\d-\d\d\.zip", name) and kind == "application/zip"
    assert nonempty and values["export-members"] == [True, True]
    assert values["attachments-after-delete"] == [second]
    assert values["attachment-deleted"] == {"status": 404, "code": "NOT_FOUND"}
