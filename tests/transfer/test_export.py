"""`GET /api/export` (specs/import-export.md, "Export"): the members and their shapes (each line
what its GET answers), a parent before its subtasks, what is left out (the trash, other owners'
lists, every credential), the attachments' bytes, `tasks.ics` against CalDAV, and the stream
(bytes before any page is read, no unit of work open while they move)."""

from __future__ import annotations

import io
import json
import os
import zipfile
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from icalendar import Calendar
from sqlalchemy import Engine, text

from backend.auth.tokens import TokenClaims
from backend.config import Settings
from backend.services.unit_of_work import UnitOfWork
from backend.storage.app import app_storage
from backend.transfer.exporter import Account as Exported
from backend.transfer.exporter import archive
from tests.api.test_app_passwords import basic, create
from tests.cli.helpers import run_cli
from tests.conftest import Account
from tests.sharing.helpers import join, make_list, make_task

MEMBERS = {
    "manifest.json",
    "lists.jsonl",
    "tasks.jsonl",
    "comments.jsonl",
    "attachments.jsonl",
    "filters.jsonl",
    "notification_settings.json",
    "tasks.ics",
}


def export(client: TestClient, who: Account) -> zipfile.ZipFile:
    answer = client.get("/api/export", headers=who.headers)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/zip"
    day = datetime.now(UTC).strftime("%Y-%m-%d")
    assert answer.headers["content-disposition"] == (
        f'attachment; filename="tasks-export-{day}.zip"'
    )
    zipped = zipfile.ZipFile(io.BytesIO(answer.content))
    assert zipped.testzip() is None
    return zipped


def lines(zipped: zipfile.ZipFile, name: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in zipped.read(name).decode().splitlines()]


def data(client: TestClient, who: Account, path: str) -> Any:
    got = client.get(path, headers=who.headers)
    assert got.status_code == 200, got.text
    return got.json()["data"]


def post(client: TestClient, who: Account, path: str, body: dict[str, Any]) -> Any:
    made = client.post(path, json=body, headers=who.headers)
    assert made.status_code == 201, made.text
    return made.json()["data"]


def upload(client: TestClient, who: Account, task_id: int, name: str, content: bytes) -> Any:
    made = client.post(
        f"/api/tasks/{task_id}/attachments",
        files={"file": (name, content, "application/octet-stream")},
        headers=who.headers,
    )
    assert made.status_code == 201, made.text
    return made.json()["data"]


def test_each_member_is_what_its_get_answers(client: TestClient, alice: Account) -> None:
    home = post(client, alice, "/api/lists", {"name": "Home"})
    parent = post(
        client,
        alice,
        "/api/tasks",
        {
            "title": "Taxes",
            "description": "Before the deadline",
            "priority": "high",
            "tags": ["money"],
            "list_id": home["id"],
            "due_date": "2026-12-01T10:00:00+01:00",
            "time_zone": "Europe/Berlin",
            "reminders": [{"minutes_before_due": 60}],
        },
    )
    post(client, alice, "/api/tasks", {"title": "Receipts", "parent_id": parent["id"]})
    post(
        client,
        alice,
        "/api/tasks",
        {"title": "Water", "due_date": "2026-12-02", "recurrence": "FREQ=WEEKLY"},
    )
    done = post(client, alice, "/api/tasks", {"title": "Done", "completed": True})
    comment = post(client, alice, f"/api/tasks/{parent['id']}/comments", {"body": "Started"})
    content = os.urandom(5000)
    attachment = upload(client, alice, parent["id"], "receipt.bin", content)
    saved = post(client, alice, "/api/filters", {"name": "Urgent", "query": {"priority": ["high"]}})

    zipped = export(client, alice)

    assert set(zipped.namelist()) == MEMBERS | {f"attachments/{attachment['id']}/receipt.bin"}
    assert zipped.namelist()[-1] == "manifest.json"  # written last: its counts known at the end
    manifest = json.loads(zipped.read("manifest.json"))
    exported_at = manifest.pop("exported_at")
    assert datetime.fromisoformat(exported_at).tzinfo is not None
    assert manifest == {
        "format": "task-api-export",
        "version": 1,
        "account": {"id": alice.id, "email": alice.email},
        "counts": {"lists": 1, "tasks": 4, "comments": 1, "attachments": 1, "filters": 1},
    }
    assert lines(zipped, "lists.jsonl") == [data(client, alice, f"/api/lists/{home['id']}")]
    tasks = lines(zipped, "tasks.jsonl")
    assert {t["id"] for t in tasks} >= {parent["id"], done["id"]}
    for task in tasks:
        served = data(client, alice, f"/api/tasks/{task['id']}")
        assert "is_overdue" not in task
        served.pop("is_overdue")
        assert task == served
    assert lines(zipped, "comments.jsonl") == [
        data(client, alice, f"/api/tasks/{parent['id']}/comments/{comment['id']}")
    ]
    assert lines(zipped, "attachments.jsonl") == [
        data(client, alice, f"/api/tasks/{parent['id']}/attachments/{attachment['id']}")
    ]
    assert zipped.read(f"attachments/{attachment['id']}/receipt.bin") == content
    assert lines(zipped, "filters.jsonl") == [data(client, alice, f"/api/filters/{saved['id']}")]
    assert json.loads(zipped.read("notification_settings.json")) == data(
        client, alice, "/api/notification-settings"
    )


