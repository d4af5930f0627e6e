"""No credential the API issues is kept or sent where it does not belong (issue 61).

A calendar feed made through the chat (`/api/chat` and ChatKit) keeps its URL out of the
conversation: the stored tool call, `GET /api/conversations/{id}/messages`, ChatKit's items
and the model's requests say the feed was made and where to get its URL, never the URL.

The scan: every credential the API issues (`CREDENTIALS`: the bearer access token of a sign-in
or a registration, the calendar feed token, the stream ticket, a list invitation's token) is
issued through every door that issues it (REST, MCP, a chat turn, ChatKit), used, and then
searched for in the logs (INFO and DEBUG), every table of
the database (stored messages and ChatKit items, task events and so the activity and the
outbox the webhooks deliver, everything), the model's requests, the change feed, the activity
and the conversations' answers: 0 hits. The credentials are read where they are made: each
issuing module's `secrets` (the access token's: `jwt`, its `encode`) records the values it
returns (the real function makes them; nothing else changes), so a credential no answer shows
(a chat's feed) is searched for too. A later credential (app passwords, download links) is one
more line in `CREDENTIALS`. App passwords (issue 62) are made over REST and used over DAV,
right and wrong: every `Authorization: Basic` value sent is searched for too. Download links
(issue 63: presigned URLs, on the real radosgw of tests/storage) are issued by a download's
redirect, MCP's `list_attachments` (the caller's own client: it may hold one) and a chat's
`list_attachments` (withheld: `download_url_withheld`); their signatures are searched for.
"""

from __future__ import annotations

import json
import logging
import secrets
import urllib.request
from base64 import b64encode
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from backend.auth import tokens
from backend.services.accounts import app_passwords, stream_tickets
from backend.services.calendar import calendar_feeds
from backend.services.sharing import invitations
from backend.storage import s3
from tests.chat.chatkit import done_items, items, new_thread
from tests.chat.fake_model import FakeModel, call, fail, say, tool_results
from tests.conftest import Account
from tests.mcp.conftest import call_tool_rpc
from tests.storage.conftest import BUCKET, radosgw_server  # noqa: F401
from tests.storage.radosgw import Radosgw


@dataclass(frozen=True)
class Credential:
    """A credential the API issues: its name, and the module that makes it (its calls of
    `<maker>.<prefix>*`, by default `secrets.token_*`, are what it issues)."""

    name: str
    module: ModuleType
    maker: str = "secrets"
    prefix: str = "token_"
    # Else: a method of the class `maker` names whose answer is a presigned URL (its
    # signature is the secret recorded).
    method: str | None = None


# Every credential the API issues; a new one is a line here (and its use in `_scenario`).
CREDENTIALS = (
    Credential("bearer access token", tokens, maker="jwt", prefix="encode"),
    Credential("calendar feed token", calendar_feeds),
    Credential("stream ticket", stream_tickets),
    Credential("list invitation token", invitations),
    Credential("app password", app_passwords),
    Credential("download link", s3, maker="S3Storage", method="presigned_get"),
)


@dataclass
class _Recording:
    """A module's `secrets` (or the maker it names): the same functions, each value a
    `<prefix>*` one returned recorded."""

    real: Any = secrets
    prefix: str = "token_"
    issued: list[str] = field(default_factory=list)

    def __getattr__(self, name: str) -> Any:
        real = getattr(self.real, name)
        if not name.startswith(self.prefix):
            return real

        def recorded(*args: Any, **kwargs: Any) -> Any:
            value = real(*args, **kwargs)
            self.issued.append(value)
            return value

        return recorded


