"""The credentials of reminders that reach a person (issue 72) stay where they belong: a
subscription's keys (`p256dh`, `auth`: only in `push_subscriptions`), the VAPID private key,
the SMTP password, an address's confirmation token (only in the mail; its hash in the
database) and the one-click unsubscribe token (only in the mail) are searched for, after a
whole scenario (subscribe, confirm, a reminder pushed and mailed, unsubscribe), in every log
line (DEBUG and INFO), every table, every answer: 0 hits. The scan of the API's other
credentials (tokens, feeds, tickets, app passwords, download links) is tests/chat/
test_credentials.py; this is its part for the credentials this issue adds."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import Engine

from backend.config import Settings, new_vapid_key
from backend.events.bounds import HttpClient
from backend.events.deliveries import reminder_lane
from backend.events.health import WorkerMetrics
from backend.main import create_app
from backend.services.delivery.notification_settings import unsubscribe_token
from scripts.bench.reminder_peers import PushReceiver
from tests.chat.test_credentials import _database, _server_logs
from tests.conftest import Account
from tests.reminders.test_push_delivery import drain, make_due, subscribe, task_with_reminder
from tests.reminders.test_reminder_email import PORT, Inbox, body, local

SMTP_PASSWORD = "smtp-pass-Zq7XfR2kLm9"
VAPID_KEY = new_vapid_key()


def _authenticate(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> Any:
    ok = getattr(data, "password", b"") == SMTP_PASSWORD.encode()
    return AuthResult(success=ok)


@pytest.fixture
def both(settings: Settings) -> Settings:
    return settings.model_copy(
        update={
            "push_allow_loopback": True,
            "vapid_private_key": SecretStr(VAPID_KEY),
            "vapid_subject": "mailto:ops@example.com",
            "smtp_host": "127.0.0.1",
            "smtp_port": PORT,
            "smtp_security": "none",
            "smtp_username": "relay",
            "smtp_password": SecretStr(SMTP_PASSWORD),
            "smtp_from": "Tasks <reminders@example.com>",
            "public_url": "https://tasks.example.com",
        }
    )


@pytest.fixture
def inbox() -> Iterator[Inbox]:
    box = Inbox()
    controller = Controller(
        box,
        hostname="127.0.0.1",
        port=PORT,
        authenticator=_authenticate,
        auth_require_tls=False,
    )
    controller.start()
    try:
        yield box
    finally:
        controller.stop()


def test_no_reminder_credential_is_found_where_it_does_not_belong(
    both: Settings,
    alice: Account,
    inbox: Inbox,
    db_engine: Engine,
    setup_engine: Engine,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    answers: list[str] = []
    with (
        TestClient(create_app(both)) as client,
        ThreadPoolExecutor(4) as pool,
        closing(HttpClient(5.0)) as http,
    ):
        key = client.get("/api/push/public-key").json()["data"]["public_key"]
        with PushReceiver(key, {}) as peer:
            browser = subscribe(client, alice, peer, "/push/phone")
            answers.append(client.get("/api/push-subscriptions", headers=alice.headers).text)
            set_address = client.patch(
                "/api/notification-settings",
                json={"email_address": "ada@example.com"},
                headers=alice.headers,
            )
            answers.append(set_address.text)
            notifier = reminder_lane(db_engine, both, WorkerMetrics(), pool, http, parallel=4)
            drain(notifier, db_engine)  # the confirmation the PATCH queued (never its token)
            [confirmation] = inbox.messages
            link = next(w for w in body(confirmation, "plain").split() if "/confirm?" in w)
            confirm_token = link.rsplit("token=", 1)[1]
            answers.append(client.get(local(link)).text)
            task_with_reminder(client, alice, "Renew the passport")
            assert make_due(db_engine, both) == 1
            drain(notifier, db_engine)
            assert [r.payload["title"] for r in peer.received] == ["Renew the passport"]
            [reminder] = inbox.messages[1:]
            unsubscribe = reminder["List-Unsubscribe"].strip("<>")
            used = client.post(local(unsubscribe), content=b"List-Unsubscribe=One-Click")
            assert used.status_code == 204
            answers.append(client.get("/api/notification-settings", headers=alice.headers).text)
    secrets = {
        "subscription auth secret": browser.keys["auth"],
        "subscription p256dh": browser.keys["p256dh"],
        "VAPID private key": VAPID_KEY,
        "SMTP password": SMTP_PASSWORD,
        "confirmation token": confirm_token,
        "unsubscribe token": unsubscribe_token(both, alice.id),
    }
    tables = _database(setup_engine)
    # The subscription's keys are stored where the worker reads them, and nowhere else.
    kept = tables.pop("table push_subscriptions")
    assert browser.keys["auth"] in kept
    # aiosmtpd's own `mail.log` lines are the receiving server's: they read the message, where
    # the links belong.
    ours = [r for r in caplog.records if not r.name.startswith("mail.log")]
    places = {"logs (DEBUG and INFO)": _server_logs(ours), **tables}
    places |= {f"answer {index}": text for index, text in enumerate(answers)}
    assert {"table task_events", "table reminder_deliveries", "table notification_settings"} <= set(
        places
    )
    found = {
        name: [place for place, held in places.items() if value in held]
        for name, value in secrets.items()
    }
    assert {name: where for name, where in found.items() if where} == {}
