"""Email reminders (issue 72) against a real SMTP server on loopback (aiosmtpd): the address
confirmed by its link first, the reminder's headers and both bodies, one-click unsubscribe
(RFC 8058) and a forged link, hostile titles, the SMTP server down then back."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from datetime import datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from types import SimpleNamespace
from typing import Any, cast
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import httpx
import pytest
from aiosmtpd.controller import Controller
from fastapi.testclient import TestClient
from jose import jwt
from sqlalchemy import Engine, text

from backend.auth.tokens import issue_token
from backend.config import Settings
from backend.events.bounds import HttpClient
from backend.events.deliveries import reminder_lane
from backend.events.engine import Lane
from backend.events.health import WorkerMetrics
from backend.events.mail import reminder_message
from backend.main import create_app
from scripts.bench.reminder_peers import Inbox
from tests.cli.helpers import run_cli
from tests.conftest import Account, count_rows
from tests.reminders.test_push_delivery import drain, event_of, make_due, task_with_reminder


def _port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


PORT = _port()


def serve(inbox: Inbox) -> Controller:
    controller = Controller(inbox, hostname="127.0.0.1", port=PORT)
    controller.start()
    return controller


@pytest.fixture(scope="module")
def mail_settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={
            "smtp_host": "127.0.0.1",
            "smtp_port": PORT,
            "smtp_security": "none",
            "smtp_from": "Tasks <reminders@example.com>",
            "smtp_timeout_seconds": 5.0,
            "public_url": "https://tasks.example.com",
            "reminder_task_url_template": "https://app.example.com/tasks/{task_id}",
            "event_retry_base_seconds": 0.01,
            "event_retry_max_seconds": 0.02,
        }
    )


@pytest.fixture(scope="module")
def mail_client(mail_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(mail_settings)) as client:
        yield client


@pytest.fixture
def inbox() -> Iterator[Inbox]:
    box = Inbox()
    controller = serve(box)
    try:
        yield box
    finally:
        controller.stop()


@pytest.fixture
def notifier(db_engine: Engine, mail_settings: Settings) -> Iterator[Lane]:
    with ThreadPoolExecutor(4) as pool, closing(HttpClient(5.0)) as http:
        yield reminder_lane(db_engine, mail_settings, WorkerMetrics(), pool, http, parallel=4)


def local(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def body(message: EmailMessage, subtype: str) -> str:
    part = message.get_body(preferencelist=(subtype,))
    assert part is not None
    return str(part.get_content())


def mailed(client: TestClient) -> None:
    """The events worker's part: the confirmations the PATCHes queued (and any due reminder
    email) sent, until none is pending."""
    app: Any = client.app
    engine, settings = app.state.engine, app.state.settings
    with ThreadPoolExecutor(4) as pool, closing(HttpClient(5.0)) as http:
        drain(reminder_lane(engine, settings, WorkerMetrics(), pool, http, parallel=4), engine)


def confirm(client: TestClient, who: Account, inbox: Inbox, address: str) -> None:
    answer = client.patch(
        "/api/notification-settings",
        json={"email_address": address, "time_zone": "Asia/Tokyo"},
        headers=who.headers,
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["data"]["email_confirmed"] is False
    mailed(client)
    [mail] = inbox.messages[-1:]
    assert mail["To"] == address and "Confirm" in mail["Subject"]
    link = next(w for w in body(mail, "plain").split() if "/confirm?" in w)
    assert link.startswith("https://tasks.example.com/api/notification-settings/confirm?")
    opened = client.get(local(link))  # no bearer token: the link is the credential
    assert opened.status_code == 200, opened.text
    assert opened.json()["data"] == {"email_address": address, "email_confirmed": True}


def test_an_address_is_confirmed_by_its_link_and_the_token_is_stored_hashed(
    mail_client: TestClient, alice: Account, inbox: Inbox, setup_engine: Engine
) -> None:
    confirm(mail_client, alice, inbox, "ada@example.com")
    settings = mail_client.get("/api/notification-settings", headers=alice.headers).json()
    assert settings["data"] == {
        "push": True,
        "email": True,
        "email_address": "ada@example.com",
        "email_confirmed": True,
        "time_zone": "Asia/Tokyo",
        "quiet_hours": None,
    }
    link = next(w for w in body(inbox.messages[0], "plain").split() if "/confirm?" in w)
    token = link.rsplit("token=", 1)[1]
    with setup_engine.connect() as conn:
        stored = conn.execute(text("SELECT n::text FROM notification_settings AS n")).scalar_one()
    assert token not in stored
    # Opened again (a second click, a scanner's HEAD): the same answer, nothing changed; and
    # once email is turned off, the old link does not turn it back on.
    assert mail_client.head(local(link)).status_code == 200
    off = {"email": False}
    turned = mail_client.patch("/api/notification-settings", json=off, headers=alice.headers)
    assert turned.status_code == 200, turned.text
    again = mail_client.get(local(link))
    assert again.json()["data"] == {"email_address": "ada@example.com", "email_confirmed": True}
    now = mail_client.get("/api/notification-settings", headers=alice.headers).json()["data"]
    assert (now["email"], now["email_confirmed"]) == (False, True)


def test_email_on_needs_a_confirmed_address_and_a_bad_link_changes_nothing(
    mail_client: TestClient, alice: Account, inbox: Inbox, setup_engine: Engine
) -> None:
    refused = mail_client.patch(
        "/api/notification-settings", json={"email": True}, headers=alice.headers
    )
    assert refused.status_code == 422 and refused.json()["error"]["code"] == "VALIDATION_ERROR"
    assert count_rows(setup_engine, "notification_settings") == 0
    mail_client.patch(
        "/api/notification-settings", json={"email_address": "x@example.com"}, headers=alice.headers
    )
    again = mail_client.patch(
        "/api/notification-settings",
        json={"email": True, "push": False},
        headers=alice.headers,
    )
    assert again.status_code == 422
    forged = mail_client.get(
        "/api/notification-settings/confirm",
        params={"user": alice.id, "token": "A" * 43},
    )
    assert forged.status_code == 404 and forged.json()["error"]["code"] == "NOT_FOUND"
    now = mail_client.get("/api/notification-settings", headers=alice.headers).json()["data"]
    assert (now["push"], now["email"], now["email_confirmed"]) == (True, False, False)


def test_a_reminder_email_with_its_headers_bodies_and_one_click_unsubscribe(
    mail_client: TestClient,
    alice: Account,
    bob: Account,
    inbox: Inbox,
    notifier: Lane,
    db_engine: Engine,
    mail_settings: Settings,
) -> None:
    confirm(mail_client, alice, inbox, "ada@example.com")
    inbox.messages.clear()
    title = 'Pay <script>alert("x")</script> & rent'
    task = task_with_reminder(mail_client, alice, title, time_zone="Europe/Berlin")
    assert make_due(db_engine, mail_settings) == 1
    drain(notifier, db_engine)
    [mail] = inbox.messages
    with db_engine.connect() as conn:
        event = conn.execute(
            text("SELECT event_id, task FROM task_events WHERE type = 'reminder'")
        ).one()
    assert mail["Subject"] == f"Reminder: {title}"
    assert mail["Message-ID"] == f"<reminder-{event.event_id}@example.com>"
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    unsubscribe = mail["List-Unsubscribe"].strip("<>")
    assert unsubscribe.startswith("https://tasks.example.com/api/notification-settings/unsub")
    due = datetime.fromisoformat(event.task["due_at"].replace("Z", "+00:00"))
    tokyo = f"{due.astimezone(ZoneInfo('Asia/Tokyo')):%a %d %b %Y, %H:%M}"
    plain, html = body(mail, "plain"), body(mail, "html")
    assert title in plain and f"{tokyo} (Asia/Tokyo)" in plain
    assert f"https://app.example.com/tasks/{task['id']}" in plain
    assert "<script>" not in html and "&lt;script&gt;alert(&quot;x&quot;)" in html
    assert f'href="https://app.example.com/tasks/{task["id"]}"' in html

    # A forged or another person's link: 404, nothing changed.
    forged = unsubscribe.replace(alice.id, bob.id)
    for url in (forged, unsubscribe[:-4] + "0000"):
        answer = mail_client.post(local(url), content=b"List-Unsubscribe=One-Click")
        assert answer.status_code in (404, 422), answer.text
    on = mail_client.get("/api/notification-settings", headers=alice.headers).json()["data"]
    assert on["email"] is True
    # The mail client's one-click POST (no bearer token): email reminders off.
    answer = mail_client.post(
        local(unsubscribe),
        content=b"List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert answer.status_code == 204, answer.text
    off = mail_client.get("/api/notification-settings", headers=alice.headers).json()["data"]
    assert off["email"] is False and off["email_confirmed"] is True


def test_the_smtp_server_down_then_back_loses_nothing(
    mail_client: TestClient,
    alice: Account,
    notifier: Lane,
    db_engine: Engine,
    mail_settings: Settings,
) -> None:
    box = Inbox()
    controller = serve(box)
    try:
        confirm(mail_client, alice, box, "ada@example.com")
    finally:
        controller.stop()
    box.messages.clear()
    task_with_reminder(mail_client, alice, "While down")
    assert make_due(db_engine, mail_settings) == 1
    notifier.run()  # nobody listens on the port: a failed attempt, kept for a retry
    with db_engine.connect() as conn:
        row = conn.execute(
            text("SELECT state, attempts, last_error FROM reminder_deliveries")
        ).one()
    assert (row.state, row.attempts) == ("pending", 1)
    assert row.last_error.startswith("email: ")
    controller = serve(box)
    try:
        drain(notifier, db_engine)
    finally:
        controller.stop()
    assert [m["Subject"] for m in box.messages] == ["Reminder: While down"]
    assert count_rows(db_engine, "reminder_deliveries") == 0


def test_hostile_titles_cannot_add_headers(mail_settings: Settings) -> None:
    row = SimpleNamespace(
        payload={
            "title": "Rent\r\nBcc: evil@example.com\r\n\r\n<b>x</b>\u2028Subject: y",
            "due_at": "2026-11-27T10:00:00.000000Z",
            "late": False,
        },
        recipient_time_zone=None,
        task_time_zone="UTC",
        task_id=7,
        user_id="u1",
        event_id="5d1c0e9a-7b0f-4f43-a0c2-3a9f1b2e6c11",
        email_address="ada@example.com",
    )
    message = reminder_message(mail_settings, row)
    raw = message.as_bytes()
    parsed = message_from_bytes(raw, policy=policy.default)
    assert parsed["Bcc"] is None and parsed.get_all("Subject") == [
        "Reminder: Rent  Bcc: evil@example.com    <b>x</b> Subject: y"
    ]
    assert "&lt;b&gt;x&lt;/b&gt;" in body(cast(EmailMessage, parsed), "html")


def _provider_token(settings: Settings, subject: str, **claims: Any) -> dict[str, str]:
    """An identity provider's token (not the built-in issuer's) carrying `claims`."""
    base = jwt.get_unverified_claims(issue_token(subject, settings, local=False))
    signed = jwt.encode({**base, **claims}, settings.signing_secret(), algorithm="HS256")
    return {"Authorization": f"Bearer {signed}"}


def test_an_identity_providers_email_counts_as_confirmed_only_where_it_says_verified(
    mail_client: TestClient,
    inbox: Inbox,
    notifier: Lane,
    db_engine: Engine,
    mail_settings: Settings,
) -> None:
    verified = _provider_token(
        mail_settings, "idp-ida", email="ida@example.com", email_verified=True
    )
    answer = mail_client.patch(
        "/api/notification-settings", json={"email_address": "Ida@Example.com"}, headers=verified
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["data"] == {
        "push": True,
        "email": True,
        "email_address": "ida@example.com",
        "email_confirmed": True,
        "time_zone": None,
        "quiet_hours": None,
    }
    mailed(mail_client)
    assert inbox.messages == []  # no link to open: the provider's word confirmed it
    who = Account("idp-ida", "ida@example.com", "", "", verified)
    task_with_reminder(mail_client, who, "Call the bank")
    assert make_due(db_engine, mail_settings) == 1
    drain(notifier, db_engine)
    assert [(m["To"], m["Subject"]) for m in inbox.messages] == [
        ("ida@example.com", "Reminder: Call the bank")
    ]
    inbox.messages.clear()
    # Not verified (false, absent, the string "true"), or another address than the verified
    # one: unconfirmed, a link mailed, and `email: true` refused until it is opened.
    cases = [
        ("idp-ned", {"email": "ned@example.com", "email_verified": False}, "ned@example.com"),
        ("idp-ola", {"email": "ola@example.com"}, "ola@example.com"),
        ("idp-pam", {"email": "pam@example.com", "email_verified": "true"}, "pam@example.com"),
        ("idp-rex", {"email": "rex@example.com", "email_verified": True}, "rex@other.example"),
    ]
    for subject, claims, address in cases:
        headers = _provider_token(mail_settings, subject, **claims)
        answer = mail_client.patch(
            "/api/notification-settings", json={"email_address": address}, headers=headers
        )
        assert answer.status_code == 200, answer.text
        data = answer.json()["data"]
        assert (data["email_confirmed"], data["email"]) == (False, False), subject
        refused = mail_client.patch(
            "/api/notification-settings", json={"email": True}, headers=headers
        )
        assert refused.status_code == 422, subject
    mailed(mail_client)
    assert sorted(str(m["To"]) for m in inbox.messages) == sorted(a for _, _, a in cases)


def _link(inbox: Inbox, address: str) -> str:
    [mail] = [m for m in inbox.messages if m["To"] == address]
    return local(next(w for w in body(mail, "plain").split() if "/confirm?" in w))


def test_a_verified_provider_address_confirms_settings_already_stored(
    mail_client: TestClient, inbox: Inbox, mail_settings: Settings
) -> None:
    """The upsert's UPDATE branch: settings exist (the same address unconfirmed, or another
    one confirmed) when a token whose provider verified the address sends it."""
    unverified = _provider_token(mail_settings, "idp-uma", email="uma@example.com")
    verified = _provider_token(
        mail_settings, "idp-uma", email="uma@example.com", email_verified=True
    )
    path = "/api/notification-settings"
    first = mail_client.patch(path, json={"email_address": "uma@example.com"}, headers=unverified)
    assert first.status_code == 200, first.text
    assert (first.json()["data"]["email_confirmed"], first.json()["data"]["email"]) == (
        False,
        False,
    )
    mailed(mail_client)
    stale = _link(inbox, "uma@example.com")
    inbox.messages.clear()
    # The same address, now with the provider's word: confirmed, on, no second link, and
    # the first link no longer confirms anything.
    again = mail_client.patch(path, json={"email_address": "uma@example.com"}, headers=verified)
    assert again.status_code == 200, again.text
    assert again.json()["data"] == {
        "push": True,
        "email": True,
        "email_address": "uma@example.com",
        "email_confirmed": True,
        "time_zone": None,
        "quiet_hours": None,
    }
    mailed(mail_client)
    assert inbox.messages == []
    opened = mail_client.get(stale)
    assert opened.status_code == 404 and opened.json()["error"]["code"] == "NOT_FOUND"
    # Another address, confirmed by its link, email reminders then turned off; the verified
    # address sent again replaces it: confirmed and on at once, no link mailed.
    moved = mail_client.patch(path, json={"email_address": "uma@old.example"}, headers=unverified)
    assert moved.json()["data"]["email_confirmed"] is False
    mailed(mail_client)
    assert mail_client.get(_link(inbox, "uma@old.example")).status_code == 200
    off = mail_client.patch(path, json={"email": False}, headers=unverified)
    assert off.json()["data"]["email"] is False
    inbox.messages.clear()
    back = mail_client.patch(path, json={"email_address": "uma@example.com"}, headers=verified)
    assert back.status_code == 200, back.text
    assert back.json()["data"] == {
        "push": True,
        "email": True,
        "email_address": "uma@example.com",
        "email_confirmed": True,
        "time_zone": None,
        "quiet_hours": None,
    }
    mailed(mail_client)
    assert inbox.messages == []
    assert mail_client.get(path, headers=verified).json()["data"] == back.json()["data"]


class RefusingOnce(Inbox):
    """An SMTP server that answers one message's DATA with a 451 (try again later), after
    reading it: what it was sent is kept in `refused`."""

    def __init__(self) -> None:
        super().__init__()
        self.refuse_next = False
        self.refused: list[EmailMessage] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        if self.refuse_next:
            self.refuse_next = False
            parsed = message_from_bytes(envelope.original_content, policy=policy.default)
            self.refused.append(cast(EmailMessage, parsed))
            return "451 4.3.0 Try again later"
        return await super().handle_DATA(server, session, envelope)


def test_a_resend_after_a_refusal_carries_the_same_message_id(
    mail_client: TestClient,
    alice: Account,
    notifier: Lane,
    db_engine: Engine,
    mail_settings: Settings,
) -> None:
    box = RefusingOnce()
    controller = serve(box)
    try:
        confirm(mail_client, alice, box, "ada@example.com")
        box.messages.clear()
        task = task_with_reminder(mail_client, alice, "Renew the passport")
        assert make_due(db_engine, mail_settings) == 1
        box.refuse_next = True
        notifier.run()
        with db_engine.connect() as conn:
            row = conn.execute(
                text("SELECT state, attempts, last_error FROM reminder_deliveries")
            ).one()
        assert tuple(row) == ("pending", 1, "email: SMTP 451")
        drain(notifier, db_engine)
    finally:
        controller.stop()
    [refused], [sent] = box.refused, box.messages
    event_id = event_of(db_engine, task["id"]).event_id
    assert refused["Message-ID"] == sent["Message-ID"] == f"<reminder-{event_id}@example.com>"
    assert refused["Subject"] == sent["Subject"] == "Reminder: Renew the passport"
    assert count_rows(db_engine, "reminder_deliveries") == 0


class CountingSessions(Inbox):
    """Counts SMTP sessions (each opens with EHLO)."""

    def __init__(self) -> None:
        super().__init__()
        self.sessions = 0

    async def handle_EHLO(  # noqa: N802
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        self.sessions += 1
        session.host_name = hostname  # what aiosmtpd's own EHLO does, a hook must too
        return responses


def test_the_worker_keeps_its_smtp_sessions_for_the_next_messages(
    mail_client: TestClient,
    alice: Account,
    notifier: Lane,
    db_engine: Engine,
    mail_settings: Settings,
) -> None:
    box = CountingSessions()
    controller = serve(box)
    try:
        confirm(mail_client, alice, box, "ada@example.com")
        box.messages.clear()
        box.sessions = 0
        for number in range(8):
            task_with_reminder(mail_client, alice, f"Reminder {number}")
        assert make_due(db_engine, mail_settings) == 8
        drain(notifier, db_engine)
    finally:
        controller.stop()
    assert len(box.messages) == 8
    # The notifier's pool has 4 threads: each opened at most one session.
    assert 1 <= box.sessions <= 4


SETTINGS = "/api/notification-settings"


@pytest.mark.parametrize(
    "body",
    [{"push": "yes"}, {"push": 1}, {"email": "true"}, {"email": 0}, {"push": None}],
    ids=["push yes", "push 1", "email 'true'", "email 0", "push null"],
)
def test_switches_take_json_booleans_only(
    mail_client: TestClient, alice: Account, setup_engine: Engine, body: dict[str, Any]
) -> None:
    answer = mail_client.patch(SETTINGS, json=body, headers=alice.headers)
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["code"] == "VALIDATION_ERROR"
    assert count_rows(setup_engine, "notification_settings") == 0


def test_a_settings_form_turns_email_on_with_a_new_address_in_one_call(
    mail_client: TestClient,
    alice: Account,
    inbox: Inbox,
    notifier: Lane,
    db_engine: Engine,
    mail_settings: Settings,
) -> None:
    """`{"email": true, "email_address": ...}` in one PATCH: stored unconfirmed with email on;
    the address gets the confirmation and nothing else until its link is opened; an address
    changed later is unconfirmed again (email stays on) until its own link is opened."""
    both = {"email": True, "email_address": "new@example.com"}
    answer = mail_client.patch(SETTINGS, json=both, headers=alice.headers)
    assert answer.status_code == 200, answer.text
    assert answer.json()["data"] | {"time_zone": None} == {
        "push": True,
        "email": True,
        "email_address": "new@example.com",
        "email_confirmed": False,
        "time_zone": None,
        "quiet_hours": None,
    }
    mailed(mail_client)  # the events worker sends what the PATCH queued
    [confirmation] = inbox.messages
    assert confirmation["To"] == "new@example.com" and "Confirm" in confirmation["Subject"]
    task_with_reminder(mail_client, alice, "Before the link")
    assert make_due(db_engine, mail_settings) == 1
    drain(notifier, db_engine)
    assert inbox.messages == [confirmation]  # the reminder was dropped, not sent
    assert mail_client.get(local(_link(inbox, "new@example.com"))).status_code == 200
    task_with_reminder(mail_client, alice, "After the link")
    assert make_due(db_engine, mail_settings) == 1
    drain(notifier, db_engine)
    assert [m["Subject"] for m in inbox.messages[1:]] == ["Reminder: After the link"]

    inbox.messages.clear()
    moved = {"email_address": "other@example.com"}
    answer = mail_client.patch(SETTINGS, json=moved, headers=alice.headers)
    data = answer.json()["data"]
    assert (data["email"], data["email_confirmed"]) == (True, False)
    task_with_reminder(mail_client, alice, "Address changed")
    assert make_due(db_engine, mail_settings) == 1
    drain(notifier, db_engine)
    assert [m["To"] for m in inbox.messages] == ["other@example.com"]  # its confirmation only
    # `email: true` with no address at all is still refused.
    gone = mail_client.patch(SETTINGS, json={"email_address": None}, headers=alice.headers)
    assert gone.json()["data"]["email"] is False
    alone = mail_client.patch(SETTINGS, json={"email": True}, headers=alice.headers)
    assert alone.status_code == 422 and alone.json()["error"]["code"] == "VALIDATION_ERROR"


def _remaining(answer: httpx.Response, policy: str) -> int:
    """What `answer`'s `RateLimit` header says is left of `policy`."""
    for item in answer.headers["ratelimit"].split(", "):
        name, left, _ = item.split(";")
        if name == f'"{policy}"':
            return int(left.removeprefix("r="))
    raise AssertionError(f"no {policy} in {answer.headers['ratelimit']}")


