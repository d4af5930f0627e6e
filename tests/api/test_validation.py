"""Bad input is a 4xx with the error envelope, and nothing is written."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from tests.conftest import Account, count_rows

BAD_CREATE_BODIES = {
    "empty title": {"title": ""},
    "whitespace title": {"title": "   \t\n "},
    "201-char title": {"title": "x" * 201},
    "NUL in title": {"title": "a\u0000b"},
    "NUL in description": {"title": "ok", "description": "a\u0000b"},
    "lone surrogate in title": b'{"title": "a\\ud800b"}',
    "lone surrogate in description": b'{"title": "ok", "description": "\\udfff"}',
    "huge number as title": b'{"title": 1e400}',
    "2001-char description": {"title": "ok", "description": "d" * 2001},
    "title wrong type": {"title": 123},
    "title is list": {"title": ["a"]},
    "title null": {"title": None},
    "missing title": {"description": "no title"},
    "completed as string": {"title": "ok", "completed": "true"},
    "completed as int": {"title": "ok", "completed": 1},
    "unknown field": {"title": "ok", "priority_level": 3},
    "body is a list": [{"title": "ok"}],
    "body is a string": "title",
}


@pytest.mark.parametrize("label", list(BAD_CREATE_BODIES))
def test_bad_create_body_is_422_and_writes_nothing(
    client: TestClient, alice: Account, db_engine: Engine, label: str
) -> None:
    body = BAD_CREATE_BODIES[label]
    if isinstance(body, bytes):  # raw JSON a client library would refuse to produce
        headers = {**alice.headers, "Content-Type": "application/json"}
        response = client.post("/api/tasks", content=body, headers=headers)
    else:
        response = client.post("/api/tasks", json=body, headers=alice.headers)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "VALIDATION_ERROR"
    assert error["details"] and all("message" in d for d in error["details"])
    assert count_rows(db_engine, "tasks") == 0


def test_200_char_title_is_accepted(client: TestClient, alice: Account) -> None:
    response = client.post("/api/tasks", json={"title": "x" * 200}, headers=alice.headers)
    assert response.status_code == 201


def test_emoji_and_non_latin_text_round_trip(client: TestClient, alice: Account) -> None:
    title = "Купить 牛奶 🥛"
    response = client.post("/api/tasks", json={"title": title}, headers=alice.headers)
    assert response.json()["data"]["title"] == title


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (b'{"title": "unterminated', "application/json"),
        (b'{"title": "raw \x00 nul"}', "application/json"),
        (b"\xff\xfe not utf-8", "application/json"),
        (b"title=form", "application/x-www-form-urlencoded"),
        (b'{"title": "no content type"}', ""),
        (b'{"title": ' + b"[" * 5000 + b"]" * 5000 + b"}", "application/json"),
    ],
)
def test_malformed_bodies_are_4xx(
    client: TestClient, alice: Account, db_engine: Engine, content: bytes, content_type: str
) -> None:
    headers = {**alice.headers}
    if content_type:
        headers["Content-Type"] = content_type
    response = client.post("/api/tasks", content=content, headers=headers)
    assert 400 <= response.status_code < 500, response.text
    assert "error" in response.json()
    assert count_rows(db_engine, "tasks") == 0


@pytest.mark.parametrize(
    "body",
    [
        {"title": ""},
        {"title": "x" * 201},
        {"description": "a\u0000"},
        {"completed": "no"},
        {"bogus": 1},
    ],
)
def test_bad_update_bodies_change_nothing(client: TestClient, alice: Account, body: dict) -> None:
    task = client.post(
        "/api/tasks", json={"title": "keep", "description": "d"}, headers=alice.headers
    ).json()["data"]
    for method in ("PUT", "PATCH"):
        full = {"title": "t", **body} if method == "PUT" and "title" not in body else body
        response = client.request(
            method, f"/api/tasks/{task['id']}", json=full, headers=alice.headers
        )
        assert response.status_code == 422, (method, response.text)
    assert client.get(f"/api/tasks/{task['id']}", headers=alice.headers).json()["data"] == task


@pytest.mark.parametrize(
    "task_id",
    [
        "0",
        "-1",
        "abc",
        "1.5",
        "9007199254740992",
        "9223372036854775808",
        "99999999999999999999999",
        "1e3",
    ],
)
def test_non_integer_or_out_of_range_ids_are_422(
    client: TestClient, alice: Account, task_id: str
) -> None:
    for method in ("GET", "PATCH", "DELETE"):
        response = client.request(method, f"/api/tasks/{task_id}", headers=alice.headers)
        assert response.status_code == 422, (method, task_id)
        assert response.json()["error"]["details"][0]["field"] == "path.task_id"


def test_largest_valid_id_is_a_plain_404(client: TestClient, alice: Account) -> None:
    response = client.get("/api/tasks/9007199254740991", headers=alice.headers)
    assert response.status_code == 404


@pytest.mark.parametrize(
    "query",
    [
        "limit=0",
        "limit=-1",
        "limit=501",
        "limit=9223372036854775808",
        "limit=abc",
        "status=done",
        "sort=urgency",
        "order=sideways",
        "limit=1%00",
        "priority=urgent",
        "due_before=2026-13-01",
        "due_after=2026-01-01T10:00:00",
        "due_after=0001-01-01T00:00:00%2B14:00",
        "overdue=maybe",
        "updated_since=yesterday",
        "include_total=2",
        "cursor=abc",
        "cursor=" + "a" * 3000,
        "q=a%00b",
        "q=" + "x" * 201,
        "tag=" + "t" * 33,
        "&".join(f"tag=t{i}" for i in range(11)),
    ],
)
def test_bad_list_parameters_are_422(client: TestClient, alice: Account, query: str) -> None:
    response = client.get(f"/api/tasks?{query}", headers=alice.headers)
    assert response.status_code == 422, query
    assert response.json()["error"]["code"] == "VALIDATION_ERROR"


@pytest.mark.parametrize(
    "body",
    [
        {"email": "not-an-email", "password": "password-1"},
        {"email": "a@example.com", "password": "short"},
        {"email": "a@example.com", "password": "p" * 129},
        {"email": "a@example.com", "password": "pass\u0000word"},
        {"email": "a@example.com", "password": "password-1", "name": "n" * 101},
        {"email": "a@example.com", "password": "password-1", "is_admin": True},
        {"email": "a@example.com"},
    ],
)
def test_bad_registration_is_422_and_creates_nobody(
    client: TestClient, db_engine: Engine, body: dict
) -> None:
    response = client.post("/api/auth/register", json=body)
    assert response.status_code == 422, response.text
    assert count_rows(db_engine, "users") == 0


def test_body_over_the_size_limit_is_413(
    client: TestClient, alice: Account, db_engine: Engine
) -> None:
    response = client.post(
        "/api/tasks", json={"title": "ok", "description": "x" * 70_000}, headers=alice.headers
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "PAYLOAD_TOO_LARGE"
    assert count_rows(db_engine, "tasks") == 0


@pytest.mark.parametrize(
    "query", ["list_id=abc", "parent_id=-1", "due_before=yesterday", "list_id=1.5"]
)
def test_a_bad_query_parameter_names_the_parameter_itself(
    client: TestClient, alice: Account, query: str
) -> None:
    """A parameter whose type is a union (an id or `none`, a date-time or a date) is named as
    sent, never with pydantic's name for a member of the union."""
    response = client.get(f"/api/tasks?{query}", headers=alice.headers)
    assert response.status_code == 422, response.text
    name = query.partition("=")[0]
    fields = {detail["field"] for detail in response.json()["error"]["details"]}
    assert fields == {f"query.{name}"}, fields
