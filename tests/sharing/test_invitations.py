"""Invitations: create (admin+; an admin invitation the owner only), list, revoke, accept
(issue 39; specs/api-contract.md, "Shared lists"). Rate limiting is on (the default
`client`)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from backend.api.responses import EXAMPLES
from backend.config import Settings
from backend.db.scope_check import unscoped
from backend.main import create_app
from backend.services.sharing import invitations as invitation_statements
from tests.api.test_rate_limits import _clear_of_a_window_boundary  # noqa: F401 (a fixture)
from tests.conftest import Account, count_rows
from tests.sharing.helpers import invite, join, make_list, make_task, members

MISSING = 999_999


@pytest.fixture
def carol(register: Callable[..., Account]) -> Account:
    return register("carol@example.com")


@pytest.mark.parametrize(
    "name",
    ["_CREATE", "_CREATE_ADMIN", "_PENDING", "_REVOKE", "_REVOKE_REFUSAL", "_ACCEPT", "_JOINED"],
)
def test_the_invitation_statements_are_scoped(name: str) -> None:
    assert unscoped(getattr(invitation_statements, name)) is None


def _accept(client: TestClient, caller: Account, token: str) -> object:
    return client.post("/api/invitations/accept", json={"token": token}, headers=caller.headers)


def test_an_invitation_shows_its_token_once_and_stores_only_its_hash(
    client: TestClient, alice: Account, db_engine: Engine
) -> None:
    list_id = make_list(client, alice)
    made = client.post(
        f"/api/lists/{list_id}/invitations",
        json={"role": "editor", "email": "Ada@Example.com"},
        headers=alice.headers,
    )
    assert made.status_code == 201, made.text
    data = made.json()["data"]
    assert set(data) == {"id", "list_id", "role", "email", "status", "expires_at", "token"}
    assert (data["list_id"], data["role"], data["email"], data["status"]) == (
        list_id,
        "editor",
        "ada@example.com",
        "pending",
    )
    assert len(data["token"]) >= 43
    with db_engine.connect() as conn:
        stored = conn.execute(
            text("SELECT token_hash, expires_at - created_at FROM list_invitations")
        ).one()
        whole = conn.execute(text("SELECT to_jsonb(i)::text FROM list_invitations i")).scalar()
    assert stored[0] == hashlib.sha256(data["token"].encode()).hexdigest()
    assert stored[1].days == 7
    assert data["token"] not in str(whole)
    listed = client.get(f"/api/lists/{list_id}/invitations", headers=alice.headers)
    assert listed.status_code == 200, listed.text
    assert listed.json()["data"] == [{k: v for k, v in data.items() if k != "token"}]


def test_the_answer_is_the_same_whether_or_not_the_email_has_an_account(
    client: TestClient, alice: Account, bob: Account
) -> None:
    list_id = make_list(client, alice)
    known = invite(client, alice, list_id, "viewer", bob.email)
    unknown = invite(client, alice, list_id, "viewer", "nobody@example.com")
    assert set(known) == set(unknown)
    assert {k: v for k, v in known.items() if k not in {"id", "token", "email", "expires_at"}} == {
        k: v for k, v in unknown.items() if k not in {"id", "token", "email", "expires_at"}
    }


def test_a_new_invitation_to_an_email_replaces_the_pending_one(
    client: TestClient, alice: Account, bob: Account, db_engine: Engine
) -> None:
    list_id = make_list(client, alice)
    first = invite(client, alice, list_id, "viewer", "bob@example.com")
    second = invite(client, alice, list_id, "editor", "BOB@example.com")
    assert count_rows(db_engine, "list_invitations") == 1
    listed = client.get(f"/api/lists/{list_id}/invitations", headers=alice.headers).json()["data"]
    assert [(i["role"], i["email"]) for i in listed] == [("editor", "bob@example.com")]
    # The replaced token no longer works; the new one does.
    assert _accept(client, bob, first["token"]).status_code == 404  # type: ignore[attr-defined]
    accepted = _accept(client, bob, second["token"])
    assert accepted.status_code == 200, accepted.text  # type: ignore[attr-defined]
    # Invitations without an email do not replace each other.
    invite(client, alice, list_id, "viewer")
    invite(client, alice, list_id, "viewer")
    assert count_rows(db_engine, "list_invitations") == 2


def test_accepting_joins_the_list_once_with_its_role(
    client: TestClient, alice: Account, bob: Account, carol: Account, db_engine: Engine
) -> None:
    list_id = make_list(client, alice, "Groceries")
    token = invite(client, alice, list_id, "commenter")["token"]
    accepted = _accept(client, bob, token)
    assert accepted.status_code == 200, accepted.text  # type: ignore[attr-defined]
    data = accepted.json()["data"]  # type: ignore[attr-defined]
    own_view = client.get(f"/api/lists/{list_id}", headers=bob.headers).json()["data"]
    assert data == own_view
    assert (data["id"], data["name"], data["role"]) == (list_id, "Groceries", "commenter")
    assert count_rows(db_engine, "list_invitations") == 0
    # Single use: nobody else, and not the same caller again.
    used_by_carol = _accept(client, carol, token)
    assert used_by_carol.status_code == 404  # type: ignore[attr-defined]
    assert members(client, alice, list_id) == {alice.id: "owner", bob.id: "commenter"}


def test_accepting_answers_what_get_then_answers_byte_for_byte(
    client: TestClient, alice: Account, bob: Account
) -> None:
    """The accept's answer is read in its own message, after the membership's write: the
    list, its task counts and the caller's role as `GET /api/lists/{id}` then answers them,
    body and ETag alike, whether the caller joins, keeps a higher role or takes one."""
    list_id = make_list(client, alice, "Counted")
    parent = make_task(client, alice, "open", list_id=list_id)
    make_task(client, alice, "under it", parent_id=parent)
    done = make_task(client, alice, "done", list_id=list_id)
    assert (
        client.patch(
            f"/api/tasks/{done}", json={"completed": True}, headers=alice.headers
        ).status_code
        == 200
    )
    make_task(client, alice, "elsewhere")
    for role, seen in (("editor", "editor"), ("viewer", "editor"), ("admin", "admin")):
        accepted = _accept(client, bob, invite(client, alice, list_id, role)["token"])
        assert accepted.status_code == 200, accepted.text  # type: ignore[attr-defined]
        got = client.get(f"/api/lists/{list_id}", headers=bob.headers)
        assert got.status_code == 200, got.text
        assert accepted.content == got.content  # type: ignore[attr-defined]
        assert accepted.headers["etag"] == got.headers["etag"]  # type: ignore[attr-defined]
        data = accepted.json()["data"]  # type: ignore[attr-defined]
        assert (data["role"], data["task_count"], data["open_task_count"]) == (seen, 3, 2)


def test_every_unusable_token_is_the_same_404(
    client: TestClient, alice: Account, bob: Account, carol: Account, db_engine: Engine
) -> None:
    list_id = make_list(client, alice)
    unknown = _accept(client, bob, "no-such-token")
    assert unknown.status_code == 404  # type: ignore[attr-defined]
    body = unknown.content  # type: ignore[attr-defined]
    assert unknown.json()["error"]["message"] == "Invitation not found"  # type: ignore[attr-defined]
    expired = invite(client, alice, list_id, "viewer", "bob@example.com")
    with db_engine.begin() as conn:
        conn.execute(text("UPDATE list_invitations SET expires_at = now() - interval '1 second'"))
    revoked = invite(client, alice, list_id, "viewer", "carol@example.com")
    assert (
        client.delete(
            f"/api/lists/{list_id}/invitations/{revoked['id']}", headers=alice.headers
        ).status_code
        == 204
    )
    used = invite(client, alice, list_id, "viewer")
    assert _accept(client, carol, used["token"]).status_code == 200  # type: ignore[attr-defined]
    elsewhere = invite(client, alice, list_id, "editor", "someone@example.com")
    mine = invite(client, alice, list_id, "viewer")
    for token, caller in (
        (expired["token"], bob),
        (revoked["token"], carol),
        (used["token"], bob),
        (elsewhere["token"], bob),
        (mine["token"], alice),
    ):
        answer = _accept(client, caller, token)
        assert answer.status_code == 404, answer.text  # type: ignore[attr-defined]
        assert answer.content == body  # type: ignore[attr-defined]
    # The owner's own try used nothing up: the invitation is still there for someone else.
    assert _accept(client, bob, mine["token"]).status_code == 200  # type: ignore[attr-defined]
    assert members(client, alice, list_id) == {
        alice.id: "owner",
        carol.id: "viewer",
        bob.id: "viewer",
    }


def test_an_email_matches_whatever_its_case(
    client: TestClient, alice: Account, register: Callable[..., Account]
) -> None:
    erin = register("Erin@Example.com")
    list_id = make_list(client, alice)
    token = invite(client, alice, list_id, "viewer", "erin@EXAMPLE.com")["token"]
    assert _accept(client, erin, token).status_code == 200  # type: ignore[attr-defined]


def test_an_existing_member_keeps_a_higher_role_and_takes_a_higher_one(
    client: TestClient, alice: Account, bob: Account
) -> None:
    list_id = make_list(client, alice)
    join(client, alice, bob, list_id, "editor")
    lower = _accept(client, bob, invite(client, alice, list_id, "viewer")["token"])
    assert lower.status_code == 200  # type: ignore[attr-defined]
    assert lower.json()["data"]["role"] == "editor"  # type: ignore[attr-defined]
    higher = _accept(client, bob, invite(client, alice, list_id, "admin")["token"])
    assert higher.json()["data"]["role"] == "admin"  # type: ignore[attr-defined]
    assert members(client, alice, list_id) == {alice.id: "owner", bob.id: "admin"}


def test_who_may_invite_list_and_revoke(
    client: TestClient, alice: Account, bob: Account, carol: Account, db_engine: Engine
) -> None:
    list_id = make_list(client, alice)
    join(client, alice, bob, list_id, "admin")
    join(client, alice, carol, list_id, "editor")
    path = f"/api/lists/{list_id}/invitations"
    # An editor: 403 on each route.
    for answer in (
        client.post(path, json={"role": "viewer"}, headers=carol.headers),
        client.get(path, headers=carol.headers),
        client.delete(f"{path}/1", headers=carol.headers),
    ):
        assert answer.status_code == 403, answer.text
        assert answer.json()["error"]["code"] == "FORBIDDEN"
    # An admin invites below admin; an admin invitation is the owner's.
    made = invite(client, bob, list_id, "editor")
    as_admin = client.post(path, json={"role": "admin"}, headers=bob.headers)
    assert as_admin.status_code == 403, as_admin.text
    by_owner = invite(client, alice, list_id, "admin")
    assert client.delete(f"{path}/{by_owner['id']}", headers=bob.headers).status_code == 403
    assert client.delete(f"{path}/{made['id']}", headers=bob.headers).status_code == 204
    assert client.delete(f"{path}/{made['id']}", headers=bob.headers).status_code == 404
    # An invitation of another list: 404, and it stays.
    other = make_list(client, alice, "Other")
    foreign = invite(client, alice, other, "viewer")
    wrong = client.delete(f"{path}/{foreign['id']}", headers=alice.headers)
    assert wrong.status_code == 404, wrong.text
    assert wrong.json()["error"]["message"] == "Invitation not found"
    assert count_rows(db_engine, "list_invitations") == 2


def test_a_stranger_gets_the_missing_lists_404_byte_for_byte(
    client: TestClient, alice: Account, bob: Account
) -> None:
    list_id = make_list(client, alice)
    made = invite(client, alice, list_id, "viewer")
    cases = [
        ("POST", "/api/lists/{}/invitations", {"json": {"role": "viewer"}}),
        ("GET", "/api/lists/{}/invitations", {}),
        ("DELETE", "/api/lists/{}/invitations/" + str(made["id"]), {}),
    ]
    for method, path, kw in cases:
        missing = client.request(method, path.format(MISSING), headers=bob.headers, **kw)  # type: ignore[arg-type]
        answer = client.request(method, path.format(list_id), headers=bob.headers, **kw)  # type: ignore[arg-type]
        assert missing.status_code == answer.status_code == 404, (path, answer.text)
        assert answer.content == missing.content, path
    assert (
        len(client.get(f"/api/lists/{list_id}/invitations", headers=alice.headers).json()["data"])
        == 1
    )


def test_invitations_have_their_own_rate_limit(
    client: TestClient, alice: Account, db_engine: Engine
) -> None:
    list_id = make_list(client, alice)
    path = f"/api/lists/{list_id}/invitations"
    for _ in range(30):
        made = client.post(path, json={"role": "viewer"}, headers=alice.headers)
        assert made.status_code == 201, made.text
    # Counted against both limits, and says so.
    assert made.headers["RateLimit-Policy"] == '"invitations";q=30;w=3600, "task-writes";q=120;w=60'
    assert made.headers["RateLimit"].startswith('"invitations";r=0;t=')
    refused = client.post(path, json={"role": "viewer"}, headers=alice.headers)
    assert refused.status_code == 429, refused.text
    assert refused.json()["error"]["code"] == "RATE_LIMITED"
    assert "Retry-After" in refused.headers
    assert refused.headers["RateLimit-Policy"] == '"invitations";q=30;w=3600'
    assert count_rows(db_engine, "list_invitations") == 30


def test_a_list_has_room_for_so_many_members_and_pending_invitations(
    client: TestClient, alice: Account, db_engine: Engine
) -> None:
    from backend.models.sharing import MEMBERS_PER_LIST

    list_id = make_list(client, alice)
    kept = invite(client, alice, list_id, "viewer", "kept@example.com")
    with db_engine.begin() as conn:  # members written directly (as many sign-ups otherwise)
        conn.execute(
            text(
                "INSERT INTO users (id, email) SELECT 'u' || n, 'u' || n || '@example.com' "
                "FROM generate_series(1, :count) AS n"
            ),
            {"count": MEMBERS_PER_LIST - 1},
        )
        conn.execute(
            text(
                "INSERT INTO list_members (user_id, list_id, member_id, role) "
                "SELECT :owner, :list, 'u' || n, 'viewer' FROM generate_series(1, :count) AS n"
            ),
            {"owner": alice.id, "list": list_id, "count": MEMBERS_PER_LIST - 1},
        )
    path = f"/api/lists/{list_id}/invitations"
    full = client.post(path, json={"role": "viewer"}, headers=alice.headers)
    assert full.status_code == 422, full.text
    assert full.json() == EXAMPLES["list_members_full"].example()["value"]
    # Replacing the pending invitation of an address takes no more room.
    again = client.post(
        path, json={"role": "editor", "email": "kept@example.com"}, headers=alice.headers
    )
    assert again.status_code == 201, again.text
    assert again.json()["data"]["id"] == kept["id"]
    assert count_rows(db_engine, "list_invitations") == 1


@pytest.fixture
def few_invitations(settings: Settings) -> Iterator[TestClient]:
    """An app allowing 4 invitations and 50 writes an hour (one-hour windows, aligned to the
    clock hour: `_clear_of_a_window_boundary` keeps a test clear of a boundary)."""
    limits = {
        "rate_limit_invitations_per_hour": 4,
        "rate_limit_task_writes_per_user": 50,
        "rate_limit_task_window_seconds": 3600,
    }
    app = create_app(settings.model_copy(update=limits))
    with TestClient(app, raise_server_exceptions=False) as limited:
        yield limited


_BOTH = '"invitations";q=4;w=3600, "task-writes";q=50;w=3600'
_REMAINING = re.compile(r'"invitations";r=(\d+);t=\d+, "task-writes";r=(\d+);t=\d+')


@pytest.mark.usefixtures("_clear_of_a_window_boundary")
def test_every_create_counts_refused_ones_too_and_a_429_writes_nothing_else(
    client: TestClient,
    few_invitations: TestClient,
    alice: Account,
    bob: Account,
    db_engine: Engine,
) -> None:
    """The invitation limit counts each create, refused ones too (403, 404), in the create's
    own message, and each answer says so beside the write count; over it, the 429 carries
    the invitation limit's headers alone and writes nothing but the counts."""
    list_id = make_list(client, alice)
    other = make_list(client, alice, "Not Bob's")
    join(client, alice, bob, list_id, "admin")
    path = f"/api/lists/{list_id}/invitations"
    answers = [
        few_invitations.post(path, json={"role": "viewer"}, headers=bob.headers),
        few_invitations.post(path, json={"role": "admin"}, headers=bob.headers),
        few_invitations.post(
            f"/api/lists/{other}/invitations", json={"role": "viewer"}, headers=bob.headers
        ),
        few_invitations.post(
            f"/api/lists/{MISSING}/invitations", json={"role": "viewer"}, headers=bob.headers
        ),
    ]
    assert [a.status_code for a in answers] == [201, 403, 404, 404], [a.text for a in answers]
    assert all(a.headers["ratelimit-policy"] == _BOTH for a in answers)
    counted = [_REMAINING.fullmatch(a.headers["ratelimit"]) for a in answers]
    assert all(counted), [a.headers["ratelimit"] for a in answers]
    invitations = [int(m.group(1)) for m in counted if m]
    writes = [int(m.group(2)) for m in counted if m]
    assert invitations == [3, 2, 1, 0]
    assert writes == list(range(writes[0], writes[0] - 4, -1))

    def written() -> tuple[int, int]:
        return count_rows(db_engine, "task_events"), count_rows(db_engine, "list_invitations")

    before = written()
    refused = few_invitations.post(path, json={"role": "viewer"}, headers=bob.headers)
    assert refused.status_code == 429, refused.text
    assert refused.json()["error"]["code"] == "RATE_LIMITED"
    assert refused.headers["ratelimit-policy"] == '"invitations";q=4;w=3600'
    assert re.fullmatch(r'"invitations";r=0;t=\d+', refused.headers["ratelimit"])
    assert 1 <= int(refused.headers["retry-after"]) <= 3600
    assert written() == before
    # The refused create counted as a write, as every write does.
    after = few_invitations.post("/api/lists", json={"name": "Bob's"}, headers=bob.headers)
    assert after.status_code == 201, after.text
    assert re.fullmatch(rf'"task-writes";r={writes[-1] - 2};t=\d+', after.headers["ratelimit"])


