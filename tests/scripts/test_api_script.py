"""`scripts/api.sh`: one curl command per route, each run for real against `serve` (that
every route has one: tests/api/test_api_script_table.py, the fast tier)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import Engine

from backend.config import Settings
from backend.models.task_children import CHILDREN
from backend.transfer.runner import ImportRunner
from tests.conftest import ROOT
from tests.conftest import api_routes as api_routes_of
from tests.resources import (
    body_model,
    creators,
    in_state,
    make_row,
    path_parameters,
    samples,
    unique,
)

SCRIPT = ROOT / "scripts" / "api.sh"

pytestmark = pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")


# The child commands' placeholders (`children ID PATH`, ...): each declared child's collection
# and row id, so a new child's routes need no line in the script.
CHILD_PATH, CHILD_ID = "{children}", "{child_id}"
CHILD_PATHS = {child.path for child in CHILDREN if child.path is not None}


def _expanded(method: str, path: str, usage: list[str]) -> list[tuple[str, str, list[str]]]:
    """A route-table line, or for a child command's line one per declared child with routes
    (its PATCH where it `edits`): its path, and its usage with `PATH` the child's path."""
    if CHILD_PATH not in path:
        return [(method, path, usage)]
    return [
        (
            method,
            path.replace(CHILD_PATH, child.path).replace(
                CHILD_ID, f"{{{'_'.join(child.noun.split())}_id}}"
            ),
            [child.path if token == "PATH" else token for token in usage],
        )
        for child in CHILDREN
        if child.path is not None and (method != "PATCH" or child.edits)
    ]


def _lines() -> list[tuple[str, str, str]]:
    return USAGE_LINE.findall(SCRIPT.read_text())


def child_commands() -> set[str]:
    """The commands that take a child's PATH after the task's ID."""
    return {usage.split()[0] for _, path, usage in _lines() if CHILD_PATH in path}


def script_usages() -> dict[tuple[str, str], list[str]]:
    """(method, path) -> the command and its arguments as the route table writes them (a
    child command's `PATH` filled in for each child); a route with no line, as the script runs
    it: by its operation id (`by_operation_id`)."""
    table = {
        (m, path): usage
        for method, p, u in _lines()
        for m, path, usage in _expanded(method, p, u.split())
    }
    return {**by_operation_id(table), **table}


def by_operation_id(table: Mapping[tuple[str, str], list[str]]) -> dict[tuple[str, str], list[str]]:
    """The script's last case: each operation of specs/openapi.json that has no line (but the
    `/api/{user_id}/...` twins, reached with `call`), run as `OPERATION_ID ID... [JSON]`, a
    value per path parameter and its body (`JSON` when required), derived from the route."""
    spec = json.loads((ROOT / "specs" / "openapi.json").read_text())
    derived = {}
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            route = (method.upper(), path)
            if route in table or path.startswith("/api/{user_id}/"):
                continue
            body = operation.get("requestBody")
            tail = [] if body is None else ["JSON" if body.get("required") else "[JSON]"]
            ids = ["ID"] * len(re.findall(r"\{[^}]+\}", path))
            derived[route] = [operation["operationId"], *ids, *tail]
    return derived


def ran_as(args: list[str] | tuple[str, ...]) -> str:
    """What a run of the script counts as: its command, with the child's PATH for a child
    command (`children comments`: each child's commands are run)."""
    if args[0] in child_commands() and len(args) > 2:
        return f"{args[0]} {args[2]}"
    return args[0]


def script_routes() -> dict[tuple[str, str], str]:
    """(method, path) -> what running its command counts as, from the script's route table."""
    return {route: ran_as(usage) for route, usage in script_usages().items()}


USAGE_LINE = re.compile(r"^# route: (GET|POST|PUT|PATCH|DELETE)\s+(\S+)\s+(.+)$", re.MULTILINE)


def served_routes(app: FastAPI) -> set[tuple[str, str]]:
    return {
        (method.upper(), path)
        for path, operations in app.openapi()["paths"].items()
        for method in operations
    }


@dataclass
class Api:
    base_url: str
    token: str | None = None
    ran: set[str] = field(default_factory=set)

    def run(
        self, *args: str, expect_ok: bool = True, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "BASE_URL": self.base_url, **(env or {})}
        env.pop("TOKEN", None)
        if self.token:
            env["TOKEN"] = self.token
        # A binary answer (the export's zip) reads with replacement characters.
        result = subprocess.run(
            ["bash", str(SCRIPT), *args],
            env=env,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=60,
        )
        self.ran.add(ran_as(args))
        assert (result.returncode == 0) == expect_ok, (args, result.stdout, result.stderr)
        return result

    def json(self, *args: str) -> Any:
        return json.loads(self.run(*args).stdout)


