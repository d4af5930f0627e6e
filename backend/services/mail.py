"""Email reminders and address confirmations over SMTP, for the events worker and the
settings route (issue 72; specs/events.md, "Reminder
deliveries"; the settings: docs/reference/configuration.md, `SMTP_*`).

A reminder's message names the task, its due time in the recipient's time zone (their
setting's, else the task's) and a link (`REMINDER_TASK_URL_TEMPLATE`); a plain-text and an HTML
body, every value from the task escaped for HTML and stripped of line breaks and control
characters for headers (the standard library's `email` refuses a header with a line break
anyway). `Message-ID` is derived from the reminder's event, so a resend carries the same one;
`List-Unsubscribe` + `List-Unsubscribe-Post` (RFC 8058) give a one-click link that turns the
person's email reminders off. Nothing here holds a database connection.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import html
import secrets
import smtplib
import ssl
import threading
import unicodedata
from dataclasses import dataclass, field
from datetime import date, datetime
from email import message_from_bytes
from email.header import Header
from email.headerregistry import Address
from email.message import EmailMessage, Message
from email.policy import SMTPUTF8
from email.utils import formataddr, formatdate, parseaddr
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from email_validator import EmailNotValidError, validate_email

from backend.config import Settings
from backend.services.notification_settings import unsubscribe_token

UNSUBSCRIBE_PATH = "/api/notification-settings/unsubscribe"
CONFIRM_PATH = "/api/notification-settings/confirm"
SUBJECT_TITLE_MAX = 150
# A kept session sends this many messages, then a new one (servers cap a session's messages).
SESSION_MESSAGES = 100


class MailFailed(Exception):
    """The SMTP server did not take the message: `permanent` (5xx) or not (retry)."""

    def __init__(self, message: str, permanent: bool) -> None:
        super().__init__(message)
        self.permanent = permanent


def one_line(value: str, limit: int | None = None) -> str:
    """`value` with every control, format or separator character (CR, LF, U+2028, a bidi
    override...) made a space: safe in a header, a subject, a plain-text line."""
    cleaned = "".join(
        " " if unicodedata.category(ch)[0] in "CZ" and ch != " " else ch for ch in value
    ).strip()
    if limit is not None and len(cleaned) > limit:
        cleaned = cleaned[: limit - 1] + "…"
    return cleaned


def unsubscribe_url(settings: Settings, user_id: str) -> str:
    query = urlencode({"user": user_id, "token": unsubscribe_token(settings, user_id)})
    return f"{_base(settings)}{UNSUBSCRIBE_PATH}?{query}"


def confirm_url(settings: Settings, user_id: str, token: str) -> str:
    return f"{_base(settings)}{CONFIRM_PATH}?{urlencode({'user': user_id, 'token': token})}"


def _base(settings: Settings) -> str:
    return str(settings.public_url or "http://127.0.0.1:8000").rstrip("/")


def task_url(settings: Settings, task_id: int) -> str:
    template = settings.reminder_task_url_template
    if template:
        return template.replace("{task_id}", str(int(task_id)))
    return f"{_base(settings)}/api/tasks/{int(task_id)}"


def _domain(settings: Settings) -> str:
    return _domain_of(settings.smtp_from or "")


@functools.lru_cache(maxsize=16)
def _domain_of(sender: str) -> str:
    address = parseaddr(sender)[1]
    return address.rpartition("@")[2] or "localhost"


def message_id(settings: Settings, event_id: Any) -> str:
    """The same for every send of one reminder: a receiver (or a person) sees a repeat."""
    return f"<reminder-{event_id}@{_domain(settings)}>"


def local_time(instant: str | None, zone: str | None) -> str:
    """An instant (`...Z`) as a person reads it in `zone`:
    `Fri 27 Nov 2026, 14:30 (Europe/Berlin)`; a day (`YYYY-MM-DD`) as `Fri 27 Nov 2026`."""
    if not instant:
        return "no due date"
    if "T" not in instant:
        return f"{date.fromisoformat(instant):%a %d %b %Y}"
    moment = datetime.fromisoformat(instant.replace("Z", "+00:00"))
    try:
        tz = ZoneInfo(zone or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        tz, zone = ZoneInfo("UTC"), "UTC"
    return f"{moment.astimezone(tz):%a %d %b %Y, %H:%M} ({zone or 'UTC'})"


@dataclass(frozen=True)
class Outgoing:
    """A message as it goes over SMTP: its envelope (`sender`, `recipient`) and its bytes
    (CRLF lines, headers and all), sent as they are (`MailSender.deliver`)."""

    sender: str
    recipient: str
    data: bytes

    def as_bytes(self) -> bytes:
        return self.data


def reminder_message(settings: Settings, row: Any) -> Outgoing | EmailMessage:
    """The email of one reminder delivery row (`notify._LEASE`'s columns): a
    `multipart/alternative` of a plain-text and an HTML body (UTF-8, base64), written as bytes
    directly. The `email` package's objects and generator cost the worker ~0.5 ms of CPU a
    message for the same bytes (specs/benchmark.md, issues 72 and 82). Every value from the
    task is `one_line`d before it is a header and escaped in the HTML; a non-ASCII subject or
    name is RFC 2047-encoded; no header value can carry a line break (`_lines` refuses one).
    A non-ASCII mailbox (SMTPUTF8's) gets the same message as an `EmailMessage`."""
    stored = row.payload or {}
    title = one_line(str(stored.get("title") or "(untitled)"))
    zone = row.recipient_time_zone or row.task_time_zone
    due = local_time(stored.get("due_at"), zone)
    link = task_url(settings, row.task_id)
    unsubscribe = unsubscribe_url(settings, row.user_id)
    late = " (sent late)" if stored.get("late") else ""
    plain = (
        f"Reminder{late}: {title}\n\nDue: {due}\nOpen the task: {link}\n\n"
        f"Stop email reminders: {unsubscribe}\n"
    )
    safe = html.escape(title)
    rich = (
        "<!doctype html><html><body>"
        f"<p>Reminder{html.escape(late)}: <strong>{safe}</strong></p>"
        f"<p>Due: {html.escape(due)}</p>"
        f'<p><a href="{html.escape(link, quote=True)}">Open the task</a></p>'
        f'<p><small><a href="{html.escape(unsubscribe, quote=True)}">Stop email reminders'
        "</a></small></p></body></html>\n"
    )
    recipient = mailbox(row.email_address)
    boundary = f"=_{secrets.token_hex(16)}"  # `=_` is in no base64 or quoted-printable text
    headers = [
        ("Content-Type", f'multipart/alternative; boundary="{boundary}"'),
        ("MIME-Version", "1.0"),
        ("From", _address(settings.smtp_from or "")),
        *([("To", recipient)] if recipient.isascii() else []),
        ("Subject", _header(f"Reminder: {one_line(title, SUBJECT_TITLE_MAX)}")),
        ("Date", formatdate(localtime=False)),
        ("Message-ID", message_id(settings, row.event_id)),
        ("List-Unsubscribe", f"<{unsubscribe}>"),
        ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
        ("Auto-Submitted", "auto-generated"),
    ]
    data = "".join(
        (
            _lines(headers),
            f"\r\n--{boundary}\r\n",
            _utf8_part("plain", plain),
            f"\r\n--{boundary}\r\n",
            _utf8_part("html", rich),
            f"\r\n--{boundary}--\r\n",
        )
    ).encode("ascii")
    sender = parseaddr(settings.smtp_from or "")[1]
    if recipient.isascii() and sender.isascii():
        return Outgoing(sender, recipient, data)
    return _international(data, recipient)


def _lines(headers: list[tuple[str, str]]) -> str:
    """Header lines, CRLF-ended. A value is one line (or RFC 2047 words folded by `_header`
    with CRLF and a space): any other line break would start a header of the value's own."""
    lines = []
    for name, value in headers:
        unfolded = value.replace("\r\n ", "")
        if "\r" in unfolded or "\n" in unfolded:
            raise ValueError(f"a line break in the {name} header")
        lines.append(f"{name}: {value}\r\n")
    return "".join(lines)


def _utf8_part(subtype: str, text: str) -> str:
    """A `text/<subtype>` body part in UTF-8, base64 in lines of 76 (RFC 2045), as compat32's
    `MIMEText(text, subtype, "utf-8")` writes it."""
    encoded = base64.encodebytes(text.encode()).decode("ascii").replace("\n", "\r\n")
    return (
        f'Content-Type: text/{subtype}; charset="utf-8"\r\nMIME-Version: 1.0\r\n'
        f"Content-Transfer-Encoding: base64\r\n\r\n{encoded}"
    )


def mailbox(address: str) -> str:
    """An address as it goes over SMTP, in envelope and header: an internationalized domain as
    its A-label (`a@xn--bcher-kva.example`: plain ASCII, any server takes it); a non-ASCII
    local part as it is (`ü@example.com`), which only a server offering SMTPUTF8 (RFC 6531)
    takes: smtplib asks for it, and a server without it is refused the message up front (a
    permanent `MailFailed`, nothing half-sent)."""
    try:
        checked = validate_email(address, check_deliverability=False)
    except EmailNotValidError:
        return address
    return checked.ascii_email or checked.normalized


def _international(data: bytes, recipient: str) -> EmailMessage:
    """A message (built without `To`) for a non-ASCII mailbox: headers in UTF-8 (RFC 6532),
    which the `email` package's modern policy writes (smtplib then asks for SMTPUTF8)."""
    converted = message_from_bytes(data, policy=SMTPUTF8)
    converted["To"] = recipient
    return converted


def _header(value: str) -> str:
    """A header's text as it is when ASCII, else RFC 2047 (UTF-8), folded with CRLF."""
    return value if value.isascii() else Header(value, "utf-8").encode(linesep="\r\n")


@functools.lru_cache(maxsize=16)
def _address(value: str) -> str:
    name, address = parseaddr(value)
    return formataddr((one_line(name), address), charset="utf-8")


def confirmation_message(
    settings: Settings, user_id: str, address: str, token: str, event_id: Any = None
) -> EmailMessage:
    """The confirmation of `address`; `event_id`: its queued row's, so that a resend carries
    the same `Message-ID`."""
    link = confirm_url(settings, user_id, token)
    message = EmailMessage()
    message["From"] = settings.smtp_from or ""
    if event_id is not None:
        message["Message-ID"] = f"<confirm-{event_id}@{_domain(settings)}>"
    local, _, domain = mailbox(address).rpartition("@")
    # By its parts: `addr_spec=` would refuse a non-ASCII local part (SMTPUTF8's, RFC 6531).
    message["To"] = Address(username=local, domain=domain)
    message["Subject"] = "Confirm your address for task reminders"
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(
        "Someone (we hope you) asked for task reminders at this address.\n\n"
        f"Confirm it: {link}\n\nIf it was not you, ignore this message: nothing is sent "
        "until the address is confirmed.\n"
    )
    message.add_alternative(
        "<!doctype html><html><body><p>Someone (we hope you) asked for task reminders at "
        f'this address.</p><p><a href="{html.escape(link, quote=True)}">Confirm it</a></p>'
        "<p>If it was not you, ignore this message: nothing is sent until the address is "
        "confirmed.</p></body></html>",
        subtype="html",
    )
    return message


@dataclass(frozen=True)
class MailSender:
    """Sends over SMTP. `keep`: each thread keeps its session open for its next message (the
    events worker's; up to `SESSION_MESSAGES` a session), sparing a connection, EHLO, TLS
    handshake and AUTH a message; a session the server closed meanwhile is opened again."""

    settings: Settings
    keep: bool = False
    _kept: threading.local = field(default_factory=threading.local, compare=False, repr=False)

    @classmethod
    def configured(cls, settings: Settings, keep: bool = False) -> MailSender | None:
        return cls(settings, keep) if settings.smtp_host else None

    def deliver(self, message: Message | Outgoing) -> None:
        """Send `message`, every wait bounded by `SMTP_TIMEOUT_SECONDS`. Raises `MailFailed`."""
        kept: tuple[smtplib.SMTP, int] | None = getattr(self._kept, "session", None)
        self._kept.session = None
        if kept is not None:
            smtp, sent = kept
            try:
                _send(smtp, message)
            except (smtplib.SMTPServerDisconnected, ConnectionError):
                # Closed while idle (a message cut mid-way is sent again, with its Message-ID).
                _close(smtp)
            except (OSError, smtplib.SMTPException) as exc:
                _close(smtp)
                raise _failed(exc) from None
            else:
                self._keep(smtp, sent + 1)
                return
        try:
            smtp = self._open()
        except (OSError, smtplib.SMTPException) as exc:
            raise _failed(exc) from None
        try:
            _send(smtp, message)
        except (OSError, smtplib.SMTPException) as exc:
            _close(smtp)
            raise _failed(exc) from None
        self._keep(smtp, 1)

    def _open(self) -> smtplib.SMTP:
        """A session: connect, TLS as configured, AUTH."""
        s = self.settings
        host, timeout = s.smtp_host or "", s.smtp_timeout_seconds
        if s.smtp_security == "tls":
            context = ssl.create_default_context()
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(
                host, s.smtp_port, timeout=timeout, context=context
            )
        else:
            smtp = smtplib.SMTP(host, s.smtp_port, timeout=timeout)
        try:
            if s.smtp_security == "starttls":
                smtp.starttls(context=ssl.create_default_context())
            if s.smtp_username and s.smtp_password:
                smtp.login(s.smtp_username, s.smtp_password.get_secret_value())
        except BaseException:
            _close(smtp)
            raise
        return smtp

    def _keep(self, smtp: smtplib.SMTP, sent: int) -> None:
        if self.keep and sent < SESSION_MESSAGES:
            self._kept.session = (smtp, sent)
        else:
            try:
                smtp.quit()
            except (OSError, smtplib.SMTPException):
                _close(smtp)


def _send(smtp: smtplib.SMTP, message: Message | Outgoing) -> None:
    """One message over an open session: an `Outgoing`'s bytes as they are (smtplib
    dot-stuffs them), a `Message` flattened by smtplib (its envelope from its headers)."""
    if isinstance(message, Outgoing):
        smtp.sendmail(message.sender, [message.recipient], message.data)
    else:
        smtp.send_message(message)


def _close(smtp: smtplib.SMTP) -> None:
    with contextlib.suppress(OSError):
        smtp.close()


def _failed(exc: BaseException) -> MailFailed:
    """`MailFailed` for an SMTP or socket error: permanent for a 5xx, with only the code (a
    server's text may echo what it was sent)."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in exc.recipients.values()]
        return MailFailed(f"email: recipient refused ({codes})", all(c >= 500 for c in codes))
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        # An internationalized address and a server without SMTPUTF8: the same again.
        return MailFailed("email: the server does not take internationalized addresses", True)
    if isinstance(exc, smtplib.SMTPResponseException):
        return MailFailed(f"email: SMTP {exc.smtp_code}", exc.smtp_code >= 500)
    return MailFailed(f"email: {type(exc).__name__}", False)
