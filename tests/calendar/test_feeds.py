"""Calendar feeds (issue 52): managing them, and what a fetch answers (specs/api-contract.md,
"Calendar feeds")."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import icalendar
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from backend.api.responses import EXAMPLES
from backend.config import Settings
from backend.main import create_app
from backend.models.calendar_feed import FEEDS_PER_USER
from backend.services.calendar import calendar_ics
from backend.services.statements.tokens import token_hash
from tests.conftest import Account, count_rows
from tests.sharing.conftest import SharedList


def _due(days: float) -> str:
    return (datetime.now(UTC) + timedelta(days=days)).replace(microsecond=0).isoformat()


def make_feed(client: TestClient, account: Account, **body: object) -> dict:
    made = client.post("/api/calendar-feeds", json=body, headers=account.headers)
    assert made.status_code == 201, made.text
    return made.json()["data"]


def path_of(feed: dict) -> str:
    return "/api/calendar/" + feed["url"].rsplit("/", 1)[1]


def parsed(client: TestClient, feed: dict) -> icalendar.Calendar:
    got = client.get(path_of(feed))
    assert got.status_code == 200, got.text
    assert got.headers["content-type"] == "text/calendar; charset=utf-8"
    return icalendar.Calendar.from_ical(got.content)


def summaries(calendar: icalendar.Calendar, name: str = "VEVENT") -> list[str]:
    return sorted(str(c["SUMMARY"]) for c in calendar.walk(name))


def test_a_feed_shows_the_tasks_with_a_due_date_in_the_window(
    client: TestClient, alice: Account
) -> None:
    for title, days in (("soon", 1), ("last month", -30), ("long ago", -90), ("in 2 years", 800)):
        client.post(
            "/api/tasks", json={"title": title, "due_date": _due(days)}, headers=alice.headers
        )
    client.post("/api/tasks", json={"title": "no date"}, headers=alice.headers)
    feed = make_feed(client, alice)
    assert feed["kind"] == "events" and feed["scope"] == "all" and feed["list_id"] is None
    assert summaries(parsed(client, feed)) == ["last month", "soon"]


def test_the_token_is_stored_hashed_and_listed_never(
    client: TestClient, alice: Account, db_engine: Engine
) -> None:
    feed = make_feed(client, alice)
    token = path_of(feed).removeprefix("/api/calendar/").removesuffix(".ics")
    assert len(token) == 43
    with db_engine.connect() as conn:
        stored = conn.execute(text("SELECT token_hash FROM calendar_feeds")).scalar_one()
    assert stored == token_hash(token) and token not in stored
    listed = client.get("/api/calendar-feeds", headers=alice.headers)
    assert listed.status_code == 200
    assert token not in listed.text and "url" not in listed.json()["data"][0]


def test_304_when_nothing_changed_and_200_after_a_change(
    client: TestClient, alice: Account
) -> None:
    made = client.post(
        "/api/tasks", json={"title": "a", "due_date": _due(2)}, headers=alice.headers
    )
    feed = make_feed(client, alice)
    first = client.get(path_of(feed))
    tag = first.headers["ETag"]
    assert first.headers["Last-Modified"].endswith("GMT")
    again = client.get(path_of(feed), headers={"If-None-Match": tag})
    assert again.status_code == 304 and again.content == b"" and again.headers["ETag"] == tag
    client.patch(
        f"/api/tasks/{made.json()['data']['id']}", json={"title": "b"}, headers=alice.headers
    )
    changed = client.get(path_of(feed), headers={"If-None-Match": tag})
    assert changed.status_code == 200 and changed.headers["ETag"] != tag
    assert summaries(icalendar.Calendar.from_ical(changed.content)) == ["b"]


def test_the_etag_follows_the_bodys_format(
    client: TestClient, alice: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same tasks rendered by another `body()` are another body (review F4: issue 61's
    escaping fix changed the body, not the ETag, and a client holding it kept the broken
    rendering): a new `BODY_FORMAT` is a new ETag, a 200 to the old one's If-None-Match."""
    client.post("/api/tasks", json={"title": "C:\\New", "due_date": _due(2)}, headers=alice.headers)
    feed = make_feed(client, alice)
    tag = client.get(path_of(feed)).headers["ETag"]
    assert client.get(path_of(feed), headers={"If-None-Match": tag}).status_code == 304
    # raising=False: the constant is what this checks, present or not.
    format_now = getattr(calendar_ics, "BODY_FORMAT", 0)
    monkeypatch.setattr(calendar_ics, "BODY_FORMAT", format_now + 1, raising=False)
    bumped = client.get(path_of(feed), headers={"If-None-Match": tag})
    assert bumped.status_code == 200 and bumped.headers["ETag"] != tag


