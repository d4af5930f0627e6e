"""Hostile files (issue 89's adversarial review): every reader answers a file it cannot read
with `NotThisSource` (the route's 422, the runner's `failed`) or a warning, never another
exception (a 500, a runner retrying the import as if the database were away)."""

from __future__ import annotations

import contextlib
import json
import tracemalloc
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from backend.config import Settings
from backend.models.imports import IMPORTS_PENDING_MAX
from backend.models.task_list import MAX_DEPTH
from backend.transfer import sources
from backend.transfer.plan import NotThisSource, Plan
from backend.transfer.runner import ImportRunner
from tests.conftest import Account
from tests.transfer.common import zipped

_TODOIST = "TYPE,CONTENT,PRIORITY,INDENT\n"
_TICKTICK = (
    '"Date: 2026"\n'
    '"List Name","Title","Due Date","Is All Day","Reminder","Status","Completed Time",'
    '"taskId"\n'
)
_MANIFEST = json.dumps({"format": "task-api-export", "version": 1}).encode()


def _ticktick(due: str, reminder: str = "", status: str = "0", completed: str = "") -> bytes:
    return (
        _TICKTICK + f'"L","t","{due}","false","{reminder}","{status}","{completed}","1"\n'
    ).encode()


def _archive(tasks: str) -> bytes:
    return zipped({"manifest.json": _MANIFEST, "tasks.jsonl": tasks.encode()})


def _read(source: str, data: bytes) -> Plan | NotThisSource:
    """The reader itself (not `sources.read`, whose net would hide what it raises)."""
    try:
        plan: Plan = sources.reader(source).read(data, "file", "UTC")  # type: ignore[arg-type]
    except NotThisSource as exc:
        return exc
    return plan


