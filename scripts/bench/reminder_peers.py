"""The protocol peers a reminder reaches, on loopback, for the tests (tests/reminders/) and the
reminders benchmark (scripts/bench/reminders.py): what a browser and a push service do between
them, a browser's subscription keys (`Browser`: a P-256 key pair and a 16-byte auth secret; it
decrypts an `aes128gcm` body as RFC 8291 says, with `http_ece`) and a push service
(`PushReceiver`: an HTTP server that checks each POST's VAPID JWT (RFC 8292) against the public
key the API publishes, then decrypts and keeps its payload, or answers the status a test
scripts); and an SMTP server's handler (`Inbox`, for aiosmtpd's `Controller`) that parses and
keeps each message. Each records when it took a delivery (`time.time()`)."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast

import http_ece
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from jose import jwt


def _require(holds: bool, said: Any) -> None:
    """What a real push service checks: a push that fails it is refused (400)."""
    if not holds:
        raise ValueError(str(said))


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class Browser:
    key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    auth: bytes = field(default_factory=lambda: __import__("os").urandom(16))

    @property
    def keys(self) -> dict[str, str]:
        point = self.key.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
        return {"p256dh": b64(point), "auth": b64(self.auth)}

    def subscription(self, endpoint: str) -> dict[str, Any]:
        return {"endpoint": endpoint, "expirationTime": None, "keys": self.keys}

    def decrypt(self, body: bytes) -> bytes:
        plain: bytes = http_ece.decrypt(
            body, private_key=self.key, auth_secret=self.auth, version="aes128gcm"
        )
        return plain


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    claims: dict[str, Any]
    payload: dict[str, Any]
    at: float = field(default_factory=time.time)


class PushReceiver:
    """A push service on 127.0.0.1: `answers` is a queue of statuses (with headers) to give
    before accepting (201), whichever endpoint is pushed to; `answers_at[path]` one for that
    endpoint alone, for pushes sent at once (the worker sends a batch concurrently, in no
    order). Each accepted push is checked and decrypted into `received`."""

    def __init__(self, server_public_key: str, browsers: dict[str, Browser]) -> None:
        self.public_key = server_public_key
        self.browsers = browsers  # path -> the browser subscribed there
        self.answers: deque[tuple[int, dict[str, str]]] = deque()
        self.answers_at: dict[str, deque[tuple[int, dict[str, str]]]] = {}
        self.lock = threading.Lock()
        # Set `hold`: the first push received waits (at most 10 s) until it is set again, and
        # `arrived` says it is waiting; the others are answered as usual.
        self.hold: threading.Event | None = None
        self.arrived = threading.Event()
        self.received: list[Received] = []
        self.refused: list[str] = []
        self.calls = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            # Keep-alive, as a push service: a sender may reuse its connections.
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                if len(body) < length:
                    # The sender went away mid-body (a worker killed while sending): no
                    # push arrived, so there is nothing to take or refuse.
                    self.close_connection = True
                    return
                status, extra = receiver.handle(self.path, dict(self.headers), body)
                self.send_response(status)
                for name, value in extra.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def endpoint(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def handle(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str]]:
        with self.lock:
            self.calls += 1
        headers = {k.lower(): v for k, v in headers.items()}
        try:
            claims = self.check_vapid(headers)
            _require(headers.get("content-encoding") == "aes128gcm", headers)
            _require(int(headers["ttl"]) > 0, "no TTL")
            payload = json.loads(self.browsers[path].decrypt(body))
        except Exception as exc:  # a push service refuses what it cannot verify
            self.refused.append(f"{type(exc).__name__}: {exc}")
            return 400, {}
        with self.lock:
            held, self.hold = self.hold, None
        if held is not None:
            self.arrived.set()
            held.wait(10)
        with self.lock:
            for queue in (self.answers_at.get(path), self.answers):
                if queue:
                    return queue.popleft()
            self.received.append(Received(path, headers, claims, payload))
        return 201, {}

    def check_vapid(self, headers: dict[str, str]) -> dict[str, Any]:
        scheme, _, params = headers["authorization"].partition(" ")
        _require(scheme.lower() == "vapid", scheme)
        parts = dict(p.strip().split("=", 1) for p in params.split(","))
        _require(parts["k"] == self.public_key, "not the key the API publishes")
        point = unb64(parts["k"])
        key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
        numbers = key.public_numbers()
        jwk = {
            "kty": "EC",
            "crv": "P-256",
            "x": b64(numbers.x.to_bytes(32, "big")),
            "y": b64(numbers.y.to_bytes(32, "big")),
        }
        claims: dict[str, Any] = jwt.decode(
            parts["t"], jwk, algorithms=["ES256"], audience=f"http://127.0.0.1:{self.port}"
        )
        _require(claims["sub"].startswith(("mailto:", "https:")), claims)
        return claims

    def __enter__(self) -> PushReceiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


class Inbox:
    """An aiosmtpd handler: every message taken, parsed, with its envelope's recipients and
    when it arrived."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.recipients: list[list[str]] = []
        self.arrived: list[float] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        parsed = message_from_bytes(envelope.original_content, policy=policy.default)
        self.arrived.append(time.time())
        self.messages.append(cast(EmailMessage, parsed))
        self.recipients.append(list(envelope.rcpt_tos))
        return "250 OK"