def _not_found(client: TestClient, path: str) -> tuple[int, str, bytes]:
    got = client.get(path)
    return got.status_code, got.headers["content-type"], got.content


def test_every_bad_token_is_the_same_404_byte_for_byte(
    client: TestClient,
    alice: Account,
    bob: Account,
    shared_list: SharedList,
    grant: Callable[[SharedList, Account, str | None], None],
) -> None:
    """Unknown, malformed (length, alphabet), revoked, rotated, and a list feed whose creator
    lost the list: one answer, which says nothing of why."""
    grant(shared_list, bob, "viewer")
    revoked, rotated = make_feed(client, alice), make_feed(client, alice)
    lost = make_feed(client, bob, scope="list", list_id=shared_list.list_id)
    assert client.get(path_of(lost)).status_code == 200
    assert (
        client.delete(f"/api/calendar-feeds/{revoked['id']}", headers=alice.headers).status_code
        == 204
    )
    new = client.post(f"/api/calendar-feeds/{rotated['id']}/rotate", headers=alice.headers)
    assert new.status_code == 200 and new.json()["data"]["url"] != rotated["url"]
    assert client.get(path_of(new.json()["data"])).status_code == 200
    grant(shared_list, bob, None)
    unknown = "A" * 43
    paths = [
        f"/api/calendar/{unknown}.ics",
        path_of(revoked),
        path_of(rotated),
        path_of(lost),
        f"/api/calendar/{'A' * 42}.ics",  # too short
        f"/api/calendar/{'A' * 44}.ics",  # too long
        f"/api/calendar/{'A' * 42}%21.ics",  # `!`: not in the alphabet
        f"/api/calendar/{'A' * 42}=.ics",
        f"/api/calendar/{'A' * 41}%C3%A9.ics",  # é
        "/api/calendar/%20.ics",
    ]
    answers = {path: _not_found(client, path) for path in paths}
    expected = (404, "application/json", answers[paths[0]][2])
    assert {path: answer for path, answer in answers.items() if answer != expected} == {}
    assert b'"NOT_FOUND"' in expected[2] and b"Calendar feed not found" in expected[2]


def test_a_path_without_ics_is_a_clear_404(client: TestClient, alice: Account) -> None:
    feed = make_feed(client, alice)
    bare = path_of(feed).removesuffix(".ics")
    got = client.get(bare)
    assert got.status_code == 404
    assert got.json()["error"]["message"] == "A calendar feed's address ends in .ics"


def test_a_list_feed_shows_that_list_and_follows_its_creators_access(
    client: TestClient,
    alice: Account,
    bob: Account,
    shared_list: SharedList,
    grant: Callable[[SharedList, Account, str | None], None],
) -> None:
    client.patch(
        f"/api/tasks/{shared_list.task_id}", json={"due_date": _due(3)}, headers=alice.headers
    )
    client.post("/api/tasks", json={"title": "bob's own", "due_date": _due(1)}, headers=bob.headers)
    grant(shared_list, bob, "viewer")
    everything = make_feed(client, bob)
    team = make_feed(client, bob, scope="list", list_id=shared_list.list_id, kind="todos")
    assert summaries(parsed(client, everything)) == ["Shared task", "bob's own"]
    calendar = parsed(client, team)
    assert summaries(calendar, "VTODO") == ["Shared task"]
    assert str(calendar["X-WR-CALNAME"]) == "Team"
    grant(shared_list, bob, None)
    # Gone from the `all` feed at once; the list's own feed is the unknown token's 404.
    assert summaries(parsed(client, everything)) == ["bob's own"]
    assert client.get(path_of(team)).status_code == 404


def test_a_list_feed_needs_a_list_the_caller_can_read(
    client: TestClient, alice: Account, bob: Account, db_engine: Engine
) -> None:
    mine = client.post("/api/lists", json={"name": "Mine"}, headers=alice.headers).json()["data"]
    refused = client.post(
        "/api/calendar-feeds", json={"scope": "list", "list_id": mine["id"]}, headers=bob.headers
    )
    assert refused.status_code == 404
    assert refused.json()["error"]["message"] == "List not found"
    assert count_rows(db_engine, "calendar_feeds") == 0


def test_a_body_that_does_not_hold_together_is_422(client: TestClient, alice: Account) -> None:
    for body in (
        {"scope": "list"},
        {"scope": "all", "list_id": 3},
        {"kind": "vjournal"},
        {"scope": "filter"},
        {"list_id": "3", "scope": "list"},
        {"token": "mine"},
    ):
        got = client.post("/api/calendar-feeds", json=body, headers=alice.headers)
        assert got.status_code == 422, (body, got.text)
        assert got.json()["error"]["code"] == "VALIDATION_ERROR"
    assert client.get("/api/calendar-feeds", headers=alice.headers).json()["data"] == []


