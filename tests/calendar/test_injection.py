"""What a title, description, list name or tag holds never breaks a feed nor adds to it
(issue 52, "Injection"): every iCalendar-significant sequence, parsed back, is exactly the
text that was stored, in exactly the components expected."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import icalendar
import pytest
from fastapi.testclient import TestClient

from tests.calendar.test_feeds import make_feed, path_of
from tests.conftest import Account

# Each is a line, or part of one, a naive writer would let through as structure.
HOSTILE = (
    "END:VEVENT",
    "END:VCALENDAR",
    "a\r\nBEGIN:VEVENT\r\nSUMMARY:injected\r\nEND:VEVENT",
    "semi;colon, comma\\back\\slash",
    'quote"d: DTSTART:20260101T000000Z',
    "\\n not a newline, \\, not a comma",
    "é" * 37 + "😀" * 20,  # folds inside multi-byte characters
    "x" * 74 + "€",  # a fold right at a character boundary
)
SINGLE_LINE = [text for text in HOSTILE if "\r" not in text and "\n" not in text]


def _due(days: int) -> str:
    return (datetime.now(UTC) + timedelta(days=days)).replace(microsecond=0).isoformat()


@pytest.mark.parametrize("kind", ["events", "todos"])
def test_hostile_text_stays_text(client: TestClient, alice: Account, kind: str) -> None:
    lists = client.post("/api/lists", json={"name": "END:VCALENDAR;x,y\\z"}, headers=alice.headers)
    assert lists.status_code == 201, lists.text
    list_id = lists.json()["data"]["id"]
    expected: dict[str, tuple[str | None, list[str]]] = {}
    for index, title in enumerate(SINGLE_LINE):
        description = HOSTILE[index % len(HOSTILE)] + "\nline two\r\nEND:VCALENDAR"
        tags = [SINGLE_LINE[(index + 1) % len(SINGLE_LINE)][:32], "plain"]
        made = client.post(
            "/api/tasks",
            json={
                "title": title,
                "description": description,
                "tags": tags,
                "due_date": _due(index + 1),
                "list_id": list_id,
            },
            headers=alice.headers,
        )
        assert made.status_code == 201, made.text
        stored = made.json()["data"]
        expected[stored["title"]] = (stored["description"], sorted(stored["tags"]))
    feed = make_feed(client, alice, scope="list", list_id=list_id, kind=kind)
    got = client.get(path_of(feed))
    assert got.status_code == 200
    lines = got.content.split(b"\r\n")
    assert all(len(line) <= 75 for line in lines)
    for line in lines:
        line.decode("utf-8")  # every folded line is whole UTF-8 on its own
    assert got.content.count(b"\nEND:VCALENDAR\r\n") == 1 and got.content.endswith(
        b"END:VCALENDAR\r\n"
    )
    calendar = icalendar.Calendar.from_ical(got.content)
    assert _text_property(got.content, b"X-WR-CALNAME") == "END:VCALENDAR;x,y\\z"
    components = calendar.walk("VEVENT" if kind == "events" else "VTODO")
    assert calendar.walk("VEVENT" if kind == "todos" else "VTODO") == []
    found = {
        str(c["SUMMARY"]): (
            str(c["DESCRIPTION"]).replace("\r\n", "\n"),
            sorted(str(tag) for tag in c["CATEGORIES"].cats),
        )
        for c in components
    }
    assert len(components) == len(expected)
    normalized = {t: ((d or "").replace("\r\n", "\n"), tags) for t, (d, tags) in expected.items()}
    assert found == normalized


# Every backslash sequence RFC 5545 gives a meaning (\N \n \\ \, \;), alone and in runs, and
# a backslash before a character it gives none, at the start, middle and end (issue 61: a
# literal `\N` came out as a line break, `icalendar` turning it into one before escaping).
BACKSLASHED = (
    "C:\\New folder\\notes",
    "\\N",
    "\\n",
    "\\\\",
    "\\,",
    "\\;",
    "\\\\N",
    "\\\\\\N",
    "\\N\\n\\\\\\,\\;",
    "a\\",
    '\\x \\t \\r \\" \\:',
    "\\\\n\\;\\\\,",
)


def _text_property(calendar_body: bytes, name: bytes) -> str:
    """A property's value read as TEXT by icalendar's own content-line parser (a property
    icalendar does not know, `X-WR-CALNAME`, is otherwise read verbatim)."""
    unfolded = calendar_body.replace(b"\r\n ", b"")
    [line] = [raw for raw in unfolded.split(b"\r\n") if raw.startswith(name + b":")]
    return str(icalendar.parser.Contentline(line.decode()).parts()[2])


@pytest.mark.parametrize("kind", ["events", "todos"])
def test_every_backslash_sequence_round_trips(
    client: TestClient, alice: Account, kind: str
) -> None:
    name = "\\N list\\n\\\\,;"
    lists = client.post("/api/lists", json={"name": name}, headers=alice.headers)
    assert lists.status_code == 201, lists.text
    list_id = lists.json()["data"]["id"]
    expected: dict[str, tuple[str, list[str]]] = {}
    for index, text in enumerate(BACKSLASHED):
        title = f"{index}: {text}"
        description = f"{text}\nsecond line {text}"
        tags = sorted({text[:32], f"t{index}\\N"})
        made = client.post(
            "/api/tasks",
            json={
                "title": title,
                "description": description,
                "tags": tags,
                "due_date": _due(index + 1),
                "list_id": list_id,
                "reminders": [{"minutes_before_due": 10}],
            },
            headers=alice.headers,
        )
        assert made.status_code == 201, made.text
        stored = made.json()["data"]
        assert (stored["title"], stored["description"]) == (title, description)
        expected[title] = (description, sorted(stored["tags"]))
    feed = make_feed(client, alice, scope="list", list_id=list_id, kind=kind)
    got = client.get(path_of(feed))
    assert got.status_code == 200, got.text
    assert _text_property(got.content, b"X-WR-CALNAME") == name
    calendar = icalendar.Calendar.from_ical(got.content)
    components = calendar.walk("VEVENT" if kind == "events" else "VTODO")
    found = {
        str(c["SUMMARY"]): (
            str(c["DESCRIPTION"]),
            sorted(str(tag) for tag in c["CATEGORIES"].cats),
        )
        for c in components
    }
    assert found == expected
    # A reminder's text is its task's title.
    for component in components:
        [alarm] = component.walk("VALARM")
        assert str(alarm["DESCRIPTION"]) == str(component["SUMMARY"])
