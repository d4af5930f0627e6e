"""The TypeScript example client: types generated from the committed specs/openapi.json by
openapi-typescript, type-checked by tsc, then run under Node against the real server.

Generating in the test (rather than committing the output) means the types can never be
stale: after an API change, regenerating specs/openapi.json is enough, and tsc then flags
every call in the client that no longer fits.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from typing import Any

import httpx
import pytest

from tests.conftest import ROOT, skip_or_fail_in_ci

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
    assert "export interface paths" in (CLIENT / "src" / "schema.d.ts").read_text()


def run_demo(base_url: str, **env: str) -> list[dict[str, Any]]:
    result = subprocess.run(
        ["node", "dist/demo.js"],
        cwd=CLIENT,
        env={**os.environ, "BASE_URL": base_url, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_client_runs_every_task_route(built_client: None, live_server: str) -> None:
    steps = run_demo(live_server)
    values = {s["step"]: s["value"] for s in steps}
    assert [s["step"] for s in steps] == [
        "register", "me", "create", "list", "get", "update", "replace", "toggle", "set",
        "delete", "get-deleted", "create-invalid", "create-more", "bulk", "filter", "pages",
        "stats", "clear-completed", "clear-completed-again", "bulk-delete", "stats-after",
        "bulk-missing",
    ]  # fmt: skip
    created = values["create"]
    assert (created["title"], created["description"]) == ("Buy milk", "2 litres")
    assert created["user_id"] == values["me"]["id"]
    assert [t["id"] for t in values["list"]["data"]] == [created["id"]]
    meta = values["list"]["meta"]
    assert (meta["count"], meta["limit"], meta["has_more"]) == (1, 10, False)
    assert values["get"] == created
    assert values["update"]["title"] == "Buy oat milk"
    assert values["update"]["description"] == "2 litres"
    assert (values["replace"]["title"], values["replace"]["description"]) == ("Buy bread", None)
    assert values["toggle"]["completed"] is True and values["toggle"]["completed_at"]
    assert values["set"]["completed"] is False and values["set"]["completed_at"] is None
    assert values["get-deleted"] == {"status": 404, "code": "NOT_FOUND", "details": []}
    invalid = values["create-invalid"]
    assert (invalid["status"], invalid["code"]) == (422, "VALIDATION_ERROR")
    assert invalid["details"][0]["field"] == "body.title"

    # bulk(): every op, in order, each result the task after it (null once deleted).
    rent, plants, mum, junk = values["create-more"]
    results = values["bulk"]
    assert [(r["index"], r["op"], r["id"]) for r in results] == [
        (0, "complete", plants), (1, "complete", mum), (2, "reopen", mum),
        (3, "set_priority", rent), (4, "add_tag", rent), (5, "add_tag", mum),
        (6, "remove_tag", mum), (7, "delete", junk),
    ]  # fmt: skip
    assert results[0]["task"]["completed"] is True
    assert results[1]["task"]["completed"] is True
    assert (results[2]["task"]["completed"], results[2]["task"]["completed_at"]) == (False, None)
    assert results[3]["task"]["priority"] == "high"
    assert results[4]["task"]["tags"] == ["home", "bills"]
    assert (results[5]["task"]["tags"], results[6]["task"]["tags"]) == (["phone"], [])
    assert results[7]["task"] is None

    # listTasks() passes array filters, q and include_total through.
    filtered = values["filter"]
    assert [t["id"] for t in filtered["data"]] == [rent]
    assert (filtered["meta"]["count"], filtered["meta"]["total"]) == (1, 1)

    # Following meta.next_cursor visits every task once, in order, and ends on null.
    pages = values["pages"]
    assert [p["titles"] for p in pages] == [["Call mum", "Pay rent"], ["Water plants"]]
    assert pages[0]["next_cursor"] and pages[1]["next_cursor"] is None

    assert values["stats"] == {
        "total": 3, "pending": 2, "completed": 1, "overdue": 0,
        "by_priority": {"none": 1, "low": 1, "medium": 0, "high": 1},
    }  # fmt: skip
    assert values["clear-completed"] == {"deleted": 1}
    assert values["clear-completed-again"] == {"deleted": 0}
    assert [(r["op"], r["id"], r["task"]) for r in values["bulk-delete"]] == [
        ("delete", rent, None),
        ("delete", mum, None),
    ]
    assert values["stats-after"] == {
        "total": 0, "pending": 0, "completed": 0, "overdue": 0,
        "by_priority": {"none": 0, "low": 0, "medium": 0, "high": 0},
    }  # fmt: skip
    missing = values["bulk-missing"]
    assert (missing["status"], missing["code"]) == (404, "NOT_FOUND")
    assert missing["details"][0]["field"] == "body.operations.0"

    # The server agrees: the demo's account exists and its tasks are gone.
    login = httpx.post(
        f"{live_server}/api/auth/login",
        json={"email": values["register"]["email"], "password": "ts-client-password"},
    )
    token = login.json()["data"]["access_token"]
    listed = httpx.get(f"{live_server}/api/tasks", headers={"Authorization": f"Bearer {token}"})
    assert listed.json()["data"] == []


def test_client_uses_a_token_from_the_cli(built_client: None, live_server: str) -> None:
    minted = subprocess.run(
        [sys.executable, "-m", "backend", "token", "ts-client-user"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert minted.returncode == 0, minted.stderr
    steps = run_demo(live_server, TOKEN=minted.stdout.strip())
    assert steps[0] == {"step": "me", "value": steps[0]["value"]}
    assert steps[0]["value"]["id"] == "ts-client-user"


def test_client_throws_a_typed_error_on_a_bad_token(built_client: None, live_server: str) -> None:
    result = subprocess.run(
        ["node", "dist/demo.js"],
        cwd=CLIENT,
        env={**os.environ, "BASE_URL": live_server, "TOKEN": "forged"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr.strip().startswith("401 UNAUTHORIZED: ")