@pytest.mark.usefixtures("_clear_of_a_window_boundary")
def test_a_create_refused_for_its_body_counts_against_the_invitation_limit(
    client: TestClient, few_invitations: TestClient, alice: Account, db_engine: Engine
) -> None:
    """Issue 49, 4: a create whose body fails validation (422) is a refused create, and
    counts as the others do, against both limits, in one statement; the fifth is the 429."""
    list_id = make_list(client, alice)
    path = f"/api/lists/{list_id}/invitations"
    bodies: list[object] = [
        {"role": "owner"},
        {"role": "viewer", "email": "not-an-email"},
        {"role": "viewer", "token": "mine"},
        {"role": "viewer", "expires_in_days": "soon"},
    ]
    answers = [few_invitations.post(path, json=body, headers=alice.headers) for body in bodies]
    assert [a.status_code for a in answers] == [422] * 4, [a.text for a in answers]
    assert all(a.headers.get("ratelimit-policy") == _BOTH for a in answers), [
        dict(a.headers) for a in answers
    ]
    counted = [_REMAINING.fullmatch(a.headers["ratelimit"]) for a in answers]
    assert [int(m.group(1)) for m in counted if m] == [3, 2, 1, 0]
    refused = few_invitations.post(path, json={"role": "viewer"}, headers=alice.headers)
    assert refused.status_code == 429, refused.text
    assert count_rows(db_engine, "list_invitations") == 0
