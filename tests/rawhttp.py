"""Raw HTTP/1.1 over a socket to 127.0.0.1: for requests no HTTP client will send (no Host,
two Hosts, a megabyte of header, a trickle) and to see what the server does to the
connection itself."""

from __future__ import annotations

import json
import socket
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit


@dataclass
class Answer:
    """What came back before the server closed (or finished a response)."""

    status: int | None  # None: closed or reset before a status line
    headers: dict[str, list[str]] = field(default_factory=dict)
    body: bytes = b""

    def header(self, name: str) -> str | None:
        values = self.headers.get(name.lower())
        return values[0] if values else None

    def json(self) -> Any:
        return json.loads(self.body)


def port_of(base_url: str) -> int:
    port = urlsplit(base_url).port
    assert port is not None
    return port


def connect(port: int, timeout: float = 10) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=timeout)


def read_answer(sock: socket.socket, deadline_seconds: float = 20) -> Answer:
    """One response (by Content-Length) or whatever arrived before EOF or a reset."""
    data = b""
    end = time.monotonic() + deadline_seconds
    while time.monotonic() < end:
        head, sep, rest = data.partition(b"\r\n\r\n")
        if sep:
            answer = _parse(head, rest)
            length = answer.header("content-length")
            if length is not None and len(rest) >= int(length):
                answer.body = rest[: int(length)]
                return answer
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            chunk = b""
        except TimeoutError:
            continue
        if not chunk:
            break
        data += chunk
    head, sep, rest = data.partition(b"\r\n\r\n")
    return _parse(head, rest) if head.startswith(b"HTTP/") else Answer(status=None, body=data)


def exchange(port: int, request: bytes, deadline_seconds: float = 20) -> Answer:
    with connect(port) as sock:
        sock.sendall(request)
        return read_answer(sock, deadline_seconds)


def _parse(head: bytes, rest: bytes) -> Answer:
    lines = head.decode("latin-1").split("\r\n")
    answer = Answer(status=int(lines[0].split()[1]), body=rest)
    for line in lines[1:]:
        name, _, value = line.partition(":")
        answer.headers.setdefault(name.strip().lower(), []).append(value.strip())
    return answer