def test_a_parent_comes_before_its_subtasks_whatever_their_ids(
    client: TestClient, alice: Account
) -> None:
    older = post(client, alice, "/api/tasks", {"title": "Older"})
    grandchild = post(
        client, alice, "/api/tasks", {"title": "Grandchild", "parent_id": older["id"]}
    )
    newer = post(client, alice, "/api/tasks", {"title": "Newer"})
    moved = client.patch(
        f"/api/tasks/{older['id']}", json={"parent_id": newer["id"]}, headers=alice.headers
    )
    assert moved.status_code == 200, moved.text
    post(client, alice, "/api/tasks", {"title": "Alone"})

    order = [t["id"] for t in lines(export(client, alice), "tasks.jsonl")]

    assert len(order) == 4
    assert order.index(newer["id"]) < order.index(older["id"]) < order.index(grandchild["id"])
    seen: set[int] = set()
    for task in lines(export(client, alice), "tasks.jsonl"):
        assert task["parent_id"] is None or task["parent_id"] in seen
        seen.add(task["id"])


def test_the_trash_is_left_out(client: TestClient, alice: Account) -> None:
    kept = make_task(client, alice, "Kept")
    gone = make_task(client, alice, "Gone")
    post(client, alice, f"/api/tasks/{gone}/comments", {"body": "On a deleted task"})
    upload(client, alice, gone, "old.txt", b"old")
    assert client.delete(f"/api/tasks/{gone}", headers=alice.headers).status_code == 204

    zipped = export(client, alice)

    assert [t["id"] for t in lines(zipped, "tasks.jsonl")] == [kept]
    assert zipped.read("comments.jsonl") == b""
    assert zipped.read("attachments.jsonl") == b""
    assert not [n for n in zipped.namelist() if n.startswith("attachments/")]
    assert b"task-%d@" % gone not in zipped.read("tasks.ics")


def test_only_what_the_caller_owns_and_comments_by_anyone_on_it(
    client: TestClient, alice: Account, bob: Account
) -> None:
    alices = make_list(client, alice, "Alice's")
    alices_task = make_task(client, alice, "Alice's task", list_id=alices)
    bobs = make_list(client, bob, "Bob's")
    make_task(client, bob, "Bob's task", list_id=bobs)
    join(client, alice, bob, alices, "commenter")
    join(client, bob, alice, bobs, "editor")
    make_task(client, alice, "Alice's task in Bob's list", list_id=bobs)
    bobs_comment = post(client, bob, f"/api/tasks/{alices_task}/comments", {"body": "Bob says"})

    mine = export(client, alice)
    theirs = export(client, bob)

    assert [row["id"] for row in lines(mine, "lists.jsonl")] == [alices]
    assert [t["title"] for t in lines(mine, "tasks.jsonl")] == ["Alice's task"]
    assert [c["id"] for c in lines(mine, "comments.jsonl")] == [bobs_comment["id"]]
    assert lines(mine, "comments.jsonl")[0]["author_id"] == bob.id
    # Bob's export: his list and what is in it (a member's task in his list is his space's),
    # nothing of Alice's: not her list, her task, nor his own comment on her task.
    assert [row["id"] for row in lines(theirs, "lists.jsonl")] == [bobs]
    assert sorted(t["title"] for t in lines(theirs, "tasks.jsonl")) == [
        "Alice's task in Bob's list",
        "Bob's task",
    ]
    assert theirs.read("comments.jsonl") == b""
    assert json.loads(theirs.read("manifest.json"))["account"] == {"id": bob.id, "email": bob.email}


