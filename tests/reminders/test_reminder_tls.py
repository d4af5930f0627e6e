"""Email reminders over TLS (issue 72): the worker's mail sender against a real SMTP server
(aiosmtpd) on loopback with a certificate made here, by implicit TLS (`SMTP_SECURITY=tls`, as
on port 465) and by STARTTLS (`starttls`, as on 587, the server refusing anything before it
and AUTH outside it). The server's certificate is verified as any other: trusted here by
`SSL_CERT_FILE` (OpenSSL's default trust store), and refused, nothing sent, where it is not."""

from __future__ import annotations

import ipaddress
import ssl
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pydantic import SecretStr

from backend.config import Settings
from backend.events.mail import MailFailed, MailSender, reminder_message
from tests.reminders.test_reminder_email import Inbox, _port, body

USER, PASSWORD = "reminders", "smtp-password-for-the-tls-test"


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key, as PEM files."""
    folder = tmp_path_factory.mktemp("smtp-tls")
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    made = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(made.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def _server_context(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    return context


class TlsInbox(Inbox):
    """An inbox that notes, per message, whether STARTTLS encrypted its session and who
    signed in."""

    def __init__(self) -> None:
        super().__init__()
        self.sessions: list[tuple[bool, Any]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.sessions.append((session.ssl is not None, session.auth_data))
        return await super().handle_DATA(server, session, envelope)


def _authenticate(
    server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
) -> AuthResult:
    good = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
        USER.encode(),
        PASSWORD.encode(),
    )
    # A failure left unhandled: the server answers it (535).
    return AuthResult(success=good, handled=False, auth_data=USER if good else None)


@pytest.fixture
def implicit_tls(certificate: tuple[Path, Path]) -> Iterator[tuple[TlsInbox, int]]:
    box, port = TlsInbox(), _port()
    controller = Controller(
        box, hostname="127.0.0.1", port=port, ssl_context=_server_context(certificate)
    )
    controller.start()
    try:
        yield box, port
    finally:
        controller.stop()


@pytest.fixture
def starttls(certificate: tuple[Path, Path]) -> Iterator[tuple[TlsInbox, int]]:
    box, port = TlsInbox(), _port()
    controller = Controller(
        box,
        hostname="127.0.0.1",
        port=port,
        tls_context=_server_context(certificate),
        require_starttls=True,
        auth_require_tls=True,
        authenticator=_authenticate,
    )
    controller.start()
    try:
        yield box, port
    finally:
        controller.stop()


def _settings(settings: Settings, port: int, security: str, **extra: Any) -> Settings:
    return settings.model_copy(
        update={
            "smtp_host": "127.0.0.1",
            "smtp_port": port,
            "smtp_security": security,
            "smtp_from": "Tasks <reminders@example.com>",
            "smtp_timeout_seconds": 5.0,
            "public_url": "https://tasks.example.com",
            "reminder_task_url_template": "https://app.example.com/tasks/{task_id}",
            **extra,
        }
    )


def _reminder(settings: Settings) -> Any:
    row = SimpleNamespace(
        payload={"title": "Pay rent", "due_at": "2026-11-27T10:00:00.000000Z", "late": False},
        recipient_time_zone="Europe/Paris",
        task_time_zone="UTC",
        task_id=7,
        user_id="u1",
        event_id="5d1c0e9a-7b0f-4f43-a0c2-3a9f1b2e6c11",
        email_address="ada@example.com",
    )
    return reminder_message(settings, row)


def _delivered(box: TlsInbox, sent: Any) -> None:
    [received] = box.messages
    assert box.recipients == [["ada@example.com"]]
    assert received["Subject"] == "Reminder: Pay rent"
    assert received["Message-ID"] == sent["Message-ID"]
    assert "https://app.example.com/tasks/7" in body(received, "plain")
    assert 'href="https://app.example.com/tasks/7"' in body(received, "html")


def test_implicit_tls_delivers_to_a_verified_server(
    settings: Settings,
    certificate: tuple[Path, Path],
    implicit_tls: tuple[TlsInbox, int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    box, port = implicit_tls
    mail = _settings(settings, port, "tls")
    message = _reminder(mail)
    # Not trusted (the system's store only): the handshake fails, nothing is sent, retried.
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[1].parent / "nothing.pem"))
    with pytest.raises(MailFailed) as refused:
        MailSender(mail).deliver(message)
    assert refused.value.permanent is False and box.messages == []
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))
    MailSender(mail).deliver(message)
    _delivered(box, message)
    # The server speaks only TLS: a sender that did not would not get a message through.
    with pytest.raises(MailFailed):
        MailSender(_settings(settings, port, "none")).deliver(message)
    assert len(box.messages) == 1


def test_starttls_upgrades_before_auth_and_the_message(
    settings: Settings,
    certificate: tuple[Path, Path],
    starttls: tuple[TlsInbox, int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    box, port = starttls
    credentials = {"smtp_username": USER, "smtp_password": SecretStr(PASSWORD)}
    mail = _settings(settings, port, "starttls", **credentials)
    message = _reminder(mail)
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[1].parent / "nothing.pem"))
    with pytest.raises(MailFailed):
        MailSender(mail).deliver(message)
    assert box.messages == []
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))
    # A wrong password is the server's 535: permanent, nothing sent.
    wrong = _settings(settings, port, "starttls", smtp_username=USER, smtp_password=SecretStr("x"))
    with pytest.raises(MailFailed) as refused:
        MailSender(wrong).deliver(message)
    assert (str(refused.value), refused.value.permanent) == ("email: SMTP 535", True)
    assert box.messages == []
    MailSender(mail).deliver(message)
    _delivered(box, message)
    assert box.sessions == [(True, USER)]
    # The server refuses mail before STARTTLS: a sender that skipped it would not get here.
    plain = _settings(settings, port, "none")
    with pytest.raises(MailFailed) as skipped:
        MailSender(plain).deliver(message)
    assert skipped.value.permanent is True and len(box.messages) == 1