def _not_at_the_hour() -> None:
    """The bounds are clock hours: a test that counts them does not straddle one's end."""
    to_boundary = 3600 - time.time() % 3600
    if to_boundary < 30:
        time.sleep(to_boundary + 1)


def test_confirmation_mails_are_bounded_per_account_and_per_address(
    mail_client: TestClient, alice: Account, bob: Account, inbox: Inbox, setup_engine: Engine
) -> None:
    """Each PATCH that sends an address counts against an hour's bound per account (5 by
    default) and, when that admits it, per address (three accounts' worth); over either: 429
    with `Retry-After`, nothing stored, no mail."""
    _not_at_the_hour()
    limit = mail_client.app.state.settings.rate_limit_confirmation_mails_per_hour
    for n in range(limit):
        body = {"email_address": "target@example.com"}
        answer = mail_client.patch(SETTINGS, json=body, headers=alice.headers)
        assert answer.status_code == 200, answer.text
        assert _remaining(answer, "confirmation-mail-address") == 3 * limit - n - 1
        mailed(mail_client)  # each link its mail (a later PATCH's replaces an unsent one)
    assert len(inbox.messages) == limit
    over = mail_client.patch(
        SETTINGS, json={"email_address": "target@example.com"}, headers=alice.headers
    )
    assert over.status_code == 429, over.text
    assert over.json()["error"]["code"] == "RATE_LIMITED"
    assert 0 < int(over.headers["retry-after"]) <= 3600
    # Another address from the same account: the account's bound.
    other = mail_client.patch(
        SETTINGS, json={"email_address": "else@example.com"}, headers=alice.headers
    )
    assert other.status_code == 429
    mailed(mail_client)
    assert len(inbox.messages) == limit
    with setup_engine.connect() as conn:
        stored = conn.execute(text("SELECT email_address FROM notification_settings")).all()
    assert stored == [("target@example.com",)]
    # A PATCH that sends no address is not counted.
    push = mail_client.patch(SETTINGS, json={"push": False}, headers=alice.headers)
    assert push.status_code == 200


