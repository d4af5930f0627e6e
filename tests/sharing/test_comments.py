"""Comments on tasks (issue 39, "Shared lists"): every route for every standing in a shared
list (owner, viewer, commenter, editor, admin, stranger, removed member), over real
PostgreSQL with rate limiting on (the default `client`).

Memberships are rows of `list_members` inserted with the test's engine (a set-up step: the
membership routes are another part of the issue). A stranger's answers must be byte-identical
to a missing task's; a comment id of another task is a comment that does not exist."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from backend.config import Settings
from backend.main import create_app
from backend.models.sharing import COMMENT_MAX_LENGTH, COMMENTS_PER_TASK
from tests.conftest import Account

MISSING_TASK = 2**53 - 1
ROLES = ("viewer", "commenter", "editor", "admin")
STANDINGS = ("owner", *ROLES, "stranger", "removed")


@dataclass
class Shared:
    """Alice's list with a task, shared with one member per role; a stranger; a member who
    was removed (its row deleted after it had commented)."""

    client: TestClient
    engine: Engine
    people: dict[str, Account]
    list_id: int
    task_id: int
    other_task_id: int

    def url(self, task_id: int | None = None, comment_id: int | None = None) -> str:
        path = f"/api/tasks/{self.task_id if task_id is None else task_id}/comments"
        return path if comment_id is None else f"{path}/{comment_id}"

    def call(self, who: str, method: str, url: str, body: Any = None) -> Any:
        return self.client.request(method, url, json=body, headers=self.people[who].headers)

    def comment(self, who: str, body: str = "a comment", task_id: int | None = None) -> int:
        response = self.call(who, "POST", self.url(task_id), {"body": body})
        assert response.status_code == 201, response.text
        comment_id: int = response.json()["data"]["id"]
        return comment_id

    def add_member(self, who: str, role: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO list_members (user_id, list_id, member_id, role) "
                    "VALUES (:owner, :list, :member, :role)"
                ),
                {
                    "owner": self.people["owner"].id,
                    "list": self.list_id,
                    "member": self.people[who].id,
                    "role": role,
                },
            )

    def set_role(self, who: str, role: str | None) -> None:
        """Change (None: delete) a membership, as the membership routes will."""
        with self.engine.begin() as conn:
            params = {"list": self.list_id, "member": self.people[who].id, "role": role}
            if role is None:
                conn.execute(
                    text("DELETE FROM list_members WHERE list_id = :list AND member_id = :member"),
                    params,
                )
            else:
                conn.execute(
                    text(
                        "UPDATE list_members SET role = :role "
                        "WHERE list_id = :list AND member_id = :member"
                    ),
                    params,
                )

    def rows(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            found = conn.execute(
                text("SELECT to_jsonb(c) FROM task_comments AS c ORDER BY c.id")
            ).scalars()
            return list(found)


@pytest.fixture
def shared(client: TestClient, db_engine: Engine, register: Callable[..., Account]) -> Shared:
    people = {standing: register(f"{standing}@example.com") for standing in STANDINGS}
    owner = people["owner"].headers
    created = client.post("/api/lists", json={"name": "Household"}, headers=owner)
    assert created.status_code == 201, created.text
    list_id = created.json()["data"]["id"]
    task = client.post("/api/tasks", json={"title": "milk", "list_id": list_id}, headers=owner)
    other = client.post("/api/tasks", json={"title": "eggs", "list_id": list_id}, headers=owner)
    assert task.status_code == other.status_code == 201, task.text
    world = Shared(
        client, db_engine, people, list_id, task.json()["data"]["id"], other.json()["data"]["id"]
    )
    for role in ROLES:
        world.add_member(role, role)
    world.add_member("removed", "commenter")
    return world


def _task_404(shared: Shared) -> tuple[int, bytes]:
    """GET /api/tasks/{id} of a task that does not exist: the 404 every refusal of a caller
    who cannot see the task must equal, byte for byte."""
    response = shared.call("stranger", "GET", f"/api/tasks/{MISSING_TASK}")
    assert response.status_code == 404
    return response.status_code, response.content


# --- every route, every standing -----------------------------------------------------------

READERS = {"owner", *ROLES}
COMMENTERS = {"owner", "commenter", "editor", "admin"}
MODERATORS = {"owner", "admin"}


@pytest.mark.parametrize("who", STANDINGS)
def test_list_comments(shared: Shared, who: str) -> None:
    first = shared.comment("owner", "first")
    second = shared.comment("commenter", "second")
    shared.set_role("removed", None)
    response = shared.call(who, "GET", shared.url())
    if who in READERS:
        assert response.status_code == 200, response.text
        data = response.json()["data"]
        assert [c["id"] for c in data] == [first, second]
        assert set(data[0]) == {"id", "task_id", "author_id", "body", "created_at", "updated_at"}
        assert data[0]["author_id"] == shared.people["owner"].id
        assert data[1] == {**data[1], "task_id": shared.task_id, "body": "second"}
        assert response.json()["meta"] == {
            "count": 2,
            "limit": 50,
            "has_more": False,
            "next_cursor": None,
            "total": None,
        }
    else:
        assert (response.status_code, response.content) == _task_404(shared)


@pytest.mark.parametrize("who", STANDINGS)
def test_add_a_comment(shared: Shared, who: str) -> None:
    shared.set_role("removed", None)
    response = shared.call(who, "POST", shared.url(), {"body": f"from {who}\nline two"})
    if who in COMMENTERS:
        assert response.status_code == 201, response.text
        data = response.json()["data"]
        assert response.headers["Location"] == shared.url(comment_id=data["id"])
        assert data["author_id"] == shared.people[who].id
        assert data["body"] == f"from {who}\nline two"
        assert data["created_at"] == data["updated_at"]
        assert response.headers["RateLimit"]  # a write, counted
        (row,) = shared.rows()
        # In the list owner's space, with the task's list.
        assert (row["user_id"], row["list_id"]) == (shared.people["owner"].id, shared.list_id)
    elif who == "viewer":
        assert response.status_code == 403, response.text
        assert response.json()["error"] == {
            "code": "FORBIDDEN",
            "message": "Your role in this list (viewer) does not allow this; it needs commenter",
            "details": [],
        }
        assert shared.rows() == []
    else:
        assert (response.status_code, response.content) == _task_404(shared)
        assert shared.rows() == []


@pytest.mark.parametrize("who", STANDINGS)
def test_edit_someone_elses_comment(shared: Shared, who: str) -> None:
    """Only the author edits: a member gets 403 (by role, then by authorship), a stranger or
    a removed member the 404 of a missing task."""
    mine = shared.comment("commenter" if who == "owner" else "owner", "original")
    shared.set_role("removed", None)
    response = shared.call(who, "PATCH", shared.url(comment_id=mine), {"body": "changed"})
    if who in READERS:
        assert response.status_code == 403, response.text
        message = response.json()["error"]["message"]
        if who == "viewer":
            assert message.startswith("Your role in this list (viewer)")
        else:
            assert message == "Only a comment's author may edit it"
    else:
        assert (response.status_code, response.content) == _task_404(shared)
    assert [row["body"] for row in shared.rows()] == ["original"]


@pytest.mark.parametrize("who", sorted(COMMENTERS))
def test_edit_your_own_comment(shared: Shared, who: str) -> None:
    mine = shared.comment(who, "original")
    before = shared.rows()[0]
    response = shared.call(who, "PATCH", shared.url(comment_id=mine), {"body": "  changed\n"})
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert (data["id"], data["body"]) == (mine, "changed")
    (row,) = shared.rows()
    assert row["body"] == "changed" and row["updated_at"] >= before["updated_at"]
    assert row["created_at"] == before["created_at"]
    listed = shared.call("viewer", "GET", shared.url()).json()["data"]
    assert listed == [data]


@pytest.mark.parametrize("who", STANDINGS)
def test_delete_someone_elses_comment(shared: Shared, who: str) -> None:
    author = "editor" if who == "commenter" else "commenter"
    theirs = shared.comment(author, "theirs")
    shared.set_role("removed", None)
    response = shared.call(who, "DELETE", shared.url(comment_id=theirs))
    if who in MODERATORS:
        assert response.status_code == 204, response.text
        assert shared.rows() == []
        return
    if who in READERS:
        assert response.status_code == 403, response.text
        message = response.json()["error"]["message"]
        if who == "viewer":
            assert message.startswith("Your role in this list (viewer)")
        else:
            assert message == "Only a comment's author, or an admin of the list, may delete it"
    else:
        assert (response.status_code, response.content) == _task_404(shared)
    assert len(shared.rows()) == 1


@pytest.mark.parametrize("who", sorted(COMMENTERS))
def test_delete_your_own_comment(shared: Shared, who: str) -> None:
    mine = shared.comment(who)
    kept = shared.comment("owner" if who != "owner" else "admin", "kept")
    response = shared.call(who, "DELETE", shared.url(comment_id=mine))
    assert response.status_code == 204, response.text
    assert response.content == b""
    assert [row["id"] for row in shared.rows()] == [kept]
    again = shared.call(who, "DELETE", shared.url(comment_id=mine))
    assert again.status_code == 404 and again.json()["error"]["message"] == "Comment not found"


# --- losing access -------------------------------------------------------------------------


def test_a_removed_member_loses_access_on_its_next_request(shared: Shared) -> None:
    mine = shared.comment("removed", "before")
    assert shared.call("removed", "GET", shared.url()).status_code == 200
    shared.set_role("removed", None)
    missing = _task_404(shared)
    for method, url, body in [
        ("GET", shared.url(), None),
        ("POST", shared.url(), {"body": "after"}),
        ("PATCH", shared.url(comment_id=mine), {"body": "after"}),
        ("DELETE", shared.url(comment_id=mine), None),
    ]:
        response = shared.call("removed", method, url, body)
        assert (response.status_code, response.content) == missing, (method, response.text)
    # Its comment stays, unchanged: the list's admins may delete it.
    assert [row["body"] for row in shared.rows()] == ["before"]


def test_a_downgraded_commenter_can_no_longer_edit_or_delete_its_comment(shared: Shared) -> None:
    mine = shared.comment("commenter", "before")
    shared.set_role("commenter", "viewer")
    for method, body in [("PATCH", {"body": "after"}), ("DELETE", None)]:
        response = shared.call("commenter", method, shared.url(comment_id=mine), body)
        assert response.status_code == 403, response.text
        assert response.json()["error"]["code"] == "FORBIDDEN"
    assert [row["body"] for row in shared.rows()] == ["before"]
    # Still a reader.
    assert shared.call("commenter", "GET", shared.url()).status_code == 200


def test_a_stranger_is_told_what_a_missing_task_gets(shared: Shared) -> None:
    """Byte for byte, on every route, for a task that exists and for one that does not; and
    the same for a personal task of the owner's."""
    comment = shared.comment("owner")
    personal = shared.call("owner", "POST", "/api/tasks", {"title": "mine"}).json()["data"]["id"]
    personal_comment = shared.comment("owner", task_id=personal)
    missing = _task_404(shared)
    for task_id, comment_id in [
        (shared.task_id, comment),
        (personal, personal_comment),
        (MISSING_TASK, comment),
        (MISSING_TASK, MISSING_TASK),
    ]:
        for method, body in [
            ("GET", None),
            ("POST", {"body": "x"}),
            ("PATCH", {"body": "x"}),
            ("DELETE", None),
        ]:
            named = comment_id if method in ("PATCH", "DELETE") else None
            for who in ("stranger", "viewer" if task_id == personal else "stranger"):
                response = shared.call(who, method, shared.url(task_id, named), body)
                assert (response.status_code, response.content) == missing, (method, who)
    assert len(shared.rows()) == 2


