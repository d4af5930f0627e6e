"""`/api/imports` (specs/import-export.md): our own archive round trip, the dry run equal to the
import, re-import adds nothing, undo then re-import, a killed import resumed with nothing
duplicated, another user's import 404, bad input, and a runner picking up a queued import."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from backend.config import Settings
from backend.main import create_app
from backend.models import TaskPublic
from backend.transfer.runner import ImportRunner
from tests.conftest import Account
from tests.sharing.helpers import join, make_list, make_task
from tests.transfer.archive import export_zip, task

Upload = Callable[..., Any]


def _post(client: TestClient, account: Account, data: bytes, **options: str) -> Any:
    form = {"source": "task-api", **options}
    return client.post(
        "/api/imports",
        headers=account.headers,
        files={"file": ("tasks-export.zip", data, "application/zip")},
        data=form,
    )


def _archive() -> bytes:
    lists = [{"id": 501, "name": "Home", "color": None}]
    tasks = [
        task(
            1001,
            "Plan the trip",
            list_id=501,
            description="Two weeks",
            priority="high",
            due_date="2026-12-24",
            time_zone="Asia/Tokyo",
            tags=["travel"],
            position=65536,
            completed=False,
        ),
        task(1002, "Book flights", list_id=501, parent_id=1001, position=65536),
        task(1003, "Pack", list_id=501, parent_id=1001, position=131072),
        task(
            1004,
            "Renew passport",
            due_date="2026-12-01T09:30:00+09:00",
            time_zone="Asia/Tokyo",
            recurrence="FREQ=YEARLY",
            reminders=[{"minutes_before_due": 30}],
            position=131072,
        ),
        task(
            1005,
            "Old task",
            completed=True,
            completed_at="2025-01-02T03:04:05Z",
            position=196608,
        ),
    ]
    comments = [{"id": 7001, "task_id": 1001, "body": "Ask about visas"}]
    filters = [{"id": 9001, "name": "Travel", "query": {"tag": ["travel"]}}]
    return export_zip(lists=lists, tasks=tasks, comments=comments, filters=filters)


def _run(engine: Engine, settings: Settings, **options: Any) -> ImportRunner:
    runner = ImportRunner(engine, settings, **options)
    while runner.run_once() is not None:
        pass
    return runner


def _tasks(client: TestClient, account: Account) -> list[dict[str, Any]]:
    response = client.get("/api/tasks?limit=100&sort=position", headers=account.headers)
    assert response.status_code == 200, response.text
    return list(response.json()["data"])


def _preview_is_the_task_shape(preview: list[dict[str, Any]], caller: Account) -> None:
    """Each item is the task object but `id` (TaskPublic's fields), then where it is in the
    file; derived fields computed as the service computes them."""
    helpers = ["list_name", "file_key", "parent_file_key"]
    public = [name for name in TaskPublic.model_fields if name != "id"]
    for item in preview:
        assert sorted(item) == sorted(public + helpers), item
        assert item["user_id"] == caller.id
        assert item["created_at"] is None and item["position"] is None
    shown = {item["title"]: item for item in preview}
    trip = shown["Plan the trip"]
    assert trip["due_date"] == "2026-12-24" and trip["all_day"] is True
    assert trip["subtask_count"] == 2 and trip["open_subtask_count"] == 2
    assert trip["list_id"] is None and trip["list_name"] == "Home"  # a list the import creates
    assert trip["file_key"] == "1001" and trip["parent_file_key"] is None
    flights = shown["Book flights"]
    assert flights["parent_file_key"] == "1001" and flights["parent_id"] is None
    assert flights["list_name"] == "Home"
    passport = shown["Renew passport"]
    assert passport["all_day"] is False and passport["next_due_date"] is not None
    assert passport["series_start"] is not None and passport["series_id"] is None
    assert passport["list_name"] is None and passport["subtask_count"] == 0
    old = shown["Old task"]
    assert old["completed"] is True and old["completed_at"].startswith("2025-01-02T03:04:05")
    assert old["is_overdue"] is False


def test_round_trip_dry_run_reimport_undo(
    client: TestClient, alice: Account, db_engine: Engine, settings: Settings
) -> None:
    data = _archive()
    dry = _post(client, alice, data, dry_run="true")
    assert dry.status_code == 200, dry.text
    preview = dry.json()["data"]
    assert preview["counts"] == {
        "lists": 1,
        "tasks": 5,
        "comments": 1,
        "attachments": 0,
        "filters": 1,
        "skipped": 0,
        "already_imported": 0,
    }
    assert preview["preview"][0]["title"] == "Old task"  # top level: written last to first
    _preview_is_the_task_shape(preview["preview"], alice)
    assert _tasks(client, alice) == []  # nothing written

    queued = _post(client, alice, data)
    assert queued.status_code == 202, queued.text
    body = queued.json()["data"]
    assert body["state"] == "queued"
    location = queued.headers["Location"]
    assert location == f"/api/imports/{body['id']}"
    _run(db_engine, settings)
    done = client.get(location, headers=alice.headers).json()["data"]
    assert done["state"] == "done", done
    assert done["counts"] == preview["counts"]
    assert done["warnings"] == preview["warnings"]
    assert done["progress"] == {"done": 5, "total": 5}

    tasks = {t["title"]: t for t in _tasks(client, alice)}
    assert set(tasks) == {"Plan the trip", "Book flights", "Pack", "Renew passport", "Old task"}
    trip = tasks["Plan the trip"]
    assert trip["due_date"] == "2026-12-24" and trip["time_zone"] == "Asia/Tokyo"
    assert trip["priority"] == "high" and trip["tags"] == ["travel"]
    assert trip["description"] == "Two weeks"
    assert tasks["Book flights"]["parent_id"] == trip["id"]
    assert tasks["Pack"]["parent_id"] == trip["id"]
    assert tasks["Book flights"]["position"] < tasks["Pack"]["position"]
    lists = client.get("/api/lists", headers=alice.headers).json()["data"]
    assert [item["name"] for item in lists] == ["Home"]
    assert trip["list_id"] == lists[0]["id"]
    passport = tasks["Renew passport"]
    assert passport["recurrence"] == "FREQ=YEARLY"
    assert passport["reminders"] == [{"minutes_before_due": 30}]
    assert passport["due_date"].startswith("2026-12-01T00:30:00")
    old = tasks["Old task"]
    assert old["completed"] is True and old["completed_at"].startswith("2025-01-02T03:04:05")
    # Top-level order kept: the trip, the passport, the old task.
    top = sorted((t for t in tasks.values() if t["parent_id"] is None), key=lambda t: t["position"])
    assert [t["title"] for t in top if t["list_id"] is None] == ["Renew passport", "Old task"]
    comments = client.get(f"/api/tasks/{trip['id']}/comments", headers=alice.headers).json()
    assert [c["body"] for c in comments["data"]] == ["Ask about visas"]
    filters = client.get("/api/filters", headers=alice.headers).json()["data"]
    assert [f["name"] for f in filters] == ["Travel"]

    # The same file again: nothing new, everything already imported.
    again = _post(client, alice, data, dry_run="true").json()["data"]
    assert again["counts"]["tasks"] == 0 and again["counts"]["already_imported"] == 8
    second = _post(client, alice, data)
    _run(db_engine, settings)
    second_done = client.get(second.headers["Location"], headers=alice.headers).json()["data"]
    assert second_done["state"] == "done"
    assert second_done["counts"]["already_imported"] == 8
    assert len(_tasks(client, alice)) == 5

    # Undo: every task to the trash, restorable; then the file imports again.
    undone = client.post(f"{location}/undo", headers=alice.headers)
    assert undone.status_code == 200, undone.text
    assert undone.json()["data"]["state"] == "undone"
    assert _tasks(client, alice) == []
    trash = client.get("/api/trash", headers=alice.headers).json()["data"]
    assert len(trash) == 3  # the roots, each with its subtasks
    assert client.post(f"{location}/undo", headers=alice.headers).status_code == 409
    third = _post(client, alice, data)
    _run(db_engine, settings)
    third_done = client.get(third.headers["Location"], headers=alice.headers).json()["data"]
    assert third_done["state"] == "done", third_done
    assert third_done["counts"]["tasks"] == 5
    assert len(_tasks(client, alice)) == 5

    listing = client.get("/api/imports?limit=2", headers=alice.headers).json()
    assert [item["id"] for item in listing["data"]] == [third_done["id"], second_done["id"]]
    assert listing["meta"]["has_more"] is True
    rest = client.get(
        f"/api/imports?cursor={listing['meta']['next_cursor']}", headers=alice.headers
    ).json()
    assert [item["id"] for item in rest["data"]] == [body["id"]]


def test_killed_import_resumes_with_nothing_duplicated(
    client: TestClient, alice: Account, db_engine: Engine, settings: Settings
) -> None:
    small = settings.model_copy(update={"import_chunk_tasks": 2})
    tasks = [task(2000 + n, f"Task {n}", position=n) for n in range(7)]
    queued = _post(client, alice, export_zip(tasks=tasks))
    import_id = queued.json()["data"]["id"]

    class Killed(BaseException):  # as a killed process: nothing after it runs
        pass

    def die(number: int) -> None:
        if number == 1:  # after two chunks committed
            raise Killed()

    with pytest.raises(Killed):
        ImportRunner(db_engine, small, after_chunk=die).run_once()
    middle = client.get(f"/api/imports/{import_id}", headers=alice.headers).json()["data"]
    assert middle["state"] == "running" and middle["progress"]["done"] == 4
    assert len(_tasks(client, alice)) == 4
    # Nobody takes it over while its lease holds.
    assert ImportRunner(db_engine, small).run_once() is None
    with db_engine.begin() as conn:  # the lease runs out
        conn.execute(text("UPDATE imports SET lease_until = now() - interval '1 second'"))
    outcome = ImportRunner(db_engine, small).run_once()
    assert outcome is not None and outcome.state == "done"
    titles = sorted(t["title"] for t in _tasks(client, alice))
    assert titles == sorted(f"Task {n}" for n in range(7))
    done = client.get(f"/api/imports/{import_id}", headers=alice.headers).json()["data"]
    assert done["state"] == "done" and done["counts"]["tasks"] == 7
    assert done["counts"]["already_imported"] == 0


def test_two_imports_of_one_file_at_once_create_each_task_once(
    client: TestClient, alice: Account, db_engine: Engine, settings: Settings
) -> None:
    """Both analysed before either wrote: the second to key a chunk's items rolls it back and,
    analysed again, counts them as already imported (the key's constraint decides)."""
    small = settings.model_copy(update={"import_chunk_tasks": 2})
    data = export_zip(tasks=[task(4000 + n, f"Once {n}", position=n) for n in range(4)])
    first = _post(client, alice, data).json()["data"]["id"]
    second = _post(client, alice, data).json()["data"]["id"]

    def meanwhile(number: int) -> None:
        if number == 0:  # the first's first chunk committed, its second not yet written
            done = ImportRunner(db_engine, small).run_once(only=second)
            assert done is not None and done.state == "done"

    outcome = ImportRunner(db_engine, small, after_chunk=meanwhile).run_once(only=first)
    assert outcome is not None and outcome.state == "left"
    with db_engine.begin() as conn:  # its lease runs out; it runs again
        conn.execute(text("UPDATE imports SET lease_until = now() - interval '1 second'"))
    outcome = ImportRunner(db_engine, small).run_once(only=first)
    assert outcome is not None and outcome.state == "done"
    assert sorted(t["title"] for t in _tasks(client, alice)) == [f"Once {n}" for n in range(4)]
    again = client.get(f"/api/imports/{first}", headers=alice.headers).json()["data"]
    assert again["state"] == "done" and again["counts"]["already_imported"] == 2  # the second's


def test_a_new_runner_takes_a_queued_import(
    client: TestClient, alice: Account, db_engine: Engine, settings: Settings
) -> None:
    queued = _post(client, alice, export_zip(tasks=[task(3001, "After a restart")]))
    assert queued.status_code == 202
    # The process that queued it is gone; a new one (the API's thread) finds it.
    app = create_app(settings.model_copy(update={"import_runner_in_api": True}))
    with TestClient(app) as fresh:
        for _ in range(200):
            state = fresh.get(queued.headers["Location"], headers=alice.headers).json()
            if state["data"]["state"] == "done":
                break
            __import__("time").sleep(0.05)
    assert state["data"]["state"] == "done"
    assert [t["title"] for t in _tasks(client, alice)] == ["After a restart"]


def test_another_users_import_is_404(client: TestClient, alice: Account, bob: Account) -> None:
    queued = _post(client, alice, export_zip(tasks=[task(1, "Mine")]))
    location = queued.headers["Location"]
    assert client.get(location, headers=bob.headers).status_code == 404
    assert client.post(f"{location}/undo", headers=bob.headers).status_code == 404
    assert client.get("/api/imports", headers=bob.headers).json()["data"] == []


def test_refused_row_skipped_with_its_warning(
    client: TestClient, alice: Account, db_engine: Engine, settings: Settings
) -> None:
    tasks = [
        task(1, "x" * 201),
        task(2, "Fine"),
        task(3, "Bad zone", time_zone="Mars/Olympus"),
        task(4, "Too many tags", tags=[f"t{n}" for n in range(21)]),
    ]
    data = export_zip(tasks=tasks)
    dry = _post(client, alice, data, dry_run="true").json()["data"]
    assert dry["counts"]["tasks"] == 1 and dry["counts"]["skipped"] == 3
    items = [(w["item"], w["field"]) for w in dry["warnings"]]
    assert items == [
        ("tasks.jsonl:1", "title"),
        ("tasks.jsonl:3", "time_zone"),
        ("tasks.jsonl:4", "tags"),
    ]
    queued = _post(client, alice, data)
    _run(db_engine, settings)
    done = client.get(queued.headers["Location"], headers=alice.headers).json()["data"]
    assert done["counts"] == dry["counts"] and done["warnings"] == dry["warnings"]
    assert [t["title"] for t in _tasks(client, alice)] == ["Fine"]


@pytest.mark.parametrize(
    ("data", "source", "field"),
    [
        (b"", "task-api", "file"),
        (b"TYPE,CONTENT\ntask,Hello\n", "task-api", "file"),
        (b"not anything", "auto", "file"),
    ],
)
def test_bad_input_is_422(
    client: TestClient, alice: Account, data: bytes, source: str, field: str
) -> None:
    response = _post(client, alice, data, source=source)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["details"][0]["field"] == field
    assert client.get("/api/imports", headers=alice.headers).json()["data"] == []


def test_bad_member_is_named(client: TestClient, alice: Account) -> None:
    data = export_zip(tasks=[task(1, "ok")])
    import io
    import zipfile

    buffer = io.BytesIO(data)
    with zipfile.ZipFile(buffer, "a") as archive:
        archive.writestr("lists.jsonl", "not json\n")
    response = _post(client, alice, buffer.getvalue())
    assert response.status_code == 422
    assert "lists.jsonl:1" in response.json()["error"]["message"]


def test_too_large_is_413(settings: Settings, register: Callable[..., Account]) -> None:
    app = create_app(settings.model_copy(update={"import_max_bytes": 2048}))
    with TestClient(app) as small:
        account = small.post(
            "/api/auth/register", json={"email": "big@example.com", "password": "long-password-1"}
        ).json()["data"]
        headers = {"Authorization": f"Bearer {account['access_token']}"}
        response = small.post(
            "/api/imports",
            headers=headers,
            files={"file": ("big.zip", b"x" * 5000, "application/zip")},
            data={"source": "task-api"},
        )
        assert response.status_code == 413, response.text
        assert response.json()["error"]["code"] == "PAYLOAD_TOO_LARGE"


def test_operator_command_imports_for_an_account(
    client: TestClient, alice: Account, db_engine: Engine, settings: Settings
) -> None:
    from backend.transfer.operator import account_of, import_file

    user_id = account_of(db_engine, settings, alice.email.upper())
    assert user_id == alice.id
    data = export_zip(tasks=[task(1, "From the shell"), task(2, "Its child", parent_id=1)])
    options: dict[str, Any] = {
        "source": "auto",
        "data": data,
        "file_name": "tasks-export.zip",
        "zone": None,
        "list_id": None,
    }
    dry = import_file(db_engine, settings, user_id, dry_run=True, **options)
    assert dry["counts"]["tasks"] == 2 and dry["source"] == "task-api"
    done = import_file(db_engine, settings, user_id, dry_run=False, **options)
    assert done["state"] == "done" and done["counts"]["tasks"] == 2
    assert sorted(t["title"] for t in _tasks(client, alice)) == ["From the shell", "Its child"]


def test_an_import_past_a_limit_is_refused_whole(
    client: TestClient, alice: Account, db_engine: Engine, settings: Settings
) -> None:
    from backend.api.responses import EXAMPLES

    lists = [{"id": n, "name": f"List {n}"} for n in range(101)]
    data = export_zip(lists=lists, tasks=[task(1, "In the first", list_id=0)])
    dry = _post(client, alice, data, dry_run="true")
    assert dry.status_code == 422
    assert dry.json() == EXAMPLES["import_past_a_limit"].example()["value"]
    queued = _post(client, alice, data)
    assert queued.status_code == 202
    _run(db_engine, settings)
    failed = client.get(queued.headers["Location"], headers=alice.headers).json()["data"]
    assert failed["state"] == "failed"
    assert failed["error"] == dry.json()["error"]["message"]
    assert _tasks(client, alice) == []
    assert client.get("/api/lists", headers=alice.headers).json()["data"] == []


def test_a_list_the_caller_cannot_add_to(
    client: TestClient, alice: Account, db_engine: Engine, settings: Settings
) -> None:
    data = export_zip(tasks=[task(1, "Somewhere")])
    dry = _post(client, alice, data, dry_run="true", list_id="999999")
    refused = client.post(
        "/api/tasks", json={"title": "t", "list_id": 999999}, headers=alice.headers
    )
    assert dry.status_code == refused.status_code == 404
    queued = _post(client, alice, data, list_id="999999")
    _run(db_engine, settings)
    failed = client.get(queued.headers["Location"], headers=alice.headers).json()["data"]
    assert failed["state"] == "failed"
    assert failed["error"] == refused.json()["error"]["message"]


def test_a_parent_loop_or_a_child_before_a_refused_parent_goes_to_the_top(
    client: TestClient, alice: Account, db_engine: Engine, settings: Settings
) -> None:
    tasks = [
        task(1, "Loops with 2", parent_id=2),
        task(2, "Loops with 1", parent_id=1),
        task(3, "Its parent comes later, refused", parent_id=4),
        task(4, "x" * 201),
    ]
    data = export_zip(tasks=tasks)
    dry = _post(client, alice, data, dry_run="true").json()["data"]
    assert dry["counts"]["tasks"] == 3 and dry["counts"]["skipped"] == 1
    queued = _post(client, alice, data)
    _run(db_engine, settings)
    done = client.get(queued.headers["Location"], headers=alice.headers).json()["data"]
    assert done["state"] == "done", done
    assert done["warnings"] == dry["warnings"]
    # The loop is cut where it is first found (as every reader's `arrange`): 1 at the top,
    # 2 its subtask; 3, whose parent was refused, at the top.
    parents = {t["title"]: t["parent_id"] for t in _tasks(client, alice)}
    assert len(parents) == 3
    assert parents["Loops with 1"] is not None
    assert parents["Loops with 2"] is None and parents["Its parent comes later, refused"] is None


def test_an_archives_files_come_across_byte_for_byte(
    client: TestClient, alice: Account, db_engine: Engine, settings: Settings
) -> None:
    data = b"%PDF-1.4 not really\n" + bytes(range(256))
    row = {"id": 77, "task_id": 1, "filename": "receipt.pdf", "content_type": "application/pdf"}
    archive = export_zip(tasks=[task(1, "With a file")], attachments=[(row, data)])
    dry = _post(client, alice, archive, dry_run="true").json()["data"]
    assert dry["counts"]["attachments"] == 1
    queued = _post(client, alice, archive)
    _run(db_engine, settings)
    done = client.get(queued.headers["Location"], headers=alice.headers).json()["data"]
    assert done["state"] == "done", done
    [made] = _tasks(client, alice)
    files = client.get(f"/api/tasks/{made['id']}/attachments", headers=alice.headers).json()
    [stored] = files["data"]
    assert stored["filename"] == "receipt.pdf" and stored["size"] == len(data)
    path = f"/api/tasks/{made['id']}/attachments/{stored['id']}/download"
    assert client.get(path, headers=alice.headers).content == data


def test_a_todoist_csv_told_apart_and_imported(
    client: TestClient, alice: Account, db_engine: Engine, settings: Settings
) -> None:
    csv = (
        b"TYPE,CONTENT,DESCRIPTION,PRIORITY,INDENT,AUTHOR,RESPONSIBLE,DATE,DATE_LANG,TIMEZONE\n"
        b"task,Buy milk @errands,,1,1,,,2026-12-01,en,\n"
        b"task,Oat if they have it,,4,2,,,,,\n"
    )
    files = {"file": ("Groceries [123].csv", csv, "text/csv")}
    dry = client.post(
        "/api/imports",
        files=files,
        data={"source": "auto", "dry_run": "true", "time_zone": "Asia/Tokyo"},
        headers=alice.headers,
    )
    assert dry.status_code == 200, dry.text
    assert dry.json()["data"]["source"] == "todoist"
    assert dry.json()["data"]["counts"]["tasks"] == 2
    queued = client.post(
        "/api/imports", files=files, data={"time_zone": "Asia/Tokyo"}, headers=alice.headers
    )
    assert queued.status_code == 202, queued.text
    _run(db_engine, settings)
    done = client.get(queued.headers["Location"], headers=alice.headers).json()["data"]
    assert done["state"] == "done", done
    assert done["counts"] == dry.json()["data"]["counts"]
    tasks = {t["title"]: t for t in _tasks(client, alice)}
    assert tasks["Buy milk"]["tags"] == ["errands"] and tasks["Buy milk"]["priority"] == "high"
    assert tasks["Buy milk"]["due_date"] == "2026-12-01"
    assert tasks["Oat if they have it"]["parent_id"] == tasks["Buy milk"]["id"]


def test_export_from_one_account_import_into_another(
    client: TestClient, alice: Account, bob: Account, db_engine: Engine, settings: Settings
) -> None:
    """Our own archive is lossless: what Alice exports, Bob imports the same but for ids,
    owners and creation times."""
    h = alice.headers
    home = client.post("/api/lists", json={"name": "Home", "color": "#2e7d32"}, headers=h)
    home = home.json()["data"]["id"]
    client.post("/api/lists", json={"name": "Errands"}, headers=h)
    parent = client.post(
        "/api/tasks",
        json={
            "title": "Paint the fence",
            "description": "White",
            "priority": "high",
            "due_date": "2026-12-24",
            "time_zone": "Pacific/Auckland",
            "tags": ["outside"],
            "list_id": home,
        },
        headers=h,
    ).json()["data"]
    client.post("/api/tasks", json={"title": "Buy paint", "parent_id": parent["id"]}, headers=h)
    client.post(
        "/api/tasks",
        json={
            "title": "Water plants",
            "due_date": "2026-12-01T08:00:00-05:00",
            "time_zone": "America/New_York",
            "recurrence": "FREQ=WEEKLY",
            "reminders": [{"minutes_before_due": 15}],
        },
        headers=h,
    )
    done = client.post("/api/tasks", json={"title": "Old"}, headers=h).json()["data"]
    client.patch(f"/api/tasks/{done['id']}/complete", json={"completed": True}, headers=h)
    client.post(f"/api/tasks/{parent['id']}/comments", json={"body": "Two coats"}, headers=h)
    exported = client.get("/api/export", headers=h)
    assert exported.status_code == 200, exported.text

    queued = _post(client, bob, exported.content)
    assert queued.status_code == 202, queued.text
    _run(db_engine, settings)
    state = client.get(queued.headers["Location"], headers=bob.headers).json()["data"]
    assert state["state"] == "done", state

    kept = (
        "title",
        "description",
        "priority",
        "due_date",
        "all_day",
        "time_zone",
        "recurrence",
        "tags",
        "completed",
        "completed_at",
        "reminders",
    )

    def shown(account: Account) -> dict[str, dict[str, Any]]:
        tasks = _tasks(client, account)
        titles = {t["id"]: t["title"] for t in tasks}
        lists = client.get("/api/lists", headers=account.headers).json()["data"]
        names = {item["id"]: item["name"] for item in lists}
        return {
            t["title"]: {
                **{k: t[k] for k in kept},
                "parent": titles.get(t["parent_id"]),
                "list": names.get(t["list_id"]),
            }
            for t in tasks
        }

    assert shown(bob) == shown(alice)

    def lists_of(account: Account) -> list[dict[str, Any]]:
        """Every list field but ids, owners and times, in their order."""
        rows = client.get("/api/lists", headers=account.headers).json()["data"]
        rows.sort(key=lambda row: row["position"])
        unlike = {"id", "user_id", "created_at", "updated_at", "position"}
        return [{k: v for k, v in row.items() if k not in unlike} for row in rows]

    assert lists_of(bob) == lists_of(alice)
    assert lists_of(bob)[0]["color"] == "#2e7d32"
    assert not [entry for entry in state["lossy"] if "colour" in entry["what"]]
    [bobs] = [t for t in _tasks(client, bob) if t["title"] == "Paint the fence"]
    comments = client.get(f"/api/tasks/{bobs['id']}/comments", headers=bob.headers).json()
    assert [c["body"] for c in comments["data"]] == ["Two coats"]
    # A comment keeps its time (its author is the importing account: another account's).
    [alices] = [t for t in _tasks(client, alice) if t["title"] == "Paint the fence"]
    theirs = client.get(f"/api/tasks/{alices['id']}/comments", headers=h).json()["data"]
    [mine] = comments["data"]
    assert mine["created_at"] == theirs[0]["created_at"]
    assert mine["author_id"] == bob.id


def _undo(client: TestClient, account: Account, location: str) -> dict[str, Any]:
    undone = client.post(f"{location}/undo", headers=account.headers)
    assert undone.status_code == 200, undone.text
    body: dict[str, Any] = undone.json()["data"]
    assert body["state"] == "undone"
    return body


def test_undo_trashes_what_it_put_in_another_owners_list_and_reports_what_it_cannot(
    client: TestClient, alice: Account, bob: Account, db_engine: Engine, settings: Settings
) -> None:
    """Bob, an editor of Alice's list, imports into it: the undo trashes those tasks too, as
    DELETE /api/tasks/{id} would; one Alice moved out of his reach is reported, not skipped."""
    shared = make_list(client, alice, "Shared")
    private = make_list(client, alice, "Private")
    join(client, alice, bob, shared, "editor")
    data = export_zip(tasks=[task(1, "First"), task(2, "Second"), task(3, "Kept by Alice")])
    queued = _post(client, bob, data, list_id=str(shared))
    assert queued.status_code == 202, queued.text
    _run(db_engine, settings)
    location = queued.headers["Location"]
    assert client.get(location, headers=bob.headers).json()["data"]["state"] == "done"
    in_shared = {t["title"]: t for t in _tasks(client, alice)}
    assert set(in_shared) == {"First", "Second", "Kept by Alice"}
    kept = in_shared["Kept by Alice"]["id"]
    moved = client.patch(f"/api/tasks/{kept}", json={"list_id": private}, headers=alice.headers)
    assert moved.status_code == 200, moved.text

    body = _undo(client, bob, location)
    assert [t["title"] for t in _tasks(client, alice)] == ["Kept by Alice"]
    trash = client.get("/api/trash", headers=alice.headers).json()["data"]
    assert sorted(t["title"] for t in trash) == ["First", "Second"]
    [report] = [w for w in body["warnings"] if w["code"] == "not_undone"]
    assert report["item"] == "tasks" and "1" in report["message"]
    assert client.get(location, headers=bob.headers).json()["data"]["warnings"] == body["warnings"]


def test_undo_deletes_the_lists_and_filters_it_created_unless_a_list_holds_other_tasks(
    client: TestClient, alice: Account, db_engine: Engine, settings: Settings
) -> None:
    lists = [{"id": 501, "name": "Home", "color": None}, {"id": 502, "name": "Work"}]
    tasks = [task(1, "Sweep", list_id=501), task(2, "Report", list_id=502)]
    filters = [{"id": 9001, "name": "Travel", "query": {"tag": ["travel"]}}]
    mine = client.post("/api/filters", json={"name": "Mine", "query": {}}, headers=alice.headers)
    assert mine.status_code == 201, mine.text
    data = export_zip(lists=lists, tasks=tasks, filters=filters)
    queued = _post(client, alice, data)
    _run(db_engine, settings)
    location = queued.headers["Location"]
    made = {item["name"]: item["id"] for item in _lists(client, alice)}
    make_task(client, alice, "Mine, not the import's", list_id=made["Work"])

    body = _undo(client, alice, location)
    assert [item["name"] for item in _lists(client, alice)] == ["Work"]  # still holds a task
    assert [t["title"] for t in _tasks(client, alice)] == ["Mine, not the import's"]
    names = [f["name"] for f in client.get("/api/filters", headers=alice.headers).json()["data"]]
    assert names == ["Mine"]
    [report] = [w for w in body["warnings"] if w["code"] == "list_kept"]
    assert report["item"] == f"lists/{made['Work']}"
    # The same file imports again, its lists and filter with it.
    again = _post(client, alice, data)
    _run(db_engine, settings)
    done = client.get(again.headers["Location"], headers=alice.headers).json()["data"]
    assert done["state"] == "done", done
    assert sorted(item["name"] for item in _lists(client, alice)) == ["Home", "Work"]


def _lists(client: TestClient, account: Account) -> list[dict[str, Any]]:
    answer = client.get("/api/lists", headers=account.headers)
    assert answer.status_code == 200, answer.text
    return list(answer.json()["data"])


# What differs between two accounts' copies of the same data: ids, owners, times of writing
# (and what names another row by id: compared by that row's title or name instead).
_NOT_COMPARED = {
    "id",
    "user_id",
    "created_at",
    "updated_at",
    "series_id",
    "previous_task_id",
    "list_id",
    "parent_id",
    "task_id",
    "position",
    "author_id",
    "uploaded_by",
}


def _exported(client: TestClient, account: Account) -> dict[str, Any]:
    """The account's export, each member's lines compared field for field: ids and owners
    replaced by what they name, manual order by the place among siblings."""
    answer = client.get("/api/export", headers=account.headers)
    assert answer.status_code == 200, answer.text
    archive = zipfile.ZipFile(io.BytesIO(answer.content))

    def lines(name: str) -> list[dict[str, Any]]:
        raw = archive.read(name).decode()
        return [json.loads(line) for line in raw.splitlines() if line.strip()]

    lists, tasks = lines("lists.jsonl"), lines("tasks.jsonl")
    list_names = {row["id"]: row["name"] for row in lists}
    titles = {row["id"]: row["title"] for row in tasks}
    siblings: dict[tuple[Any, Any], list[dict[str, Any]]] = {}
    for row in tasks:
        siblings.setdefault((row["list_id"], row["parent_id"]), []).append(row)
    rank = {
        row["id"]: n
        for group in siblings.values()
        for n, row in enumerate(sorted(group, key=lambda row: row["position"]))
    }

    def kept(row: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in row.items() if k not in _NOT_COMPARED}

    files = []
    for row in lines("attachments.jsonl"):
        data = archive.read(f"attachments/{row['id']}/{row['filename']}")
        files.append({**kept(row), "task": titles[row["task_id"]], "bytes": data})
    ordered_lists = sorted(lists, key=lambda row: row["position"])
    return {
        "lists": [kept(row) for row in ordered_lists],
        "tasks": {
            row["title"]: {
                **kept(row),
                "list": list_names.get(row["list_id"]),
                "parent": titles.get(row["parent_id"]),
                "place": rank[row["id"]],
            }
            for row in tasks
        },
        "comments": sorted(
            (
                {**kept(row), "task": titles[row["task_id"]], "time": row["created_at"]}
                for row in lines("comments.jsonl")
            ),
            key=str,
        ),
        "attachments": files,
        "filters": sorted((kept(row) for row in lines("filters.jsonl")), key=str),
    }


def test_export_import_export_is_the_same_field_for_field(
    client: TestClient, alice: Account, bob: Account, db_engine: Engine, settings: Settings
) -> None:
    """Issue 89's lossless round trip, member by member, every field but ids, owners and
    times of writing: title, description, priority, a day and an instant, zone, recurrence,
    tags, completion and its time, subtasks, manual order, list and its name, reminders,
    comments' text and time, attachments' bytes, name and type, filters."""
    h = alice.headers
    home = make_list(client, alice, "Home")
    client.patch(f"/api/lists/{home}", json={"color": "#aa3300"}, headers=h)
    make_list(client, alice, "Empty")
    fence = make_task(
        client,
        alice,
        "Paint the fence",
        description="White\nTwo coats",
        priority="high",
        due_date="2026-12-24",
        time_zone="Pacific/Auckland",
        tags=["outside", "weekend"],
        list_id=home,
        reminders=[{"minutes_before_due": 60}],
    )
    first, sand = (make_task(client, alice, t, parent_id=fence) for t in ("Buy paint", "Sand"))
    make_task(client, alice, "Prime", parent_id=fence)
    moved = client.post(f"/api/tasks/{sand}/move", json={"before_id": first}, headers=h)
    assert moved.status_code == 200, moved.text
    make_task(client, alice, "Second in Home", list_id=home, priority="low")
    make_task(
        client,
        alice,
        "Water plants",
        due_date="2026-12-01T08:00:00-05:00",
        time_zone="America/New_York",
        recurrence="FREQ=WEEKLY;BYDAY=TU",
        reminders=[{"minutes_before_due": 15}],
    )
    old = make_task(client, alice, "Old", completed=True)
    assert old
    client.post(f"/api/tasks/{fence}/comments", json={"body": "First coat done"}, headers=h)
    client.post(f"/api/tasks/{fence}/comments", json={"body": "Second coat"}, headers=h)
    content = bytes(range(256)) * 3
    attached = client.post(
        f"/api/tasks/{fence}/attachments",
        files={"file": ("colours.bin", content, "application/octet-stream")},
        headers=h,
    )
    assert attached.status_code == 201, attached.text
    saved = {"name": "Urgent", "query": {"priority": ["high"]}}
    assert client.post("/api/filters", json=saved, headers=h).status_code == 201
    before = _exported(client, alice)

    exported = client.get("/api/export", headers=h)
    queued = _post(client, bob, exported.content)
    assert queued.status_code == 202, queued.text
    _run(db_engine, settings)
    state = client.get(queued.headers["Location"], headers=bob.headers).json()["data"]
    assert state["state"] == "done", state
    after = _exported(client, bob)

    for member in ("lists", "tasks", "comments", "attachments", "filters"):
        assert after[member] == before[member], member
    assert before["tasks"]["Sand"]["place"] == 0  # moved first among its siblings
    assert len(before["comments"]) == 2 and len(before["attachments"]) == 1