def test_a_stranger_cannot_lock_the_owner_out_of_confirming(
    mail_client: TestClient, alice: Account, bob: Account, inbox: Inbox
) -> None:
    """Issue 90: bob sends alice's address until refused, and on; her own request is still
    answered and mailed (his refused requests never count against the address, and what his
    account's bound admits is a third of the address's)."""
    _not_at_the_hour()
    limit = mail_client.app.state.settings.rate_limit_confirmation_mails_per_hour
    codes = [
        mail_client.patch(
            SETTINGS, json={"email_address": "Alice@Example.com"}, headers=bob.headers
        ).status_code
        for _ in range(3 * limit + 2)
    ]
    assert codes == [200] * limit + [429] * (2 * limit + 2)
    own = mail_client.patch(
        SETTINGS, json={"email_address": "alice@example.com"}, headers=alice.headers
    )
    assert own.status_code == 200, own.text
    assert _remaining(own, "confirmation-mail-address") == 2 * limit - 1
    mailed(mail_client)
    assert [m["To"] for m in inbox.messages][-1] == "alice@example.com"


def test_the_forms_of_one_mailbox_share_its_bound(
    mail_client: TestClient, alice: Account, bob: Account
) -> None:
    """A domain as Unicode or as its A-label, in any case, is one mailbox: one budget."""
    _not_at_the_hour()
    limit = mail_client.app.state.settings.rate_limit_confirmation_mails_per_hour
    forms = [
        ("ada@b\u00fccher.example", alice),
        ("ada@xn--bcher-kva.example", bob),
        ("ADA@B\u00dcCHER.EXAMPLE", alice),
        ("Ada@XN--BCHER-KVA.Example", bob),
    ]
    for n, (address, account) in enumerate(forms):
        answer = mail_client.patch(
            SETTINGS, json={"email_address": address}, headers=account.headers
        )
        assert answer.status_code == 200, answer.text
        assert _remaining(answer, "confirmation-mail-address") == 3 * limit - n - 1, address


