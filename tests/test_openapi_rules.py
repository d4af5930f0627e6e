"""The OpenAPI document states the rules the API enforces (issue 13, item 7).

For each rule a schema can express, a table of values is judged twice: by the committed
`specs/openapi.json` (jsonschema-rs with format assertions and the fancy-regex engine, as
schemathesis judges it) and by the API. They must agree, so a schema-driven client or fuzzer
never sees a schema-valid value refused, nor a schema-invalid one accepted. The one rule no
pattern can hold (a datetime on the range's first or last day that leaves it once in UTC) is
listed apart and must be in the field's description.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode

import jsonschema_rs
import pytest
from fastapi.testclient import TestClient

from tests.conftest import Account

SPEC = json.loads((Path(__file__).resolve().parent.parent / "specs" / "openapi.json").read_text())
SCHEMAS = SPEC["components"]["schemas"]


def schema_accepts(schema: dict[str, Any], value: Any) -> bool:
    validator = jsonschema_rs.Draft202012Validator(
        schema, validate_formats=True, pattern_options=jsonschema_rs.FancyRegexOptions()
    )
    return bool(validator.is_valid(value))


def _non_null(schema: dict[str, Any]) -> dict[str, Any]:
    branches = [b for b in schema.get("anyOf", []) if b.get("type") != "null"]
    return {"anyOf": branches} if branches else schema


TEXTS = ["a", " a ", " ", "\t\n\r ", "\u3000\u00a0", "\u2028", "\ufeff", "\x1c", "x" * 5]
# The text rule (backend/models/text.py) on title and tags: look-alike and invisible text.
TEXTS += ["\u200b", "\u2060\u200d", "\u3164", "a\x07", "a\nb", " a\n", "a\u2028b", "a\u202eb"]
TEXTS += ["a\u2066", "a\ufffe", "\ufdd0", "a\U0001ffff", "e\u0301", "a\u200fb", "\u200f"]
# Lengths count what is sent, surrounding whitespace included (issue 30): over a limit as sent,
# within it once trimmed.
TEXTS += [" " + "a" * 32, "\u0085" * 3 + "a" * 30, " " * 5 + "a" * 200, "\u0085" * 100 + "abc"]
# Descriptions: whether each is accepted, so the table also pins the rule itself.
DESCRIPTIONS = {"": True, " ": True, "a\tb\r\n": True, "\u200b": True, "e\u0301": True}
DESCRIPTIONS |= dict.fromkeys(["a\x07", "a\x0b", "a\x85", "a\u202e", "a\U0010fffe"], False)

DUE_DATES = [
    "2026-12-01",
    "2026-12-01T17:00:00+01:00",
    "1900-01-01",
    "1900-01-01T00:00:00Z",
    "9998-12-31",
    "9998-12-31T23:59:59Z",
    "1899-12-31",
    "1899-12-31T23:30:00-01:00",  # 1900 in UTC, 1899 as written: refused
    "9999-01-01",
    "0042-06-01T00:00:00Z",
    "0001-01-01",
]
# Schema-valid (the year as written is in range) and refused (not in UTC): description only.
DUE_DATES_UTC_EDGE = ["1900-01-01T00:30:00+01:00", "9998-12-31T23:30:00-01:00"]

EMAILS = [
    "ada@example.com",
    "a.b+tag@sub.example.org",
    "o'brien@example.io",
    "ada@b\u00fccher.example",
    "j\u00f6rg@example.com",
    "ada@example.test",
    "ada@sub.EXAMPLE.TEST",
    "ada@mail.local",
    "ada@localhost",
    "ada@host.invalid",
    "ada@abc.onion",
    "ada@in-addr.arpa",
    "ada@mytest.com",
    '"ada lovelace"@example.com',
    "ada@[127.0.0.1]",
    "ada@example",
    "ada@example.c0m1",
    "ada@example.com.",
]


def _api_accepts_title(client: TestClient, alice: Account, title: str) -> bool:
    response = client.post("/api/tasks", json={"title": title}, headers=alice.headers)
    assert response.status_code in (201, 422), response.text
    return response.status_code == 201


@pytest.mark.parametrize("value", TEXTS)
def test_title_rule(client: TestClient, alice: Account, value: str) -> None:
    schema = SCHEMAS["TaskCreate"]["properties"]["title"]
    assert schema_accepts(schema, value) == _api_accepts_title(client, alice, value), repr(value)


@pytest.mark.parametrize("value", TEXTS)
def test_tag_rule(client: TestClient, alice: Account, value: str) -> None:
    schema = SCHEMAS["TaskCreate"]["properties"]["tags"]["items"]
    response = client.post(
        "/api/tasks", json={"title": "t", "tags": [value]}, headers=alice.headers
    )
    assert response.status_code in (201, 422), response.text
    assert schema_accepts(schema, value) == (response.status_code == 201), repr(value)


@pytest.mark.parametrize(("value", "accepted"), DESCRIPTIONS.items())
def test_description_rule(client: TestClient, alice: Account, value: str, accepted: bool) -> None:
    schema = _non_null(SCHEMAS["TaskCreate"]["properties"]["description"])
    response = client.post(
        "/api/tasks", json={"title": "t", "description": value}, headers=alice.headers
    )
    assert response.status_code in (201, 422), response.text
    assert schema_accepts(schema, value) == (response.status_code == 201) == accepted, repr(value)


# Comments: multi-line, trimmed, and they must say something visible.
# Surrounding whitespace is trimmed first, whatever it is (`\x0b`, `\x85` too).
COMMENT_BODIES = {"a\tb\r\n": True, " a\n\nb ": True, "e\u0301": True, "a\u200fb": True}
COMMENT_BODIES |= {"a\x0b": True, "\x85a\u3000": True}
COMMENT_BODIES |= dict.fromkeys(["", " ", "\t\n\r ", "\u200b", "\u2060\u200d\n"], False)
COMMENT_BODIES |= dict.fromkeys(["a\x07", "a\x0bb", "a\x85b", "a\u202e", "a\U0010fffe"], False)


@pytest.mark.parametrize(("value", "accepted"), COMMENT_BODIES.items())
def test_comment_body_rule(client: TestClient, alice: Account, value: str, accepted: bool) -> None:
    schema = SCHEMAS["CommentCreate"]["properties"]["body"]
    task = client.post("/api/tasks", json={"title": "t"}, headers=alice.headers).json()["data"]
    response = client.post(
        f"/api/tasks/{task['id']}/comments", json={"body": value}, headers=alice.headers
    )
    assert response.status_code in (201, 422), response.text
    assert schema_accepts(schema, value) == (response.status_code == 201) == accepted, repr(value)


@pytest.mark.parametrize("value", TEXTS)
def test_name_rule(client: TestClient, value: str) -> None:
    schema = _non_null(SCHEMAS["UserRegister"]["properties"]["name"])
    email = f"n-{uuid.uuid4().hex[:10]}@example.com"
    response = client.post(
        "/api/auth/register", json={"email": email, "password": "password-123", "name": value}
    )
    assert response.status_code in (201, 422), response.text
    assert schema_accepts(schema, value) == (response.status_code == 201), repr(value)


@pytest.mark.parametrize("value", DUE_DATES)
def test_due_date_rule(client: TestClient, alice: Account, value: str) -> None:
    schema = _non_null(SCHEMAS["TaskCreate"]["properties"]["due_date"])
    body = {"title": "due", "due_date": value}
    response = client.post("/api/tasks", json=body, headers=alice.headers)
    assert response.status_code in (201, 422), response.text
    assert schema_accepts(schema, value) == (response.status_code == 201), value
    listed = client.get("/api/tasks", params={"due_before": value}, headers=alice.headers)
    assert (listed.status_code == 200) == (response.status_code == 201), value


@pytest.mark.parametrize("value", DUE_DATES_UTC_EDGE)
def test_due_date_utc_edge_is_documented(client: TestClient, alice: Account, value: str) -> None:
    prop = SCHEMAS["TaskCreate"]["properties"]["due_date"]
    assert schema_accepts(_non_null(prop), value)
    response = client.post(
        "/api/tasks", json={"title": "d", "due_date": value}, headers=alice.headers
    )
    assert response.status_code == 422
    assert "in UTC" in prop["description"]


@pytest.mark.parametrize("value", EMAILS)
def test_email_rule(client: TestClient, value: str) -> None:
    schema = SCHEMAS["UserRegister"]["properties"]["email"]
    response = client.post("/api/auth/register", json={"email": value, "password": "password-123"})
    assert response.status_code in (201, 422), response.text
    assert schema_accepts(schema, value) == (response.status_code == 201), value


TIME_ZONES = ["UTC", "Europe/Berlin", "US/Eastern", "Etc/GMT+5", "europe/berlin", "Mars/Base"]
TIME_ZONES += ["", "localtime", "posixrules", "Europe/Berlin ", "Europe/../Berlin"]


@pytest.mark.parametrize("value", TIME_ZONES)
def test_time_zone_rule(client: TestClient, alice: Account, value: str) -> None:
    # The enum lists the tzdata package's zone names: the names the API accepts, no more.
    schema = SCHEMAS["TimeZone"]
    response = client.post(
        "/api/tasks", json={"title": "t", "time_zone": value}, headers=alice.headers
    )
    assert response.status_code in (201, 422), response.text
    assert schema_accepts(schema, value) == (response.status_code == 201), repr(value)


@pytest.mark.parametrize("minutes", [-1, 0, 1, 40320, 40321, 10**9])
def test_minutes_before_due_rule(client: TestClient, alice: Account, minutes: int) -> None:
    schema = SCHEMAS["MinutesBeforeDue"]
    reminder = {"minutes_before_due": minutes}
    body = {"title": "t", "due_date": "2030-01-01", "reminders": [reminder]}
    response = client.post("/api/tasks", json=body, headers=alice.headers)
    assert response.status_code in (201, 422), response.text
    assert schema_accepts(schema, reminder) == (response.status_code == 201), minutes


@pytest.mark.parametrize("value", DUE_DATES)
def test_reminder_at_rule(client: TestClient, alice: Account, value: str) -> None:
    schema = SCHEMAS["ReminderAt"]
    reminder = {"at": value}
    body = {"title": "t", "reminders": [reminder]}
    response = client.post("/api/tasks", json=body, headers=alice.headers)
    assert response.status_code in (201, 422), response.text
    assert schema_accepts(schema, reminder) == (response.status_code == 201), value


RULES = ["daily", "FREQ=DAILY", "RRULE:FREQ=DAILY", "freq=weekly;byday=mo", "FREQ=DAILY "]
RULES += ["FREQ=DAILY\nCOUNT=2", "", "F" * 501, "FREQ=DAILY;BYDAY=MO\u00e9", "FREQ=DAILY\u0000"]


@pytest.mark.parametrize("value", RULES)
def test_recurrence_rule(client: TestClient, alice: Account, value: str) -> None:
    """What the schema refuses, the API refuses; what it allows may still be refused (a rule
    that never occurs, or fires more often than hourly): the description says so."""
    prop = SCHEMAS["TaskCreate"]["properties"]["recurrence"]
    body = {"title": "t", "due_date": "2030-01-01", "recurrence": value}
    response = client.post("/api/tasks", json=body, headers=alice.headers)
    assert response.status_code in (201, 422), response.text
    if not schema_accepts(_non_null(prop), value):
        assert response.status_code == 422, repr(value)
    assert "more often than hourly" in prop["description"]
    assert "no occurrence" in prop["description"]


# The OAuth2 password form, as sent on the wire (issue 25, item 4: `password=` was a 422
# "Field required" for a field that was sent, though the schema allowed the empty string).
TOKEN_FORMS = [
    "username=ada%40example.com&password=",
    "username=ada%40example.com&password=&grant_type=password",
    "username=ada%40example.com",
    "username=&password=not-her-password",
    "password=not-her-password",
    "",
    "username=ada%40example.com&password=not-her-password&grant_type=",
    "username=ada%40example.com&password=not-her-password&grant_type=client_credentials",
    "username=ada%40example.com&password=not-her-password&scope=&client_id=",
]


@pytest.mark.parametrize("form", TOKEN_FORMS)
def test_token_form_rule(client: TestClient, alice: Account, form: str) -> None:
    """A form the schema accepts is judged as credentials (401 here: never hers), one it
    refuses is a 422; `ada@example.com` is alice's address, so her account exists."""
    fields = dict(parse_qsl(form.replace("ada%40example.com", quote(alice.email)), True))
    response = client.post(
        "/api/auth/token",
        content=urlencode(fields),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code in (401, 422), response.text
    assert "error" in response.json(), response.text
    assert schema_accepts(SCHEMAS["TokenRequest"], fields) == (response.status_code == 401), form
