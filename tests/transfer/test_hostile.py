"""Hostile files (issue 89's adversarial review): every reader answers a file it cannot read
with `NotThisSource` (the route's 422, the runner's `failed`) or a warning, never another
exception (a 500, a runner retrying the import as if the database were away)."""

from __future__ import annotations

import contextlib
import json

import pytest
from fastapi.testclient import TestClient

from backend.transfer import sources
from backend.transfer.plan import NotThisSource, Plan
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
        plan: Plan = sources.READERS[source].read(data, "file", "UTC")  # type: ignore[index]
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
    reader = sources.READERS["ical"]

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
