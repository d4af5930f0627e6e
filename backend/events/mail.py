"""Email reminders and address confirmations over SMTP (specs/events.md, "Reminder deliveries").
Every task value is escaped for HTML and made one line for headers; `Message-ID` comes from the
event, so a resend carries the same. Holds no database connection."""

from __future__ import annotations

import contextlib
import html
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
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.policy import SMTPUTF8, compat32
from email.utils import formataddr, formatdate, parseaddr
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from email_validator import EmailNotValidError, validate_email

from backend.config import Settings
from backend.services.delivery.notification_settings import unsubscribe_token

UNSUBSCRIBE_PATH = "/api/notification-settings/unsubscribe"
CONFIRM_PATH = "/api/notification-settings/confirm"
SUBJECT_TITLE_MAX = 150
# Headers on one line each (RFC 5322's limit, 998): compat32 would fold `List-Unsubscribe`'s
# long link onto a line of its own, which some clients then read with the break.
_UNFOLDED = compat32.clone(max_line_length=998)
# A kept session sends this many messages, then a new one (servers cap a session's messages).
SESSION_MESSAGES = 100


class MailFailed(Exception):
    """The SMTP server did not take the message: `permanent` (5xx) or not (retry)."""

    def __init__(self, message: str, permanent: bool) -> None:
        super().__init__(message)
        self.permanent = permanent


def one_line(value: str, limit: int | None = None) -> str:
    """`value` with every control, format or separator character made a space: safe in a header."""
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
    address = parseaddr(settings.smtp_from or "")[1]
    return address.rpartition("@")[2] or "localhost"


def message_id(settings: Settings, event_id: Any) -> str:
    """The same for every send of one reminder: a receiver (or a person) sees a repeat."""
    return f"<reminder-{event_id}@{_domain(settings)}>"


def local_time(instant: str | None, zone: str | None) -> str:
    """An instant as a person reads it in `zone` (`Fri 27 Nov 2026, 14:30 (UTC)`), or a day."""
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


def reminder_message(settings: Settings, row: Any) -> Message:
    """The email of one reminder delivery row (`notify._LEASE`'s columns), built with the
    `email.mime` classes (a tenth of `EmailMessage`'s CPU); non-ASCII headers RFC 2047-encoded."""
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
    message = MIMEMultipart("alternative", policy=_UNFOLDED)
    recipient = mailbox(row.email_address)
    message["From"] = _address(settings.smtp_from or "")
    if recipient.isascii():
        message["To"] = _address(recipient)
    message["Subject"] = _header(f"Reminder: {one_line(title, SUBJECT_TITLE_MAX)}")
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = message_id(settings, row.event_id)
    message["List-Unsubscribe"] = f"<{unsubscribe}>"
    message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message["Auto-Submitted"] = "auto-generated"
    message.attach(MIMEText(plain, "plain", "utf-8", policy=_UNFOLDED))
    message.attach(MIMEText(rich, "html", "utf-8", policy=_UNFOLDED))
    return message if recipient.isascii() else _international(message, recipient)


def mailbox(address: str) -> str:
    """An address for SMTP: an IDN as its A-label, a non-ASCII local part as is (SMTPUTF8)."""
    try:
        checked = validate_email(address, check_deliverability=False)
    except EmailNotValidError:
        return address
    return checked.ascii_email or checked.normalized


def _international(message: Message, recipient: str) -> EmailMessage:
    """`message` for a non-ASCII mailbox: UTF-8 headers (RFC 6532), which compat32 cannot write."""
    converted = message_from_bytes(message.as_bytes(), policy=SMTPUTF8)
    converted["To"] = recipient
    return converted


def _header(value: str) -> str:
    """A header's text as it is when ASCII, else RFC 2047 (UTF-8)."""
    return value if value.isascii() else Header(value, "utf-8").encode()


def _address(value: str) -> str:
    name, address = parseaddr(value)
    return formataddr((one_line(name), address), charset="utf-8")


def confirmation_message(
    settings: Settings, user_id: str, address: str, token: str, event_id: Any = None
) -> EmailMessage:
    """The confirmation of `address`; `event_id`: a resend's `Message-ID` is the same."""
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
    """Sends over SMTP. `keep`: a thread keeps its session for up to `SESSION_MESSAGES` messages,
    sparing a connection, TLS and AUTH each; a closed one is opened again."""

    settings: Settings
    keep: bool = False
    _kept: threading.local = field(default_factory=threading.local, compare=False, repr=False)

    @classmethod
    def configured(cls, settings: Settings, keep: bool = False) -> MailSender | None:
        return cls(settings, keep) if settings.smtp_host else None

    def deliver(self, message: Message) -> None:
        """Send `message`, every wait bounded by `SMTP_TIMEOUT_SECONDS`. Raises `MailFailed`."""
        kept: tuple[smtplib.SMTP, int] | None = getattr(self._kept, "session", None)
        self._kept.session = None
        if kept is not None:
            smtp, sent = kept
            try:
                smtp.send_message(message)
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
            smtp.send_message(message)
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


def _close(smtp: smtplib.SMTP) -> None:
    with contextlib.suppress(OSError):
        smtp.close()


def _failed(exc: BaseException) -> MailFailed:
    """`MailFailed` (permanent for 5xx), its code only: a server's text may echo the message."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in exc.recipients.values()]
        return MailFailed(f"email: recipient refused ({codes})", all(c >= 500 for c in codes))
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        # An internationalized address and a server without SMTPUTF8: the same again.
        return MailFailed("email: the server does not take internationalized addresses", True)
    if isinstance(exc, smtplib.SMTPResponseException):
        return MailFailed(f"email: SMTP {exc.smtp_code}", exc.smtp_code >= 500)
    return MailFailed(f"email: {type(exc).__name__}", False)