# --- a comment is its task's ---------------------------------------------------------------


def test_a_comment_id_of_another_task_is_a_missing_comment(shared: Shared) -> None:
    elsewhere = shared.comment("commenter", "on the other task", task_id=shared.other_task_id)
    for who in ("owner", "commenter", "admin"):
        for method, body in [("PATCH", {"body": "moved?"}), ("DELETE", None)]:
            wrong = shared.call(who, method, shared.url(comment_id=elsewhere), body)
            absent = shared.call(who, method, shared.url(comment_id=MISSING_TASK), body)
            assert wrong.status_code == 404, wrong.text
            assert wrong.json()["error"]["message"] == "Comment not found"
            assert (wrong.status_code, wrong.content) == (absent.status_code, absent.content)
    assert [row["body"] for row in shared.rows()] == ["on the other task"]
    # The task's own listing does not show it.
    assert shared.call("owner", "GET", shared.url()).json()["data"] == []


def test_a_comment_of_another_users_task_is_a_missing_comment(shared: Shared) -> None:
    """The stranger's own task with the owner's comment id: not found, as a missing one."""
    owners = shared.comment("owner")
    stranger_task = shared.call("stranger", "POST", "/api/tasks", {"title": "s"}).json()["data"]
    url = shared.url(stranger_task["id"], owners)
    absent = shared.url(stranger_task["id"], MISSING_TASK)
    for method, body in [("PATCH", {"body": "x"}), ("DELETE", None)]:
        wrong = shared.call("stranger", method, url, body)
        other = shared.call("stranger", method, absent, body)
        assert (wrong.status_code, wrong.content) == (other.status_code, other.content)
        assert wrong.json()["error"]["message"] == "Comment not found"
    assert len(shared.rows()) == 1