def test_too_many_feeds(client: TestClient, alice: Account, setup_engine: Engine) -> None:
    with setup_engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO calendar_feeds (user_id, token_hash) "
                "SELECT :user, md5(n::text) FROM generate_series(1, :n) n"
            ),
            {"user": alice.id, "n": FEEDS_PER_USER},
        )
    got = client.post("/api/calendar-feeds", json={}, headers=alice.headers)
    example = EXAMPLES["calendar_feeds_full"]
    assert (got.status_code, got.json()["error"]["code"], got.json()["error"]["message"]) == (
        example.status,
        example.code,
        example.message,
    )
    assert count_rows(setup_engine, "calendar_feeds") == FEEDS_PER_USER


def test_another_users_feed_cannot_be_rotated_or_revoked(
    client: TestClient, alice: Account, bob: Account
) -> None:
    feed = make_feed(client, alice)
    for answer in (
        client.post(f"/api/calendar-feeds/{feed['id']}/rotate", headers=bob.headers),
        client.delete(f"/api/calendar-feeds/{feed['id']}", headers=bob.headers),
    ):
        assert answer.status_code == 404
        assert answer.json()["error"]["message"] == "Calendar feed not found"
    assert client.get(path_of(feed)).status_code == 200
    assert client.get("/api/calendar-feeds", headers=bob.headers).json()["data"] == []


def test_each_token_has_its_own_rate_limit(settings: Settings, alice: Account) -> None:
    limited = settings.model_copy(
        update={"rate_limit_enabled": True, "rate_limit_calendar_feed_per_hour": 2}
    )
    with TestClient(create_app(limited), raise_server_exceptions=False) as client:
        feed, other = make_feed(client, alice), make_feed(client, alice)
        answers = [client.get(path_of(feed)) for _ in range(3)]
        assert [a.status_code for a in answers] == [200, 200, 429]
        assert answers[0].headers["RateLimit"].startswith('"calendar-feed";r=1;')
        refused = answers[2]
        assert refused.json()["error"]["code"] == "RATE_LIMITED"
        assert int(refused.headers["Retry-After"]) > 0
        assert client.get(path_of(other)).status_code == 200  # another token, its own count


# Headers that differ between any two answers, whatever they say (the request's own id).
_PER_REQUEST = {"x-request-id", "date"}


def _whole_404(client: TestClient, path: str) -> tuple[int, dict[str, str], bytes]:
    got = client.get(path)
    kept = {k: v for k, v in got.headers.items() if k.lower() not in _PER_REQUEST}
    return got.status_code, kept, got.content


def test_every_feed_404_is_one_answer_headers_and_rate_limit_included(
    settings: Settings,
    alice: Account,
    bob: Account,
    shared_list: SharedList,
    grant: Callable[[SharedList, Account, str | None], None],
) -> None:
    """With rate limits on (issue 61, item 3): a token that was once live (revoked, rotated,
    a list feed whose creator lost the list) and fetched before, an unknown one and a
    malformed one all get the same 404, headers included: no count tells a dead token from
    one that never existed, however often either was fetched."""
    limited = settings.model_copy(
        update={"rate_limit_enabled": True, "rate_limit_calendar_feed_per_hour": 120}
    )
    with TestClient(create_app(limited), raise_server_exceptions=False) as client:
        grant(shared_list, bob, "viewer")
        revoked, rotated = make_feed(client, alice), make_feed(client, alice)
        lost = make_feed(client, bob, scope="list", list_id=shared_list.list_id)
        for feed in (revoked, rotated, lost):
            for _ in range(3):
                assert client.get(path_of(feed)).status_code == 200
        client.delete(f"/api/calendar-feeds/{revoked['id']}", headers=alice.headers)
        client.post(f"/api/calendar-feeds/{rotated['id']}/rotate", headers=alice.headers)
        grant(shared_list, bob, None)
        paths = [
            f"/api/calendar/{'A' * 43}.ics",  # never valid
            path_of(revoked),
            path_of(rotated),
            path_of(lost),
            f"/api/calendar/{'A' * 42}.ics",  # malformed: too short
            f"/api/calendar/{'A' * 42}%21.ics",  # malformed: `!`
        ]
        # Each fetched twice: a second fetch of one is the answer a first of another got.
        answers = [_whole_404(client, path) for _ in range(2) for path in paths]
    first = answers[0]
    assert first[0] == 404 and b"Calendar feed not found" in first[2]
    differing = {
        paths[index % len(paths)]: sorted(set(answer[1].items()) ^ set(first[1].items()))
        for index, answer in enumerate(answers)
        if answer != first
    }
    assert differing == {}