HOSTILE = {
    # int() refuses a superscript digit and more than 4300 digits (ValueError)
    "todoist INDENT ²": ("todoist", (_TODOIST + "task,a,4,²\n").encode()),
    "todoist INDENT of 5000 digits": ("todoist", (_TODOIST + f"task,a,4,{'1' * 5000}\n").encode()),
    # an instant past year 9999 in UTC (OverflowError)
    "ticktick due 9999-12-31 -14:00": ("ticktick", _ticktick("9999-12-31T23:59:59-1400")),
    "ticktick completed 9999-12-31 -14:00": (
        "ticktick",
        _ticktick("", status="2", completed="9999-12-31T23:59:59-1400"),
    ),
    "ticktick reminder P99999999D": (
        "ticktick",
        _ticktick("2026-01-01T10:00:00+0000", "P99999999D"),
    ),
    "ticktick reminder -P99999999D": (
        "ticktick",
        _ticktick("2026-01-01T10:00:00+0000", "-P99999999D"),
    ),
    # JSON nested 100,000 deep (RecursionError)
    "google nesting bomb": (
        "google-tasks",
        b'{"kind": "tasks#taskLists", "items": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    ),
    "task-api tasks.jsonl nesting bomb": ("task-api", _archive("[" * 100_000 + "]" * 100_000)),
    # a position past a float's range (OverflowError), assignees not a list (KeyError, TypeError)
    "task-api position 9e399": (
        "task-api",
        _archive('{"id": 1, "title": "x", "position": ' + "9" * 400 + "}\n"),
    ),
    "task-api assignees object": (
        "task-api",
        _archive('{"id": 1, "title": "x", "assignees": {"a": 1}}\n'),
    ),
    "task-api assignees number": (
        "task-api",
        _archive('{"id": 1, "title": "x", "assignees": 5}\n'),
    ),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_a_hostile_file_is_read_or_refused_never_raises(case: str) -> None:
    source, data = HOSTILE[case]
    assert isinstance(_read(source, data), Plan | NotThisSource)


@pytest.mark.parametrize("case", list(HOSTILE))
def test_auto_detection_never_raises(case: str) -> None:
    _, data = HOSTILE[case]
    with contextlib.suppress(NotThisSource):
        sources.detect(data, "file")


def test_a_reader_bug_is_the_files_422_not_a_500(
    client: TestClient, alice: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The net under every reader: whatever one raises is the file's 422 with the envelope."""
    reader = sources.reader("ical")

    def broken(data: bytes, file_name: str, zone: str) -> Plan:
        raise ZeroDivisionError()

    monkeypatch.setattr(reader, "read", broken)
    ics = b"BEGIN:VCALENDAR\r\nBEGIN:VTODO\r\nUID:a\r\nEND:VTODO\r\nEND:VCALENDAR\r\n"
    for dry_run in ("true", "false"):
        response = client.post(
            "/api/imports",
            headers=alice.headers,
            files={"file": ("a.ics", ics, "text/calendar")},
            data={"source": "ical", "dry_run": dry_run},
        )
        assert response.status_code == 422, response.text
        assert response.json()["error"]["details"][0]["field"] == "file"
    assert client.get("/api/imports", headers=alice.headers).json()["data"] == []


@pytest.mark.parametrize(
    "case", ["ticktick reminder P99999999D", "google nesting bomb", "task-api assignees object"]
)
def test_a_hostile_file_through_the_api_is_a_4xx(
    client: TestClient, alice: Account, case: str
) -> None:
    source, data = HOSTILE[case]
    response = client.post(
        "/api/imports",
        headers=alice.headers,
        files={"file": ("file", data, "application/octet-stream")},
        data={"source": source, "dry_run": "true"},
    )
    assert response.status_code in (200, 422), response.text
    if response.status_code == 422:
        assert set(response.json()["error"]) >= {"code", "message", "details"}


def _google_chain(length: int) -> bytes:
    items = [
        {"id": str(n), "title": f"level {n}", "parent": str(n - 1) if n else None}
        for n in range(length)
    ]
    lists = [{"id": "l", "title": "Chain", "items": items}]
    return json.dumps({"kind": "tasks#taskLists", "items": lists}).encode()


def _depths(plan: Plan) -> dict[str, int]:
    depth: dict[str, int] = {}
    for task in plan.tasks:  # parents first
        depth[task.key] = 0 if task.parent_key is None else depth[task.parent_key] + 1
    return depth


def test_a_chain_past_the_trees_depth_is_cut_in_linear_time() -> None:
    """A 20,000-deep parent chain: kept whole it took the readers' and the importer's walks
    quadratic time (100,000: minutes of a core per request) and failed at the database's
    3-ancestor rule after the dry run said it would import; each fourth level now goes to
    the top with a warning."""
    plan = sources.read("google-tasks", _google_chain(20_000), "Tasks.json", "UTC")
    depths = _depths(plan)
    assert len(depths) == 20_000 and max(depths.values()) == MAX_DEPTH
    assert sum(1 for w in plan.warnings if w.code == "too_deep") == 20_000 // 4 - 1


def test_a_deep_chain_imports_as_its_dry_run_said(
    client: TestClient, alice: Account, db_engine: Engine, settings: Settings
) -> None:
    def post(dry_run: str) -> Any:
        return client.post(
            "/api/imports",
            headers=alice.headers,
            files={"file": ("Tasks.json", _google_chain(9), "application/json")},
            data={"source": "google-tasks", "dry_run": dry_run},
        )

    dry = post("true").json()["data"]
    assert dry["counts"]["tasks"] == 9
    queued = post("false")
    assert queued.status_code == 202, queued.text
    _run(db_engine, settings)
    done = client.get(queued.headers["Location"], headers=alice.headers).json()["data"]
    assert done["state"] == "done", done
    assert done["warnings"] == dry["warnings"]
    listed = client.get("/api/tasks?limit=100", headers=alice.headers).json()["data"]
    assert len(listed) == 9


def test_an_archives_duplicate_task_id_is_skipped_so_undo_leaves_nothing(
    client: TestClient, alice: Account, db_engine: Engine, settings: Settings
) -> None:
    """Two lines of one id were both created but keyed once: undo (and a failed import's
    clean-up) trashed only one, the other stayed behind."""
    data = _archive('{"id": 1, "title": "first"}\n{"id": 1, "title": "second"}\n')
    queued = client.post(
        "/api/imports",
        headers=alice.headers,
        files={"file": ("export.zip", data, "application/zip")},
        data={"source": "task-api"},
    )
    assert queued.status_code == 202, queued.text
    _run(db_engine, settings)
    done = client.get(queued.headers["Location"], headers=alice.headers).json()["data"]
    assert done["state"] == "done" and done["counts"]["skipped"] == 1, done
    undone = client.post(queued.headers["Location"] + "/undo", headers=alice.headers)
    assert undone.status_code == 200, undone.text
    assert client.get("/api/tasks", headers=alice.headers).json()["data"] == []


def _run(engine: Engine, settings: Settings) -> None:
    runner = ImportRunner(engine, settings)
    while runner.run_once() is not None:
        pass


@pytest.mark.parametrize(
    "titles",
    [["", "Work"], ["x" * 5000], ["Same", "same"], ["bad\x00name"]],
    ids=["untitled", "too long", "same name twice", "nul"],
)
def test_a_list_name_we_refuse_imports_as_its_dry_run_said(
    client: TestClient,
    alice: Account,
    db_engine: Engine,
    settings: Settings,
    titles: list[str],
) -> None:
    """A Google task list named "" (or too long, or twice) passed the dry run, then its
    ListCreate failed in the runner: the whole import `failed` with "The import failed"."""
    lists = [
        {"id": f"l{n}", "title": title, "items": [{"id": f"t{n}", "title": f"task {n}"}]}
        for n, title in enumerate(titles)
    ]
    data = json.dumps({"kind": "tasks#taskLists", "items": lists}).encode()

    def post(dry_run: str) -> Any:
        return client.post(
            "/api/imports",
            headers=alice.headers,
            files={"file": ("Tasks.json", data, "application/json")},
            data={"source": "google-tasks", "dry_run": dry_run},
        )

    dry = post("true").json()["data"]
    queued = post("false")
    assert queued.status_code == 202, queued.text
    _run(db_engine, settings)
    done = client.get(queued.headers["Location"], headers=alice.headers).json()["data"]
    assert done["state"] == "done", done
    assert done["counts"] == dry["counts"] and done["warnings"] == dry["warnings"]
    listed = client.get("/api/tasks?limit=100", headers=alice.headers).json()["data"]
    assert len(listed) == len(titles) == dry["counts"]["tasks"]


def test_a_user_has_at_most_a_few_imports_pending(
    client: TestClient, alice: Account, bob: Account, db_engine: Engine, settings: Settings
) -> None:
    """Each queued import holds its file (up to IMPORT_MAX_BYTES) in the database until a
    runner ends it: without a bound one user could queue them without end."""

    def post(account: Account) -> Any:
        return client.post(
            "/api/imports",
            headers=account.headers,
            files={"file": ("Tasks.json", _google_chain(1), "application/json")},
            data={"source": "google-tasks"},
        )

    for _ in range(IMPORTS_PENDING_MAX):
        assert post(alice).status_code == 202
    refused = post(alice)
    assert refused.status_code == 409, refused.text
    assert refused.json()["error"]["code"] == "CONFLICT"
    assert len(client.get("/api/imports", headers=alice.headers).json()["data"]) == 3
    assert post(bob).status_code == 202  # another user's are not counted
    _run(db_engine, settings)  # once they end, one more may be queued
    assert post(alice).status_code == 202


def test_a_todoist_csv_nested_deep_is_read_in_memory_linear_in_its_size() -> None:
    """Each row's key hashed its whole content path, built and kept as a string: rows nested
    ever deeper held each ancestor's content once per descendant (a 2 MB CSV: 3.5 GB, 40 s).
    400 rows of 1,000 characters (0.4 MB) held 80 MB that way."""
    rows = "".join(f"task,{'x' * 1000}{n},4,{n + 1}\n" for n in range(400))
    data = (_TODOIST + rows).encode()
    tracemalloc.start()
    try:
        plan = sources.read("todoist", data, "Deep.csv", "UTC")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(plan.tasks) == 400 and len({task.key for task in plan.tasks}) == 400
    assert peak < 20 * 1024 * 1024, peak


@pytest.mark.parametrize("zone", ["UTC" * 1000, "posixrules", "../../etc/passwd", "Europe/Nowhere"])
def test_a_time_zone_no_task_may_have_is_422(client: TestClient, alice: Account, zone: str) -> None:
    """A zone name past the file system's name length was a 500 (ZoneInfo's OSError);
    `posixrules` passed, then every task was skipped for its zone."""
    response = client.post(
        "/api/imports",
        headers=alice.headers,
        files={"file": ("Tasks.json", _google_chain(1), "application/json")},
        data={"source": "google-tasks", "dry_run": "true", "time_zone": zone},
    )
    assert response.status_code == 422, response.text
    assert response.json()["error"]["details"][0]["field"] == "body.time_zone"


def test_subtasks_are_limited_per_top_level_task_at_every_depth_in_the_dry_run_too(
    client: TestClient, alice: Account
) -> None:
    """120 children of one task with a subtask each (240 in its tree, past 200): the dry run
    answered 200, the import then failed on the database's count at every depth."""
    items: list[dict[str, Any]] = [{"id": "root", "title": "root"}]
    for n in range(120):
        items.append({"id": f"c{n}", "title": f"c{n}", "parent": "root"})
        items.append({"id": f"g{n}", "title": f"g{n}", "parent": f"c{n}"})
    lists = [{"id": "l", "title": "L", "items": items}]
    data = json.dumps({"kind": "tasks#taskLists", "items": lists}).encode()
    response = client.post(
        "/api/imports",
        headers=alice.headers,
        files={"file": ("Tasks.json", data, "application/json")},
        data={"source": "google-tasks", "dry_run": "true"},
    )
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "LIMIT_REACHED"