def test_a_viewer_is_refused_by_role_before_the_comment_is_looked_up(shared: Shared) -> None:
    """Membership, then role, then the comment: a viewer learns nothing about comment ids."""
    for method, body in [("PATCH", {"body": "x"}), ("DELETE", None)]:
        response = shared.call("viewer", method, shared.url(comment_id=MISSING_TASK), body)
        assert response.status_code == 403, response.text


# --- pages ---------------------------------------------------------------------------------


def test_pages_oldest_first_by_cursor(shared: Shared) -> None:
    made = [shared.comment("owner" if n % 2 else "commenter", f"c{n}") for n in range(5)]
    seen: list[int] = []
    url = shared.url() + "?limit=2"
    pages = 0
    while url:
        response = shared.call("viewer", "GET", url)
        assert response.status_code == 200, response.text
        body = response.json()
        seen += [c["id"] for c in body["data"]]
        pages += 1
        meta = body["meta"]
        assert meta["limit"] == 2 and meta["count"] == len(body["data"])
        assert meta["has_more"] == (meta["next_cursor"] is not None)
        url = shared.url() + f"?limit=2&cursor={meta['next_cursor']}" if meta["has_more"] else ""
    assert (seen, pages) == (made, 3)
    # A cursor is its task's and its caller's.
    first = shared.call("viewer", "GET", shared.url() + "?limit=2").json()["meta"]["next_cursor"]
    for who, url in [
        ("viewer", shared.url(shared.other_task_id) + f"?cursor={first}"),
        ("owner", shared.url() + f"?cursor={first}"),
        ("viewer", shared.url() + "?cursor=garbage"),
    ]:
        refused = shared.call(who, "GET", url)
        assert refused.status_code == 422, refused.text
        assert refused.json()["error"]["details"][0]["field"] == "query.cursor"