def status_of(result: subprocess.CompletedProcess[str]) -> int:
    return int(result.stderr.split()[1])


def _run_generated(api: Api, app: FastAPI, runner: ImportRunner) -> None:
    """Each served command the walk above did not run, from its route-table line: an `ID` is a
    row made for its path through the collections' POST routes (tests/resources.py), a `JSON`
    (or `TITLE|JSON`, `NAME|JSON`) its body schema's first sample, its free text made unique
    (`resources.unique`), optional arguments left out;
    it must succeed. An argument of another kind fails: run that command in the walk."""
    routes = {(m, r.path): r for r in api_routes_of(app) for m in r.methods}
    makers = creators(list({id(r): r for r in routes.values()}.values()))
    served = served_routes(app)
    with httpx.Client(base_url=api.base_url) as http:
        # A runner on the server's database runs a queued import to its end for `{import_id}`
        # (tests/resources.py), as the worker would.
        http.import_runner = runner  # type: ignore[attr-defined]
        owner = _Headers({"Authorization": f"Bearer {api.token}"})
        for (method, path), (command, *usage) in script_usages().items():
            if ran_as([command, *usage]) in api.ran or (method, path) not in served:
                continue
            known: dict[str, int] = {}
            ids = [make_row(http, owner, p, known, makers) for p in path_parameters(path)]  # type: ignore[arg-type]
            if "task_id" in known:  # in the state the route declares (`acts(..., task=...)`)
                in_state(http, owner, known["task_id"], method, path)  # type: ignore[arg-type]
            arguments = []
            for token in usage:
                if token.startswith("["):
                    break
                if token == "ID":
                    arguments.append(str(ids.pop(0)))
                elif token in CHILD_PATHS:  # a child command's PATH, filled in
                    arguments.append(token)
                elif token.endswith("JSON"):
                    model = body_model(routes[(method, path)])
                    assert model is not None and samples(model), (command, model)
                    # Its own values: a row the command's path needed was made from the
                    # same sample, and a name may have to be unique.
                    arguments.append(json.dumps(unique(samples(model)[0], model)))
                else:
                    pytest.fail(f"{command}: no generated value for {token}; run it in the walk")
            api.run(command, *arguments)


@dataclass
class _Headers:
    headers: dict[str, str]