@pytest.fixture
def issued(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    """What each credential's module issued during the test, by the credential's name."""
    made: dict[str, list[str]] = {}
    for credential in CREDENTIALS:
        maker = getattr(credential.module, credential.maker)
        if credential.method is not None:
            made[credential.name] = _record_signatures(monkeypatch, maker, credential.method)
            continue
        recording = _Recording(maker, credential.prefix)
        monkeypatch.setattr(credential.module, credential.maker, recording)
        made[credential.name] = recording.issued
    return made


def _record_signatures(monkeypatch: pytest.MonkeyPatch, cls: type, method: str) -> list[str]:
    """`cls.method` as it is, the signature of each URL it returns recorded."""
    real = getattr(cls, method)
    signed: list[str] = []

    def recorded(self: Any, *args: Any, **kwargs: Any) -> Any:
        url = real(self, *args, **kwargs)
        if url is not None:
            signed.append(_signature_of(url))
        return url

    monkeypatch.setattr(cls, method, recorded)
    return signed


def _signature_of(url: str) -> str:
    [signature] = parse_qs(urlsplit(url).query)["X-Amz-Signature"]
    return signature


def _token_of(url: str) -> str:
    return url.rsplit("/", 1)[1].removesuffix(".ics")


def _feeds(client: TestClient, account: Account) -> list[dict[str, Any]]:
    listed = client.get("/api/calendar-feeds", headers=account.headers)
    assert listed.status_code == 200, listed.text
    return list(listed.json()["data"])


def test_a_feed_made_in_a_chat_keeps_its_url_out_of_the_conversation(
    chat: TestClient, model: FakeModel, alice: Account, issued: dict[str, list[str]]
) -> None:
    model.script(call("create_calendar_feed", {}), say("Your feed is made."), say("ok"))
    answer = chat.post("/api/chat", json={"message": "a calendar feed"}, headers=alice.headers)
    assert answer.status_code == 200, answer.text
    data = answer.json()["data"]
    [feed] = _feeds(chat, alice)
    [token] = issued["calendar feed token"]
    # The feed was made; what the chat keeps and sends says so and where to get its URL.
    [made] = data["tool_calls"]
    assert (made["name"], made["outcome"]) == ("create_calendar_feed", "ok")
    result = made["result"]
    assert "url" not in result and result["feed_id"] == feed["id"]
    assert result["status"] == "created"
    assert f"/api/calendar-feeds/{feed['id']}/rotate" in result["url_withheld"]
    [sent] = tool_results(model.requests[1])
    assert sent == result
    # A later turn sends the history: the call without the URL again.
    later = chat.post(
        "/api/chat",
        json={"message": "thanks", "conversation_id": data["conversation_id"]},
        headers=alice.headers,
    )
    assert later.status_code == 200, later.text
    stored = chat.get(
        f"/api/conversations/{data['conversation_id']}/messages", headers=alice.headers
    )
    assert stored.status_code == 200
    for place in (answer.text, later.text, stored.text, json.dumps(model.requests)):
        assert token not in place and "/api/calendar/" not in place
    # ChatKit: the same.
    model.script(call("create_calendar_feed", {"kind": "todos"}), say("Made."))
    thread_id, events = new_thread(chat, alice, "a todo feed")
    assert len(_feeds(chat, alice)) == 2
    [_, second] = issued["calendar feed token"]
    page = items(chat, alice, thread_id)
    for place in (json.dumps(events), json.dumps(page), json.dumps(model.requests)):
        assert second not in place and "/api/calendar/" not in place
    assert done_items(events, "assistant_message")


@dataclass
class _Scene:
    """What the scenario left to search besides the database and the logs."""

    answers: list[str] = field(default_factory=list)  # what the API answered that may not hold one
    basic_headers: list[str] = field(default_factory=list)  # every DAV `Authorization` sent
    shown: dict[str, list[str]] = field(default_factory=dict)  # values the API showed its caller


def _scenario(chat: TestClient, model: FakeModel, alice: Account, bob: Account) -> _Scene:
    """Every door that issues a credential, and a use of each: access tokens (a sign-in's,
    used for everything alice does below, and a registration's), REST and MCP feeds
    (fetched, rotated), a feed made in a chat turn and in ChatKit (a second turn sends the
    history), an invitation (accepted), stream tickets (one used after signing out
    everywhere)."""
    scene = _Scene()
    bearers = scene.shown.setdefault("bearer access token", [])
    signed_in = chat.post(
        "/api/auth/login", json={"email": alice.email, "password": alice.password}
    )
    assert signed_in.status_code == 200, signed_in.text
    bearers.append(signed_in.json()["data"]["access_token"])
    alice = Account(alice.id, alice.email, alice.password, bearers[-1])
    alice.headers = {"Authorization": f"Bearer {bearers[-1]}"}
    carol = chat.post(
        "/api/auth/register", json={"email": "carol@example.com", "password": "password-123"}
    )
    assert carol.status_code == 201, carol.text
    bearers.append(carol.json()["data"]["access_token"])
    carol_headers = {"Authorization": f"Bearer {bearers[-1]}"}
    model.script(say("Hello."))  # the registration's token, used for a chat turn
    hello = chat.post("/api/chat", json={"message": "hello"}, headers=carol_headers)
    assert hello.status_code == 200, hello.text
    scene.answers.append(hello.text)
    feeds = scene.shown.setdefault("calendar feed token", [])
    tickets = scene.shown.setdefault("stream ticket", [])
    invited = scene.shown.setdefault("list invitation token", [])
    made_list = chat.post("/api/lists", json={"name": "Team"}, headers=alice.headers)
    assert made_list.status_code == 201, made_list.text
    list_id = made_list.json()["data"]["id"]
    invitation = chat.post(
        f"/api/lists/{list_id}/invitations",
        json={"role": "viewer", "email": bob.email},
        headers=alice.headers,
    )
    assert invitation.status_code == 201, invitation.text
    invited.append(invitation.json()["data"]["token"])
    accepted = chat.post(
        "/api/invitations/accept", json={"token": invited[-1]}, headers=bob.headers
    )
    assert accepted.status_code == 200, accepted.text
    due = {"title": "dentist", "due_date": "2030-01-01T09:00:00Z", "description": "see notes"}
    dentist = chat.post("/api/tasks", json=due, headers=alice.headers)
    assert dentist.status_code == 201, dentist.text
    _files(chat, model, alice, dentist.json()["data"]["id"], scene)
    made = chat.post("/api/calendar-feeds", json={}, headers=alice.headers)
    assert made.status_code == 201, made.text
    rest = made.json()["data"]
    feeds.append(_token_of(rest["url"]))
    assert chat.get(f"/api/calendar/{feeds[-1]}.ics").status_code == 200
    rotated = chat.post(f"/api/calendar-feeds/{rest['id']}/rotate", headers=alice.headers)
    feeds.append(_token_of(rotated.json()["data"]["url"]))
    assert chat.get(f"/api/calendar/{feeds[-1]}.ics").status_code == 200
    assert chat.get(f"/api/calendar/{feeds[0]}.ics").status_code == 404
    mcp = call_tool_rpc(chat, "/mcp", alice.token, "create_calendar_feed", {"kind": "todos"})
    feeds.append(_token_of(mcp["structuredContent"]["url"]))
    # A chat turn that makes a feed, and a later one that sends the history.
    model.script(call("create_calendar_feed", {}), say("Made it."), say("You are welcome."))
    first = chat.post("/api/chat", json={"message": "a feed please"}, headers=alice.headers)
    assert first.status_code == 200, first.text
    conversation_id = first.json()["data"]["conversation_id"]
    body = {"message": "thanks", "conversation_id": conversation_id}
    second = chat.post("/api/chat", json=body, headers=alice.headers)
    assert second.status_code == 200, second.text
    scene.answers += [first.text, second.text]
    # ChatKit, two turns too.
    model.script(call("create_calendar_feed", {"kind": "todos"}), say("Made."), say("Sure."))
    thread_id, events = new_thread(chat, alice, "a todo feed")
    more = chat.post(
        "/api/chatkit",
        json={
            "type": "threads.add_user_message",
            "params": {
                "thread_id": thread_id,
                "input": {
                    "content": [{"type": "input_text", "text": "thanks"}],
                    "attachments": [],
                    "quoted_text": None,
                    "inference_options": {"tool_choice": None, "model": None},
                },
            },
            "metadata": {},
        },
        headers=alice.headers,
    )
    assert more.status_code == 200, more.text
    scene.answers += [json.dumps(events), more.text, json.dumps(items(chat, alice, thread_id))]
    assert len(_feeds(chat, alice)) == 4
    # What the API answers about the account's history.
    for path in (
        "/api/tasks/changes",
        "/api/activity",
        "/api/conversations",
        f"/api/conversations/{conversation_id}/messages",
    ):
        answer = chat.get(path, headers=alice.headers)
        assert answer.status_code == 200, (path, answer.text)
        scene.answers.append(answer.text)
    # App passwords: used over DAV (discovery, a list's collection), a wrong one tried, one
    # revoked and tried, one ended by signing out everywhere below.
    passwords = scene.shown.setdefault("app password", [])
    made_passwords = []
    for name in ("phone", "laptop"):
        created = chat.post("/api/app-passwords", json={"name": name}, headers=alice.headers)
        assert created.status_code == 201, created.text
        made_passwords.append(created.json()["data"])
        # What `secrets` made: the password without its `tapw_` prefix.
        passwords.append(made_passwords[-1]["password"].removeprefix("tapw_"))
    phone, laptop = made_passwords
    wrong = "tapw_" + "w" * 43
    for password, path, status in (
        (phone["password"], "/dav/", 207),
        (phone["password"], "/dav/calendars/", 207),
        (phone["password"], f"/dav/calendars/{list_id}/", 207),
        (wrong, "/dav/", 401),
        (laptop["password"], "/dav/", 207),
    ):
        header = _basic(phone["username"], password)
        scene.basic_headers.append(header)
        answer = chat.request("PROPFIND", path, headers={"Authorization": header, "Depth": "1"})
        assert answer.status_code == status, (path, answer.text)
        scene.answers.append(answer.text)
    revoked = chat.delete(f"/api/app-passwords/{laptop['id']}", headers=alice.headers)
    assert revoked.status_code == 204
    header = _basic(laptop["username"], laptop["password"])
    assert chat.request("PROPFIND", "/dav/", headers={"Authorization": header}).status_code == 401
    listed = chat.get("/api/app-passwords", headers=alice.headers)
    scene.answers.append(listed.text)
    # Stream tickets: one left unused, one used after signing out everywhere (refused).
    for _ in range(2):
        ticket = chat.post("/api/changes/stream/tickets", headers=alice.headers)
        assert ticket.status_code == 201, ticket.text
        tickets.append(ticket.json()["data"]["ticket"])
    assert chat.post("/api/auth/logout-all", headers=alice.headers).status_code == 204
    refused = chat.get("/api/changes/stream", params={"ticket": tickets[-1]})
    assert refused.status_code == 401
    assert chat.get(f"/api/calendar/{feeds[-1]}.ics").status_code == 404
    ended = chat.request("PROPFIND", "/dav/", headers={"Authorization": scene.basic_headers[0]})
    assert ended.status_code == 401
    return scene


def _files(chat: TestClient, model: FakeModel, alice: Account, task: int, scene: _Scene) -> None:
    """A file on S3, downloaded by the redirect (a link used), listed over MCP (a link the
    caller's client holds) and by a chat turn (a link made and withheld)."""
    links = scene.shown.setdefault("download link", [])
    data = b"%PDF-1.7\n% the dentist's letter\n"
    path = f"/api/tasks/{task}/attachments"
    added = chat.post(path, files={"file": ("letter.pdf", data)}, headers=alice.headers)
    assert added.status_code == 201, added.text
    scene.answers.append(added.text)
    path = f"{path}/{added.json()['data']['id']}/download"
    redirect = chat.get(path, headers=alice.headers, follow_redirects=False)
    assert redirect.status_code == 302, redirect.text
    links.append(_signature_of(redirect.headers["location"]))
    # Used (urllib: no logger of its own writes the URL into the logs searched below).
    with urllib.request.urlopen(redirect.headers["location"]) as used:  # noqa: S310
        assert used.read() == data
    listed = call_tool_rpc(chat, "/mcp", alice.token, "list_attachments", {"task_id": task})
    [link] = listed["structuredContent"]["attachments"]
    links.append(_signature_of(link["download_url"]))
    model.script(call("list_attachments", {"task_id": task}), say("One file: letter.pdf."))
    turn = chat.post("/api/chat", json={"message": "which files?"}, headers=alice.headers)
    assert turn.status_code == 200, turn.text
    [made] = turn.json()["data"]["tool_calls"]
    [kept] = made["result"]["attachments"]
    assert "download_url" not in kept and path in kept["download_url_withheld"]
    scene.answers.append(turn.text)


def _basic(username: str, password: str) -> str:
    return "Basic " + b64encode(f"{username}:{password}".encode()).decode()


def _database(engine: Engine) -> dict[str, str]:
    """Every table of the database, each as the text of its rows."""
    with engine.connect() as conn:
        names = conn.execute(
            text("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
        ).scalars()
        return {
            f"table {name}": "\n".join(
                conn.execute(text(f'SELECT t::text FROM "{name}" AS t')).scalars()
            )
            for name in names
        }


def _server_logs(records: list[logging.LogRecord]) -> str:
    """Every line the server logged, with its fields (the test's own HTTP client logs the
    URLs it requested: `httpx` lines about `testserver` are the test's, not the server's)."""
    lines = []
    for record in records:
        message = record.getMessage()
        if record.name.startswith("httpx") and "http://testserver" in message:
            continue
        lines.append(f"{record.name} {record.levelname} {message} {record.__dict__}")
    return "\n".join(lines)


def test_no_credential_the_api_issues_is_found_where_it_does_not_belong(
    chat_app: Any,
    radosgw_server: Radosgw,  # noqa: F811
    model: FakeModel,
    alice: Account,
    bob: Account,
    setup_engine: Engine,
    issued: dict[str, list[str]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)  # INFO and DEBUG: every line any logger writes
    chat = chat_app(
        s3_bucket=BUCKET,
        s3_endpoint_url=radosgw_server.endpoint,
        s3_region=radosgw_server.region,
        s3_access_key_id=radosgw_server.access_key,
        s3_secret_access_key=radosgw_server.secret_key,
        s3_addressing_style="path",
        s3_prefix=f"chat-{secrets.token_hex(4)}/",
    )
    scene = _scenario(chat, model, alice, bob)
    # What each door showed its caller is what was recorded where it was made (so the
    # recording sees every credential), and a chat's feeds were issued though none showed.
    for name, shown in scene.shown.items():
        assert set(shown) <= set(issued[name]), name
    assert len(issued["bearer access token"]) == 2  # a sign-in's and a registration's
    assert len(issued["calendar feed token"]) == 5  # REST, its rotation, MCP, chat, ChatKit
    assert len(issued["stream ticket"]) == 2
    assert len(issued["list invitation token"]) == 1
    assert len(issued["app password"]) == 2
    assert len(issued["download link"]) == 3  # the redirect's, MCP's, the chat's (withheld)
    places: dict[str, str] = {
        "logs (DEBUG and INFO)": _server_logs(caplog.records),
        "the model's requests": json.dumps(model.requests),
        **{f"answer {index}": answer for index, answer in enumerate(scene.answers)},
        **_database(setup_engine),
    }
    assert {"table messages", "table task_events", "table chatkit_items"} <= set(places), sorted(
        places
    )
    found = {
        f"{credential.name} #{index}": [place for place, held in places.items() if value in held]
        for credential in CREDENTIALS
        for index, value in enumerate(issued[credential.name])
    }
    for index, header in enumerate(scene.basic_headers):
        secret = header.removeprefix("Basic ")
        found[f"Basic header #{index}"] = [p for p, held in places.items() if secret in held]
    assert len(scene.basic_headers) == 5
    assert {name: where for name, where in found.items() if where} == {}


def _store_as_before(engine: Engine, conversation_id: int, url: str) -> None:
    """Set-up: the conversation's feed call as the code before issue 61 stored it (its result
    with the URL), written directly."""
    with engine.begin() as conn:
        changed = conn.execute(
            text(
                "UPDATE messages SET tool_calls = jsonb_set(tool_calls, '{0,result}', "
                "(tool_calls #> '{0,result}') - 'url_withheld' || jsonb_build_object('url', "
                "CAST(:url AS text))) WHERE conversation_id = :conversation AND role = 'assistant'"
            ),
            {"url": url, "conversation": conversation_id},
        )
        assert changed.rowcount == 1


def test_a_feed_url_stored_before_it_was_withheld_is_withheld_wherever_it_is_read(
    chat: TestClient,
    model: FakeModel,
    alice: Account,
    setup_engine: Engine,
    issued: dict[str, list[str]],
) -> None:
    """A conversation stored before issue 61's fix keeps the feed's URL in its stored call: a
    later turn sends the model the history without it, the listing shows none (review F1)."""
    model.script(call("create_calendar_feed", {}), say("Made."), say("You are welcome."))
    first = chat.post("/api/chat", json={"message": "a calendar feed"}, headers=alice.headers)
    assert first.status_code == 200, first.text
    conversation = first.json()["data"]["conversation_id"]
    [feed] = _feeds(chat, alice)
    [token] = issued["calendar feed token"]
    _store_as_before(setup_engine, conversation, f"http://testserver/api/calendar/{token}.ics")
    later = chat.post(
        "/api/chat",
        json={"message": "thanks", "conversation_id": conversation},
        headers=alice.headers,
    )
    assert later.status_code == 200, later.text
    listed = chat.get(f"/api/conversations/{conversation}/messages", headers=alice.headers)
    assert listed.status_code == 200, listed.text
    sent = json.dumps(model.requests[-1])
    for place in (sent, later.text, listed.text):
        assert token not in place and "/api/calendar/" not in place
    [made] = next(m for m in listed.json()["data"] if m["tool_calls"])["tool_calls"]
    assert f"/api/calendar-feeds/{feed['id']}/rotate" in made["result"]["url_withheld"]
    assert tool_results(model.requests[-1]) == [made["result"]]


def test_a_retry_replays_an_earlier_feed_call_without_its_stored_url(
    chat: TestClient,
    model: FakeModel,
    alice: Account,
    setup_engine: Engine,
    issued: dict[str, list[str]],
) -> None:
    """A failed turn's committed feed call, stored with its URL before issue 61's fix: its
    keyed retry replays the call (the ledger), sends it to the model and stores it again,
    each without the URL (review F1)."""
    headers = {**alice.headers, "Idempotency-Key": "feed-turn"}
    body = {"message": "a calendar feed"}
    model.script(call("create_calendar_feed", {}), fail(400))
    failed = chat.post("/api/chat", json=body, headers=headers)
    assert failed.status_code == 502, failed.text
    conversation = int(failed.json()["error"]["details"][0]["message"])
    [token] = issued["calendar feed token"]
    _store_as_before(setup_engine, conversation, f"/api/calendar/{token}.ics")
    model.script(call("create_calendar_feed", {}), say("Made."))
    retried = chat.post("/api/chat", json=body, headers=headers)
    assert retried.status_code == 200, retried.text
    assert len(_feeds(chat, alice)) == 1  # replayed, not run again
    listed = chat.get(f"/api/conversations/{conversation}/messages", headers=alice.headers)
    with setup_engine.connect() as conn:
        stored = conn.execute(
            text("SELECT tool_calls::text FROM messages WHERE conversation_id = :c"),
            {"c": conversation},
        ).scalars()
        kept = "\n".join(value or "" for value in stored)
    for place in (json.dumps(model.requests[2:]), retried.text, listed.text, kept):
        assert token not in place and "/api/calendar/" not in place