def test_an_empty_task_is_an_empty_page(shared: Shared) -> None:
    response = shared.call("viewer", "GET", shared.url())
    assert response.json() == {
        "data": [],
        "meta": {
            "count": 0,
            "limit": 50,
            "has_more": False,
            "next_cursor": None,
            "total": None,
        },
    }


def test_a_personal_task_is_its_owners_alone(shared: Shared) -> None:
    personal = shared.call("admin", "POST", "/api/tasks", {"title": "mine"}).json()["data"]["id"]
    mine = shared.comment("admin", "note to self", task_id=personal)
    listed = shared.call("admin", "GET", shared.url(personal)).json()["data"]
    assert [c["id"] for c in listed] == [mine]
    (row,) = shared.rows()
    assert (row["user_id"], row["list_id"]) == (shared.people["admin"].id, None)
    # The list's owner has no say over another's personal task.
    refused = shared.call("owner", "DELETE", shared.url(personal, mine))
    assert (refused.status_code, refused.content) == _task_404(shared)


# --- what happens around them --------------------------------------------------------------


def test_comments_follow_their_task(shared: Shared) -> None:
    """Moved to another list: the comments go with it (and its members with them); deleted:
    its comments go too."""
    comment = shared.comment("commenter")
    other = shared.call("owner", "POST", "/api/lists", {"name": "Private"}).json()["data"]["id"]
    moved = shared.call("owner", "PATCH", f"/api/tasks/{shared.task_id}", {"list_id": other})
    assert moved.status_code == 200, moved.text
    assert shared.rows()[0]["list_id"] == other
    refused = shared.call("commenter", "GET", shared.url())
    assert (refused.status_code, refused.content) == _task_404(shared)
    assert shared.call("owner", "GET", shared.url()).json()["data"][0]["id"] == comment
    assert shared.call("owner", "DELETE", f"/api/tasks/{shared.task_id}").status_code == 204
    assert shared.rows() == []