def test_every_command_against_a_live_server(
    live_server: str, app: FastAPI, tmp_path: Path, db_engine: Engine, settings: Settings
) -> None:
    api = Api(live_server)
    assert api.json("health") == {"data": {"status": "ok"}}
    assert api.json("ready")["data"]["migrations"] == "current"

    registered = api.json("register", "ada@example.com", "pass-word-1", "Ada")["data"]
    assert registered["user"]["name"] == "Ada"
    assert api.run("register", "ada@example.com", "pass-word-1", expect_ok=False).stdout.startswith(
        '{"error":{"code":"CONFLICT"'
    )
    assert api.json("oauth-token", "ada@example.com", "pass-word-1")["token_type"] == "bearer"
    api.token = api.json("login", "ada@example.com", "pass-word-1")["data"]["access_token"]
    assert api.json("me")["data"]["email"] == "ada@example.com"

    created = api.run("create", 'Buy "milk"')
    assert status_of(created) == 201
    task = json.loads(created.stdout)["data"]
    assert task["title"] == 'Buy "milk"'
    tid = str(task["id"])
    api.run("create", '{"title": "Walk the dog", "description": "twice"}')
    listed = api.json("list", "status=pending&sort=title")
    assert [t["title"] for t in listed["data"]] == ['Buy "milk"', "Walk the dog"]
    assert api.json("get", tid)["data"]["id"] == task["id"]
    assert api.json("update", tid, '{"description": "oat"}')["data"]["description"] == "oat"
    replaced = api.json("replace", tid, '{"title": "Buy bread"}')["data"]
    # PUT changes what it sends and keeps the rest (the description the update set).
    assert (replaced["title"], replaced["description"]) == ("Buy bread", "oat")
    assert api.json("complete", tid)["data"]["completed"] is True
    assert api.json("complete", tid, "false")["data"]["completed"] is False
    api.json("complete", tid, "true")
    deleted = api.run("delete", tid)
    assert status_of(deleted) == 204 and deleted.stdout == ""
    gone = api.run("get", tid, expect_ok=False)
    assert status_of(gone) == 404
    assert json.loads(gone.stdout)["error"]["code"] == "NOT_FOUND"
    assert api.run("call", "GET", "/api/tasks?limit=1").returncode == 0
    # ChatKit's endpoint takes ChatKit's bodies (its turns need a chat model: tests/chat).
    threads = api.json("call", "POST", "/api/chatkit", '{"type": "threads.list", "params": {}}')
    assert threads == {"data": [], "has_more": False}

    # Conditional and idempotent requests through the environment variables.
    fresh = api.run("create", "Pay rent", env={"IDEMPOTENCY_KEY": "rent-1"})
    again = api.run("create", "Pay rent", env={"IDEMPOTENCY_KEY": "rent-1"})
    assert again.stdout == fresh.stdout and "Idempotent-Replayed: true" in again.stderr
    rent = json.loads(fresh.stdout)["data"]["id"]
    etag = f'"{rent}-1"'
    assert f"ETag: {etag}" in fresh.stderr.splitlines()
    assert status_of(api.run("get", str(rent), env={"IF_NONE_MATCH": etag})) == 304
    stale = api.run(
        "update", str(rent), '{"title": "x"}', env={"IF_MATCH": '"0-0"'}, expect_ok=False
    )
    assert status_of(stale) == 412
    assert status_of(api.run("update", str(rent), '{"title": "x"}', env={"IF_MATCH": etag})) == 200

    # Routes the task-features work adds; exercised wherever this build serves them.
    routes = served_routes(app)
    done = str(api.json("create", '{"title": "Done soon"}')["data"]["id"])
    if ("POST", "/api/tasks/bulk") in routes:
        bulk = api.json("bulk", f'{{"operations": [{{"op": "complete", "id": {done}}}]}}')
        assert bulk["data"]["results"][0]["task"]["completed"] is True
    else:
        api.run("complete", done, "true")
    if ("GET", "/api/tasks/stats") in routes:
        assert "data" in api.json("stats")
    if ("GET", "/api/tasks/changes") in routes:
        cursor = api.json("list")["meta"]["changes_cursor"]
        api.run("update", done, '{"title": "Done sooner"}')
        [change] = api.json("changes", cursor)["data"]
        assert (change["type"], change["task"]["title"]) == ("updated", "Done sooner")
    if ("GET", "/api/changes/stream") in routes:
        # The live stream from the same cursor: the same change, as an event.
        followed = api.run("follow", cursor, env={"FOLLOW_SECONDS": "3"}).stdout
        assert '"title":"Done sooner"' in followed and "id: " in followed, followed
        failed = api.run("follow", "not-a-cursor", expect_ok=False)
        assert '"code":"VALIDATION_ERROR"' in failed.stdout
    if ("GET", "/api/tasks/{task_id}/occurrences") in routes:
        weekly = api.json(
            "create", '{"title": "Bins", "recurrence": "weekly", "due_date": "2030-01-07"}'
        )["data"]
        preview = api.json("occurrences", str(weekly["id"]), "2")["data"]["occurrences"]
        assert preview == ["2030-01-14T00:00:00Z", "2030-01-21T00:00:00Z"]
        api.run("delete", str(weekly["id"]))
    if ("POST", "/api/tasks/{task_id}/attachments") in routes:
        # A file up and back: upload's FILE and download's OUT are paths, run here.
        holder = str(api.json("create", '{"title": "With a file"}')["data"]["id"])
        (sent := tmp_path / "note.txt").write_bytes(b"a note\n")
        stored = api.json("upload", holder, str(sent))["data"]
        assert (stored["filename"], stored["size"]) == ("note.txt", 7)
        api.run("download", holder, str(stored["id"]), str(copy := tmp_path / "copy.txt"))
        assert copy.read_bytes() == b"a note\n"
        assert api.json("attachment-limits")["data"]["used_bytes"] >= 7
    if ("GET", "/api/export") in routes:
        # Out and back in: export's OUT and import's FILE are paths, run here.
        api.run("export", str(archive := tmp_path / "tasks-export.zip"))
        preview = api.json("import", str(archive), "task-api", "true")["data"]
        assert preview["source"] == "task-api" and preview["counts"]["tasks"] >= 1
    if ("DELETE", "/api/tasks/completed") in routes:
        assert status_of(api.run("clear-completed")) == 200
        assert status_of(api.run("get", done, expect_ok=False)) == 404

    # Lists, subtasks and moves (issue 24), and a twin through `call`.
    made = api.run("create-list", "Groceries")
    assert status_of(made) == 201
    shop = json.loads(made.stdout)["data"]
    sid = str(shop["id"])
    assert f'ETag: "{sid}-1"' in made.stderr.splitlines()
    chores = str(api.json("create-list", '{"name": "Chores", "color": "#2E7D32"}')["data"]["id"])
    taken = api.run("create-list", "GROCERIES", expect_ok=False)
    assert json.loads(taken.stdout)["error"]["code"] == "CONFLICT"
    milk = api.json("create", f'{{"title": "Milk", "list_id": {sid}}}')["data"]["id"]
    bread = api.json("create", f'{{"title": "Bread", "list_id": {sid}}}')["data"]["id"]
    oat = api.json("create", f'{{"title": "Oat milk", "parent_id": {milk}}}')["data"]["id"]
    page = f"list_id={sid}&parent_id=none&sort=position"
    assert [t["id"] for t in api.json("list", page)["data"]] == [bread, milk]  # new ones first
    moved = api.json("move", str(bread), f'{{"after_id": {milk}}}')["data"]
    assert (moved["id"], moved["list_id"]) == (bread, shop["id"])
    assert [t["id"] for t in api.json("list", page)["data"]] == [milk, bread]
    subtree = api.json("subtree", str(milk))
    assert [(t["id"], t["parent_id"]) for t in subtree["data"]] == [(milk, None), (oat, milk)]
    assert subtree["meta"] == {"count": 2}
    cycle = api.run("move", str(milk), f'{{"parent_id": {oat}}}', expect_ok=False)
    assert json.loads(cycle.stdout)["error"]["details"][0]["field"] == "body.parent_id"
    bulk_move = f'{{"operations": [{{"op": "move", "id": {bread}, "list_id": {chores}}}]}}'
    assert api.json("bulk", bulk_move)["data"]["results"][0]["task"]["list_id"] == int(chores)
    assert [entry["name"] for entry in api.json("lists")["data"]] == ["Groceries", "Chores"]
    assert api.json("get-list", sid)["data"]["task_count"] == 2  # Milk and its subtask
    renamed = api.json("update-list", chores, '{"name": "Errands"}')["data"]
    assert (renamed["name"], renamed["color"]) == ("Errands", "#2e7d32")
    # PUT keeps the colour it does not send, and clears it when sent as null.
    replaced = api.json("replace-list", chores, '{"name": "Chores"}')["data"]
    assert (replaced["name"], replaced["color"]) == ("Chores", "#2e7d32")
    assert api.json("replace-list", chores, '{"color": null}')["data"]["color"] is None
    first = api.json("move-list", chores, f'{{"before_id": {sid}}}')["data"]
    assert first["position"] < shop["position"]
    assert api.json("move-list", chores)["data"]["position"] > shop["position"]  # last
    me = api.json("me")["data"]["id"]
    assert api.json("call", "GET", f"/api/{me}/lists/{sid}")["data"]["name"] == "Groceries"
    other = api.run("call", "GET", f"/api/someone-else/lists/{sid}", expect_ok=False)
    assert json.loads(other.stdout)["error"]["message"] == "List not found"
    stale = api.run("delete-list", sid, env={"IF_MATCH": '"0-0"'}, expect_ok=False)
    assert status_of(stale) == 412
    assert status_of(api.run("delete-list", sid)) == 204
    for gone in (milk, oat):  # the list's tasks went with it
        assert status_of(api.run("get", str(gone), expect_ok=False)) == 404
    assert status_of(api.run("get-list", sid, expect_ok=False)) == 404
    api.run("delete-list", chores)

    # Shared lists (issue 39): Ada invites Cy, who accepts; a role, a revoke, a transfer, and
    # Ada (an admin now) leaves.
    team = str(api.json("create-list", "Team")["data"]["id"])
    invitation = api.json("invite", team, '{"role": "editor"}')["data"]
    assert [i["id"] for i in api.json("invitations", team)["data"]] == [invitation["id"]]
    ada = api.token
    api.token = None
    api.run("register", "cy@example.com", "pass-word-1")
    cy = api.json("login", "cy@example.com", "pass-word-1")["data"]
    api.token = cy["access_token"]
    assert api.json("accept-invitation", invitation["token"])["data"]["role"] == "editor"
    api.token = ada
    cy_id = cy["user"]["id"]
    assert [m["role"] for m in api.json("members", team)["data"]] == ["owner", "editor"]
    assert api.json("update-member", team, cy_id, '{"role": "admin"}')["data"]["role"] == "admin"
    spare = api.json("invite", team, '{"role": "viewer"}')["data"]
    assert status_of(api.run("revoke-invitation", team, str(spare["id"]))) == 204
    assert api.json("transfer-list", team, cy_id)["data"]["role"] == "admin"
    assert status_of(api.run("remove-member", team, me)) == 204
    assert status_of(api.run("members", team, expect_ok=False)) == 404

    # Calendar feeds (issue 52): a feed of Ada's tasks, read by its URL's token.
    made = api.json("create-feed", '{"kind": "todos"}')["data"]
    feed = api.run("feed", made["url"].rsplit("/", 1)[1].removesuffix(".ics"))
    assert feed.stdout.startswith("BEGIN:VCALENDAR") and "ETag: " in feed.stderr

    # A mail's links (issue 72) carry the account and a token; forged ones change nothing.
    me_id = api.json("me")["data"]["id"]
    assert status_of(api.run("confirm-email", me_id, "A" * 43, expect_ok=False)) == 404
    assert status_of(api.run("unsubscribe-email", me_id, "0" * 64, expect_ok=False)) == 404

    # Chat (issue 32): this server has no model (tests/chat/test_api_script.py has one).
    unconfigured = api.run("chat", "add milk", expect_ok=False)
    assert status_of(unconfigured) == 503
    assert json.loads(unconfigured.stdout)["error"]["code"] == "CHAT_NOT_CONFIGURED"
    assert api.json("conversations")["data"] == []
    assert status_of(api.run("messages", "1", expect_ok=False)) == 404
    assert status_of(api.run("delete-conversation", "1", expect_ok=False)) == 404

    assert status_of(api.run("logout-all")) == 204
    assert status_of(api.run("me", expect_ok=False)) == 401
    api.token = api.json("login", "ada@example.com", "pass-word-1")["data"]["access_token"]
    assert status_of(api.run("delete-me")) == 204
    assert status_of(api.run("me", expect_ok=False)) == 401

    # The commands the walk did not run (a new resource's), generated, as a new account.
    api.token = None
    api.run("register", "bea@example.com", "pass-word-1")
    api.token = api.json("login", "bea@example.com", "pass-word-1")["data"]["access_token"]
    _run_generated(api, app, ImportRunner(db_engine, settings))

    commands_for_served = {c for r, c in script_routes().items() if r in served_routes(app)}
    assert commands_for_served <= api.ran, commands_for_served - api.ran