def test_another_user_gets_none_of_mine(
    client: TestClient, alice: Account, register: Callable[..., Account]
) -> None:
    task = make_task(client, alice, "Private")
    post(client, alice, f"/api/tasks/{task}/comments", {"body": "Mine"})
    upload(client, alice, task, "mine.txt", b"mine")
    post(client, alice, "/api/filters", {"name": "Mine", "query": {"status": "pending"}})
    stranger = register()

    zipped = export(client, stranger)

    counts = json.loads(zipped.read("manifest.json"))["counts"]
    assert counts == dict.fromkeys(("lists", "tasks", "comments", "attachments", "filters"), 0)
    everything = b"".join(zipped.read(name) for name in zipped.namelist())
    assert b"Private" not in everything and alice.id.encode() not in everything


def test_no_credential_is_anywhere_in_the_archive(
    client: TestClient, alice: Account, db_engine: Engine
) -> None:
    task = make_task(client, alice, "Feed me")
    app_password = create(client, alice, "Phone")
    feed = post(client, alice, "/api/calendar-feeds", {"scope": "all", "kind": "todos"})
    feed_token = feed["url"].rsplit("/", 1)[1].removesuffix(".ics")
    auth, p256dh = "tBHItJI5svbpez7KI4CCXg", "BNcRdreALRFXTkOOUHK1EtK2wtaz5Ry4YfYCA_0QTpQt"
    with db_engine.begin() as conn:  # a browser's subscription, as the push route stores one
        conn.execute(
            text(
                "INSERT INTO push_subscriptions (user_id, endpoint, p256dh, auth) "
                "VALUES (:user, 'https://push.example.com/send/1', :p256dh, :auth)"
            ),
            {"user": alice.id, "p256dh": p256dh, "auth": auth},
        )
        password_hash = conn.execute(
            text("SELECT password_hash FROM users WHERE id = :user"), {"user": alice.id}
        ).scalar_one()
    post(client, alice, f"/api/tasks/{task}/comments", {"body": "Nothing secret"})

    answer = client.get("/api/export", headers=alice.headers)
    assert answer.status_code == 200, answer.text
    zipped = zipfile.ZipFile(io.BytesIO(answer.content))
    everything = answer.content + b"".join(zipped.read(name) for name in zipped.namelist())

    secrets = {
        "password hash": password_hash,
        "password": alice.password,
        "app password": app_password["password"],
        "feed token": feed_token,
        "push auth secret": auth,
        "push key": p256dh,
        "bearer token": alice.token,
        "push endpoint": "push.example.com",
    }
    for what, secret in secrets.items():
        assert secret.encode() not in everything, what


def test_tasks_ics_holds_each_vtodo_as_caldav_serves_it(client: TestClient, alice: Account) -> None:
    home = make_list(client, alice, "Home")
    parent = make_task(
        client,
        alice,
        "Call the bank",
        description="Ask about the fees; ask again, politely, about the fees. " * 4
        + "Merci, \u00e9t\u00e9",
        list_id=home,
        due_date="2026-12-03T09:30:00-05:00",
        time_zone="America/New_York",
        reminders=[{"minutes_before_due": 15}],
        tags=["phone"],
    )
    make_task(client, alice, "Find the number", parent_id=parent, priority="low")
    make_task(client, alice, "Weekly review", due_date="2026-12-04", recurrence="FREQ=WEEKLY")
    make_task(client, alice, "Done already", completed=True)
    dav = basic(*(lambda made: (made["username"], made["password"]))(create(client, alice, "DAV")))

    body = export(client, alice).read("tasks.ics")
    calendar = Calendar.from_ical(body)
    todos = {str(todo["UID"]): todo for todo in calendar.walk("VTODO")}
    exported = lines(export(client, alice), "tasks.jsonl")

    assert len(todos) == len(exported) == 4
    assert [str(z["TZID"]) for z in calendar.walk("VTIMEZONE")] == ["America/New_York"]
    for task in exported:
        collection = "no-list" if task["list_id"] is None else str(task["list_id"])
        uid = f"task-{task['id']}@task-api"
        served = client.get(f"/dav/calendars/{collection}/{uid}.ics", headers=dav)
        assert served.status_code == 200, served.text
        block = served.content[served.content.index(b"BEGIN:VTODO") :]
        block = block[: block.rindex(b"END:VTODO\r\n") + len(b"END:VTODO\r\n")]
        assert block in body, task["title"]
        assert todos[uid].to_ical() == Calendar.from_ical(served.content).walk("VTODO")[0].to_ical()