def test_a_deleted_authors_comments_stay_without_an_author(shared: Shared) -> None:
    comment = shared.comment("commenter", "still useful")
    gone = shared.call("commenter", "DELETE", "/api/auth/me")
    assert gone.status_code == 204, gone.text
    (listed,) = shared.call("owner", "GET", shared.url()).json()["data"]
    assert (listed["id"], listed["author_id"], listed["body"]) == (comment, None, "still useful")
    # Nobody is its author: the owner may delete it, not edit it.
    edit = shared.call("owner", "PATCH", shared.url(comment_id=comment), {"body": "x"})
    assert edit.status_code == 403
    assert shared.call("owner", "DELETE", shared.url(comment_id=comment)).status_code == 204


def test_a_task_holds_at_most_so_many_comments(shared: Shared) -> None:
    with shared.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO task_comments (user_id, task_id, list_id, author_id, body) "
                "SELECT :owner, :task, :list, :owner, 'filler' FROM generate_series(2, :n)"
            ),
            {
                "owner": shared.people["owner"].id,
                "task": shared.task_id,
                "list": shared.list_id,
                "n": COMMENTS_PER_TASK,
            },
        )
    shared.comment("commenter", "the last one")
    refused = shared.call("commenter", "POST", shared.url(), {"body": "one too many"})
    assert refused.status_code == 422, refused.text
    assert refused.json()["error"]["code"] == "LIMIT_REACHED"
    assert len(shared.rows()) == COMMENTS_PER_TASK
    # A viewer is still told its role, not the count.
    assert shared.call("viewer", "POST", shared.url(), {"body": "x"}).status_code == 403


# --- bad input -----------------------------------------------------------------------------

BAD_IDS = ["0", "-1", str(2**53), str(2**63), "99999999999999999999999", "1.0", "abc", "1e3", "+1"]
BAD_BODIES: list[Any] = [
    None,
    {},
    {"body": ""},
    {"body": "   \n\t "},
    {"body": 5},
    {"body": None},
    {"body": ["x"]},
    {"body": "nul\x00byte"},
    {"body": "bell\x07"},
    {"body": "bidi \u202e override"},
    {"body": "x" * (COMMENT_MAX_LENGTH + 1)},
    {"body": "x", "author_id": "someone"},
    {"body": "x", "task_id": 1},
    "just a string",
    [{"body": "x"}],
]


def _envelope(response: Any) -> dict[str, Any]:
    assert 400 <= response.status_code < 500, response.text
    error = response.json()["error"]
    assert set(error) >= {"code", "message", "details"}
    return dict(error)


