"""Bad input to sharing's routes: a 4xx error envelope, never a 500, and nothing changed
(huge or malformed ids, wrong types, NUL bytes, long strings, bad emails, unknown fields)."""

from __future__ import annotations

import re
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine

from tests.conftest import Account
from tests.resources import snapshot
from tests.sharing.helpers import join, make_list

HUGE = "9" * 30


def test_bad_input_is_a_4xx_envelope_and_changes_nothing(
    client: TestClient, alice: Account, bob: Account, db_engine: Engine
) -> None:
    list_id = make_list(client, alice)
    join(client, alice, bob, list_id, "editor")
    before = snapshot(db_engine, alice.id)
    lists = f"/api/lists/{list_id}"
    cases: list[tuple[str, str, Any]] = [
        # Path ids: huge, zero, negative, not digits, NUL, too long.
        ("GET", f"/api/lists/{HUGE}/members", None),
        ("GET", "/api/lists/0/members", None),
        ("GET", "/api/lists/-1/members", None),
        ("GET", "/api/lists/1.0/members", None),
        ("GET", "/api/lists/%2B1/members", None),
        ("PATCH", f"{lists}/members/%00", {"role": "viewer"}),
        ("PATCH", f"{lists}/members/{'x' * 300}", {"role": "viewer"}),
        ("DELETE", f"{lists}/members/a%00b", None),
        ("DELETE", f"{lists}/invitations/{HUGE}", None),
        ("DELETE", f"{lists}/invitations/abc", None),
        # Roles: unknown, the owner's, wrong type, missing, extra fields.
        ("PATCH", f"{lists}/members/{bob.id}", {"role": "owner"}),
        ("PATCH", f"{lists}/members/{bob.id}", {"role": "superuser"}),
        ("PATCH", f"{lists}/members/{bob.id}", {"role": 3}),
        ("PATCH", f"{lists}/members/{bob.id}", {}),
        ("PATCH", f"{lists}/members/{bob.id}", {"role": "viewer", "user_id": "x"}),
        ("PATCH", f"{lists}/members/{bob.id}", ["viewer"]),
        # Transfers: wrong type, NUL, too long, empty.
        ("POST", f"{lists}/transfer", {"user_id": 1}),
        ("POST", f"{lists}/transfer", {"user_id": "a\u0000b"}),
        ("POST", f"{lists}/transfer", {"user_id": "x" * 300}),
        ("POST", f"{lists}/transfer", {"user_id": ""}),
        ("POST", f"{lists}/transfer", None),
        # Invitations: bad emails, NUL, too long, an owner role, extra fields.
        ("POST", f"{lists}/invitations", {"role": "viewer", "email": "not-an-email"}),
        ("POST", f"{lists}/invitations", {"role": "viewer", "email": "a\u0000@example.com"}),
        ("POST", f"{lists}/invitations", {"role": "viewer", "email": "a" * 320 + "@example.com"}),
        ("POST", f"{lists}/invitations", {"role": "viewer", "email": "x@localhost"}),
        ("POST", f"{lists}/invitations", {"role": "owner"}),
        ("POST", f"{lists}/invitations", {"role": "viewer", "token": "mine"}),
        ("POST", f"{lists}/invitations", {"role": None}),
        # Accepting: NUL, too long, wrong type, empty.
        ("POST", "/api/invitations/accept", {"token": "a\u0000b"}),
        ("POST", "/api/invitations/accept", {"token": "x" * 201}),
        ("POST", "/api/invitations/accept", {"token": 12}),
        ("POST", "/api/invitations/accept", {"token": ""}),
        ("POST", "/api/invitations/accept", {}),
    ]
    for method, path, body in cases:
        for caller in (alice, bob):
            answer = client.request(method, path, json=body, headers=caller.headers)
            assert 400 <= answer.status_code < 500, (method, path, body, answer.text)
            error = answer.json()["error"]
            assert error["code"] and error["message"], (method, path, body)
    assert snapshot(db_engine, alice.id) == before


# An enum member as Python writes it (`<Role.viewer: 'viewer'>`): never in a client's message.
_ENUM_REPR = re.compile(r"<\w+\.\w+: [^>]*>")
_ROLES = "Input should be 'viewer', 'commenter', 'editor' or 'admin'"


def test_a_role_refused_by_validation_is_named_by_its_plain_values(
    client: TestClient, alice: Account, bob: Account
) -> None:
    """Issue 49, 5: a 422's message shows an enum's values as a client sends them, for a
    membership's role, an invitation's, and any other enum (a task's priority)."""
    list_id = make_list(client, alice)
    join(client, alice, bob, list_id, "editor")
    lists = f"/api/lists/{list_id}"
    for method, path, body in (
        ("PATCH", f"{lists}/members/{bob.id}", {"role": "superuser"}),
        ("PATCH", f"{lists}/members/{bob.id}", {"role": "owner"}),
        ("POST", f"{lists}/invitations", {"role": "owner"}),
        ("POST", f"{lists}/invitations", {"role": "Viewer"}),
    ):
        answer = client.request(method, path, json=body, headers=alice.headers)
        assert answer.status_code == 422, (method, path, answer.text)
        assert not _ENUM_REPR.search(answer.text), answer.text
        details = answer.json()["error"]["details"]
        assert details == [{"field": "body.role", "message": _ROLES, "type": "literal_error"}], (
            details
        )
    priority = client.post(
        "/api/tasks", json={"title": "x", "priority": "urgent"}, headers=alice.headers
    )
    assert priority.status_code == 422, priority.text
    assert not _ENUM_REPR.search(priority.text), priority.text
    assert "'high'" in priority.json()["error"]["details"][0]["message"]