def test_a_lost_lists_feed_is_the_unknown_tokens_404_past_the_limit(
    settings: Settings,
    alice: Account,
    bob: Account,
    shared_list: SharedList,
    grant: Callable[[SharedList, Account, str | None], None],
) -> None:
    """Review F3: a `list` feed whose creator lost the list reads nothing (404) and so counts
    nothing: fetched past the per-token limit it is still the unknown token's 404, headers
    included, never a 429 that an unknown token never gets."""
    limited = settings.model_copy(
        update={"rate_limit_enabled": True, "rate_limit_calendar_feed_per_hour": 2}
    )
    with TestClient(create_app(limited), raise_server_exceptions=False) as client:
        grant(shared_list, bob, "viewer")
        lost = make_feed(client, bob, scope="list", list_id=shared_list.list_id)
        grant(shared_list, bob, None)
        unknown = f"/api/calendar/{'A' * 43}.ics"
        answers = [_whole_404(client, path) for _ in range(4) for path in (path_of(lost), unknown)]
    assert answers[0][0] == 404
    assert [answer for answer in answers if answer != answers[0]] == []


def test_sign_out_everywhere_ends_every_feed(
    client: TestClient, alice: Account, bob: Account
) -> None:
    """`POST /api/auth/logout-all` (issue 61, item 4): every credential the API issued for the
    account stops working, its feeds' URLs too (revoked: the unknown token's 404, and gone
    from its list); another account's feed is untouched."""
    client.post("/api/tasks", json={"title": "due", "due_date": _due(1)}, headers=alice.headers)
    feeds = [make_feed(client, alice), make_feed(client, alice, kind="todos")]
    kept = make_feed(client, bob)
    for feed in (*feeds, kept):
        assert client.get(path_of(feed)).status_code == 200
    unknown = _not_found(client, f"/api/calendar/{'A' * 43}.ics")
    assert client.post("/api/auth/logout-all", headers=alice.headers).status_code == 204
    assert [_not_found(client, path_of(feed)) for feed in feeds] == [unknown, unknown]
    assert client.get(path_of(kept)).status_code == 200
    signed_in = client.post(
        "/api/auth/login", json={"email": alice.email, "password": alice.password}
    )
    fresh = {"Authorization": f"Bearer {signed_in.json()['data']['access_token']}"}
    assert client.get("/api/calendar-feeds", headers=fresh).json()["data"] == []


def test_a_day_is_an_all_day_item_in_either_kind_of_feed(
    client: TestClient, alice: Account
) -> None:
    """A task due on a day (a plain `due_date`): an events feed's all-day VEVENT (`DTSTART;
    VALUE=DATE`, `DTEND` the next day), a todos feed's `DUE;VALUE=DATE` (with `DTSTART;
    VALUE=DATE` on a series); an instant stays a time in both."""
    day = (datetime.now(UTC) + timedelta(days=3)).date()
    for title, fields in (
        ("day", {"due_date": day.isoformat(), "time_zone": "Pacific/Auckland"}),
        ("daily", {"due_date": day.isoformat(), "recurrence": "FREQ=DAILY;COUNT=3"}),
        ("instant", {"due_date": _due(3), "time_zone": "Europe/Berlin"}),
    ):
        made = client.post("/api/tasks", json={"title": title, **fields}, headers=alice.headers)
        assert made.status_code == 201, made.text
    events = {str(c["SUMMARY"]): c for c in parsed(client, make_feed(client, alice)).walk("VEVENT")}
    assert (events["day"]["DTSTART"].dt, events["day"]["DTEND"].dt) == (
        day,
        day + timedelta(days=1),
    )
    assert events["daily"]["DTSTART"].dt == day
    assert isinstance(events["instant"]["DTSTART"].dt, datetime)
    assert "DTEND" not in events["instant"]
    todos = parsed(client, make_feed(client, alice, kind="todos")).walk("VTODO")
    by_title = {str(c["SUMMARY"]): c for c in todos}
    assert by_title["day"]["DUE"].dt == day and "DTSTART" not in by_title["day"]
    assert by_title["daily"]["DUE"].dt == day and by_title["daily"]["DTSTART"].dt == day
    # Its COUNT as the DATE of its last day (RFC 5545 3.8.5.3: UNTIL has DTSTART's type).
    rule = by_title["daily"]["RRULE"].to_ical().decode()
    assert f"UNTIL={day + timedelta(days=2):%Y%m%d}" in rule.split(";")
    assert isinstance(by_title["instant"]["DUE"].dt, datetime)