@pytest.mark.parametrize("bad", BAD_IDS)
def test_bad_ids_are_refused_and_change_nothing(shared: Shared, bad: str) -> None:
    comment = shared.comment("owner")
    before = shared.rows()
    for method, url, body in [
        ("GET", f"/api/tasks/{bad}/comments", None),
        ("POST", f"/api/tasks/{bad}/comments", {"body": "x"}),
        ("PATCH", f"/api/tasks/{bad}/comments/{comment}", {"body": "x"}),
        ("PATCH", shared.url(comment_id=bad), {"body": "x"}),  # type: ignore[arg-type]
        ("DELETE", f"/api/tasks/{bad}/comments/{comment}", None),
        ("DELETE", shared.url(comment_id=bad), None),  # type: ignore[arg-type]
        ("GET", shared.url() + f"?limit={bad}", None),
    ]:
        response = shared.call("owner", method, url, body)
        assert response.status_code in (404, 422), (method, url, response.text)
        _envelope(response)
    for limit in ("101", "0"):
        _envelope(shared.call("owner", "GET", shared.url() + f"?limit={limit}"))
    assert shared.rows() == before


@pytest.mark.parametrize("body", BAD_BODIES, ids=range(len(BAD_BODIES)))
def test_bad_bodies_are_refused_and_change_nothing(shared: Shared, body: Any) -> None:
    comment = shared.comment("commenter", "original")
    before = shared.rows()
    for method, url in [("POST", shared.url()), ("PATCH", shared.url(comment_id=comment))]:
        response = shared.call("commenter", method, url, body)
        assert response.status_code == 422, (method, body, response.text)
        assert _envelope(response)["code"] == "VALIDATION_ERROR"
    assert shared.rows() == before


def test_a_body_of_the_longest_length_is_kept_verbatim(shared: Shared) -> None:
    body = ("é\r\n\tend " * COMMENT_MAX_LENGTH)[: COMMENT_MAX_LENGTH - 1] + "!"
    response = shared.call("commenter", "POST", shared.url(), {"body": body})
    assert response.status_code == 201, response.text
    assert shared.rows()[0]["body"] == body.strip()


def test_undecodable_json_is_a_400(shared: Shared) -> None:
    response = shared.client.post(
        shared.url(),
        content=b'{"body": "x"',
        headers={**shared.people["owner"].headers, "Content-Type": "application/json"},
    )
    assert response.status_code in (400, 422), response.text
    _envelope(response)
    assert shared.rows() == []
    assert json.loads(response.content)["error"]


# --- rate limits ---------------------------------------------------------------------------


def test_comment_writes_count_against_the_write_limit(shared: Shared, settings: Settings) -> None:
    """A comment write is a write: counted (a refused one too) and refused past the limit,
    with nothing written."""
    owners = shared.comment("owner", "the owner's")
    limited = settings.model_copy(
        update={"rate_limit_task_window_seconds": 3600, "rate_limit_task_writes_per_user": 2}
    )
    commenter = shared.people["commenter"].headers
    with TestClient(create_app(limited), raise_server_exceptions=False) as client:
        refused = client.patch(shared.url(comment_id=owners), json={"body": "x"}, headers=commenter)
        assert refused.status_code == 403 and "ratelimit" in refused.headers
        answers = [
            client.post(shared.url(), json={"body": f"c{n}"}, headers=commenter) for n in range(2)
        ]
    # The refused edit counted: one comment fits (two if a window ends between them), the
    # next is refused.
    statuses = [answer.status_code for answer in answers]
    assert statuses in ([201, 429], [429, 201], [201, 201]), [a.text for a in answers]
    limited_answers = [answer for answer in answers if answer.status_code == 429]
    for answer in limited_answers:
        assert answer.json()["error"]["code"] == "RATE_LIMITED"
        assert "retry-after" in answer.headers
    assert len(shared.rows()) == 1 + statuses.count(201)
    # Reads are not limited.
    assert shared.call("commenter", "GET", shared.url()).status_code == 200