def test_an_internationalized_address_is_mailed_where_the_server_takes_it(
    mail_client: TestClient,
    alice: Account,
    bob: Account,
    notifier: Lane,
    db_engine: Engine,
    mail_settings: Settings,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """`ü@example.com` (a non-ASCII local part) is accepted and stored: a server offering
    SMTPUTF8 gets the confirmation and the reminders; one without it gets nothing (the
    address stays unconfirmed, a WARNING without the address, never a 500). A non-ASCII
    domain goes as its A-label, which any server takes."""
    plain = Inbox()
    controller = Controller(plain, hostname="127.0.0.1", port=PORT, enable_SMTPUTF8=False)
    controller.start()
    try:
        with caplog.at_level("WARNING"):
            answer = mail_client.patch(
                SETTINGS, json={"email_address": "ü@example.com"}, headers=alice.headers
            )
            mailed(mail_client)  # refused for good: dead at once, by the SMTP code only
        assert answer.status_code == 200, answer.text
        assert answer.json()["data"]["email_confirmed"] is False
        assert plain.messages == []
        assert "internationalized" in caplog.text and "ü@" not in caplog.text
        idn = mail_client.patch(
            SETTINGS, json={"email_address": "bo@bücher.example"}, headers=bob.headers
        )
        assert idn.status_code == 200, idn.text
        mailed(mail_client)
        assert idn.json()["data"]["email_address"] == "bo@bücher.example"
        assert plain.recipients == [["bo@xn--bcher-kva.example"]]
    finally:
        controller.stop()
    box = Inbox()
    controller = Controller(box, hostname="127.0.0.1", port=PORT, enable_SMTPUTF8=True)
    controller.start()
    try:
        confirm(mail_client, alice, box, "ü@example.com")
        assert box.recipients == [["ü@example.com"]]
        box.messages.clear()
        task_with_reminder(mail_client, alice, "Grüße")
        assert make_due(db_engine, mail_settings) == 1
        drain(notifier, db_engine)
        [mail] = box.messages
        assert (mail["To"], mail["Subject"]) == ("ü@example.com", "Reminder: Grüße")
        assert "Grüße" in body(mail, "plain")
    finally:
        controller.stop()


CONFIRM = "/api/notification-settings/confirm"
UNSUBSCRIBE = "/api/notification-settings/unsubscribe"


@pytest.mark.parametrize(
    "query",
    [
        "user=a%00b&token=" + "A" * 43,
        "user=%00&token=" + "A" * 43,
        "user=" + "u" * 256 + "&token=" + "A" * 43,
        "user=" + "u" * 10_000 + "&token=" + "A" * 43,
        "user=someone&token=" + "A" * 42,
        "user=someone&token=" + "A" * 42 + "%00",
        "user=someone&token=" + "A" * 10_000,
        "user=someone&token=" + "%FF" * 43,
        "user=%FF%FE&token=" + "A" * 43,
        "user=&token=" + "A" * 43,
        "token=" + "A" * 43,
        "user=a&user=b&token=" + "A" * 43,
    ],
    ids=lambda q: q[:40],
)
def test_a_malformed_link_is_a_4xx_envelope_never_a_500(
    mail_client: TestClient, caplog: pytest.LogCaptureFixture, query: str
) -> None:
    with caplog.at_level("WARNING"):
        opened = mail_client.get(f"{CONFIRM}?{query}")
        posted = mail_client.post(f"{UNSUBSCRIBE}?{query.replace('A' * 42, '0' * 63)}")
    for answer in (opened, posted):
        assert 400 <= answer.status_code < 500, answer.text
        assert answer.json()["error"]["code"] in ("VALIDATION_ERROR", "NOT_FOUND")
    assert not [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")]


def test_the_links_are_rate_limited_per_client(mail_client: TestClient) -> None:
    """Opening a mail's link (either) counts per client address, as sign-in does: past the
    bound, 429 with `Retry-After`, whatever the link."""
    limit = mail_client.app.state.settings.rate_limit_mail_links_per_ip
    for n in range(limit):
        path = CONFIRM if n % 2 else UNSUBSCRIBE
        token = "A" * 43 if n % 2 else "0" * 64
        answer = (mail_client.get if n % 2 else mail_client.post)(
            f"{path}?user=someone&token={token}"
        )
        assert answer.status_code == 404, answer.text
        assert answer.headers["ratelimit"].startswith('"mail-link-ip";r=')
    over = mail_client.get(f"{CONFIRM}?user=someone&token={'A' * 43}")
    assert over.status_code == 429 and over.json()["error"]["code"] == "RATE_LIMITED"
    assert int(over.headers["retry-after"]) > 0
    again = mail_client.post(f"{UNSUBSCRIBE}?user=someone&token={'0' * 64}")
    assert again.status_code == 429


def test_a_confirmation_is_retried_while_the_smtp_server_is_down_then_sent_once(
    mail_client: TestClient,
    alice: Account,
    db_engine: Engine,
    mail_settings: Settings,
    database_url: str,
) -> None:
    """The PATCH's 200 means the confirmation is queued (its own statement): with no SMTP
    server listening it is a failed attempt kept for a retry, and once the server is back
    one message is accepted, its link good."""
    address = "late@example.com"
    answer = mail_client.patch(SETTINGS, json={"email_address": address}, headers=alice.headers)
    assert answer.status_code == 200, answer.text
    with ThreadPoolExecutor(4) as pool, closing(HttpClient(5.0)) as http:
        notifier = reminder_lane(db_engine, mail_settings, WorkerMetrics(), pool, http, parallel=4)
        for _ in range(2):  # nobody listens on the port: failed attempts, kept
            with db_engine.begin() as conn:
                conn.execute(text("UPDATE reminder_deliveries SET next_attempt_at = now()"))
            notifier.run()
        with db_engine.connect() as conn:
            row = conn.execute(
                text("SELECT channel, state, attempts, last_error FROM reminder_deliveries")
            ).one()
        assert row[:3] == ("confirm", "pending", 2) and row.last_error.startswith("email: ")
        status = run_cli("events", "status", "--max-lag", "3600", DATABASE_URL=database_url)
        assert "reminder deliveries: pending 1, dead 0" in status.stdout, status.stderr
        box = Inbox()
        controller = serve(box)
        try:
            drain(notifier, db_engine)
        finally:
            controller.stop()
    [mail] = box.messages
    assert mail["To"] == address and "Confirm" in mail["Subject"]
    assert mail["Message-ID"].startswith("<confirm-")
    assert count_rows(db_engine, "reminder_deliveries") == 0
    link = next(w for w in body(mail, "plain").split() if "/confirm?" in w)
    opened = mail_client.get(local(link))
    assert opened.status_code == 200, opened.text
    assert opened.json()["data"] == {"email_address": address, "email_confirmed": True}