def _work_counted(
    db_engine: Engine, settings: Settings, who: Account, opened: list[int]
) -> Callable[[], UnitOfWork]:
    claims = TokenClaims(subject=who.id, local=False)

    def work() -> UnitOfWork:
        opened.append(1)
        return UnitOfWork(db_engine, settings, claims=claims)

    return work


def test_the_archive_streams_page_by_page(
    client: TestClient, alice: Account, db_engine: Engine, settings: Settings
) -> None:
    for n in range(40):  # random text: deflate has bytes to give as pages are written
        make_task(client, alice, f"Task {n}", description=os.urandom(1000).hex())
    opened: list[int] = []
    chunks: Iterator[bytes] = archive(
        _work_counted(db_engine, settings, alice, opened),
        app_storage(client.app),
        Exported(alice.id, alice.email),
        datetime.now(UTC),
        page=4,
    )

    first = next(chunks)
    assert first.startswith(b"PK\x03\x04") and opened == []  # bytes before any read
    seen_at = [len(opened)]
    for chunk in chunks:
        if chunk:
            seen_at.append(len(opened))
    # 1 read of the small rows, 10 full pages of tasks and an empty one, the empty level
    # below, comments, attachments: each its own unit of work
    assert len(opened) == 1 + 11 + 1 + 1 + 1
    # Bytes came out while the tasks' pages were still being read, not only at the end.
    assert [at for at in seen_at if 1 < at < 1 + 10]


def test_the_route_answers_a_stream(client: TestClient, alice: Account) -> None:
    make_task(client, alice, "Streamed")
    with client.stream("GET", "/api/export", headers=alice.headers) as answer:
        assert answer.status_code == 200
        assert "content-length" not in answer.headers  # streamed: its size is not known ahead
        body = b"".join(answer.iter_bytes())
    assert zipfile.ZipFile(io.BytesIO(body)).read("manifest.json")


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer not-a-token"}])
def test_no_or_a_bad_token_is_401(client: TestClient, headers: dict[str, str]) -> None:
    answer = client.get("/api/export", headers=headers)
    assert answer.status_code == 401
    assert answer.json()["error"]["code"] == "UNAUTHORIZED"


def test_the_cli_writes_the_same_archive(
    database_url: str, client: TestClient, alice: Account, tmp_path: Path
) -> None:
    make_task(client, alice, "For the operator")
    out = tmp_path / "alice.zip"

    by_email = run_cli(
        "export", "--user", "Alice@Example.com", "--out", str(out), **{"DATABASE_URL": database_url}
    )

    assert by_email.returncode == 0, by_email.stderr
    zipped = zipfile.ZipFile(out)
    assert set(zipped.namelist()) == MEMBERS
    assert [t["title"] for t in lines(zipped, "tasks.jsonl")] == ["For the operator"]
    assert lines(zipped, "tasks.jsonl") == lines(export(client, alice), "tasks.jsonl")
    by_id = run_cli("export", "--user", alice.id, "--out", str(out), DATABASE_URL=database_url)
    assert by_id.returncode == 0, by_id.stderr
    assert json.loads(zipfile.ZipFile(out).read("manifest.json"))["account"]["id"] == alice.id
    unknown = run_cli("export", "--user", "nobody@example.com", DATABASE_URL=database_url)
    assert unknown.returncode == 1
    assert "no account" in unknown.stderr