def test_comments_keep_their_own_commands(live_server: str) -> None:
    """`comments`, `add-comment`, ... are the child commands with PATH `comments`."""
    api = Api(live_server)
    api.run("register", "cy@example.com", "pass-word-1")
    api.token = api.json("login", "cy@example.com", "pass-word-1")["data"]["access_token"]
    task = str(api.json("create", "Read")["data"]["id"])
    added = api.json("add-comment", task, '{"body": "First"}')["data"]
    assert api.json("add-child", task, "comments", '{"body": "Second"}')["data"]["body"] == "Second"
    assert [c["body"] for c in api.json("comments", task, "limit=1")["data"]] == ["First"]
    assert api.json("comment", task, str(added["id"]))["data"]["body"] == "First"
    changed = api.json("update-comment", task, str(added["id"]), '{"body": "Changed"}')["data"]
    assert changed["body"] == "Changed"
    assert status_of(api.run("delete-comment", task, str(added["id"]))) == 204
    assert [c["body"] for c in api.json("children", task, "comments")["data"]] == ["Second"]
    assert api.run("comments", expect_ok=False).returncode == 2


def test_http_errors_exit_non_zero_and_print_the_envelope(live_server: str) -> None:
    api = Api(live_server, token="forged")
    result = api.run("list", expect_ok=False)
    assert result.returncode == 1
    assert json.loads(result.stdout)["error"]["code"] == "UNAUTHORIZED"
    assert result.stderr.strip() == "HTTP 401 GET /api/tasks"


def test_usage_errors_exit_2(live_server: str) -> None:
    api = Api(live_server)
    assert api.run("get", expect_ok=False).returncode == 2
    unknown = api.run("nope", expect_ok=False)
    assert unknown.returncode == 2 and "unknown command: nope" in unknown.stderr
    assert "route: GET    /health" not in api.run("--help", expect_ok=False).stdout


def test_unreachable_server_exits_with_curls_code() -> None:
    from tests.cli.helpers import closed_port

    api = Api(f"http://127.0.0.1:{closed_port()}")
    assert api.run("health", expect_ok=False).returncode == 7  # curl: could not connect
