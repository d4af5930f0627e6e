"""backend/events/bounds.py against raw peers on loopback, as the worker sends (webhooks, Dapr,
Web Push): a call ends at its deadline however its receiver trickles (head, body or TLS), its
failures are httpcore's exception types, no redirect is followed, no proxy from the
environment is used, and one connection carries call after call. The answer's cap:
tests/events/test_engine.py and test_answer_memory.py."""

from __future__ import annotations

import re
import socket
import socketserver
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import closing, suppress

import httpcore
import pytest

from backend.events.bounds import SEND_ERRORS, DeadlinePassed, HttpClient
from tests.serving import serve_in_thread

Answer = Callable[[socket.socket, threading.Event], None]
# What a slow peer would take in all: far past the 1 s deadline, on any machine.
TRICKLE_SECONDS = 30.0


class Peer:
    """Runs `answer` on each connection it accepts (a thread each) until `close`, which sets
    `stop` (every answer below ends on it) and waits for the answers to end."""

    def __init__(self, answer: Answer) -> None:
        self.connections = 0
        self.requests: list[bytes] = []
        self.stop = threading.Event()
        peer = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                peer.connections += 1
                with suppress(OSError):  # the client hung up
                    answer(self.request, peer.stop)

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        serve_in_thread(self.server)

    def read_request(self, conn: socket.socket, stop: threading.Event) -> bool:
        """One request's head and body (by its Content-Length); False when the client closed
        the connection or the peer stops."""
        conn.settimeout(0.1)
        data = b""
        while not stop.is_set():
            head, found, body = data.partition(b"\r\n\r\n")
            length = re.search(rb"(?i)content-length: *(\d+)", head)
            if found and len(body) >= (int(length[1]) if length else 0):
                self.requests.append(head.split(b"\r\n", 1)[0])
                return True
            try:
                more = conn.recv(65536)
            except TimeoutError:
                continue
            if not more:
                return False
            data += more
        return False

    def close(self) -> None:
        self.stop.set()
        self.server.shutdown()
        self.server.server_close()  # joins the answers' threads


@pytest.fixture
def peer() -> Iterator[Callable[[Answer], Peer]]:
    made: list[Peer] = []

    def make(answer: Answer) -> Peer:
        made.append(Peer(answer))
        return made[-1]

    yield make
    for each in made:
        each.close()


def _trickle(conn: socket.socket, stop: threading.Event, first: bytes) -> None:
    conn.sendall(first)
    for _ in range(int(TRICKLE_SECONDS / 0.1)):  # a byte every 0.1 s: no read is slow
        if stop.wait(0.1):
            return
        conn.sendall(b"z")


def _slow_head(conn: socket.socket, stop: threading.Event) -> None:
    conn.recv(65536)
    _trickle(conn, stop, b"HTTP/1.1 200 OK\r\nx-slow: ")


def _slow_body(conn: socket.socket, stop: threading.Event) -> None:
    conn.recv(65536)
    length = int(TRICKLE_SECONDS / 0.1)
    _trickle(conn, stop, b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % length)


def _silent_tls(conn: socket.socket, stop: threading.Event) -> None:
    conn.recv(65536)  # the ClientHello, never answered
    stop.wait(TRICKLE_SECONDS)


@pytest.mark.parametrize(
    ("answer", "scheme"),
    [(_slow_head, "http"), (_slow_body, "http"), (_silent_tls, "https")],
    ids=["head", "body", "tls"],
)
def test_a_call_ends_at_its_deadline_however_slowly_the_receiver_answers(
    peer: Callable[[Answer], Peer], answer: Answer, scheme: str
) -> None:
    slow = peer(answer)
    began = time.monotonic()
    with closing(HttpClient(1.0)) as client, pytest.raises(DeadlinePassed) as raised:
        client.post(slow.url.replace("http", scheme, 1), {}, b"{}")
    took = time.monotonic() - began
    # At the 1 s deadline: not at the peer's 30 s (a loaded machine's margin in between).
    assert 1.0 <= took < TRICKLE_SECONDS / 3, took
    assert isinstance(raised.value, SEND_ERRORS)
    assert str(raised.value) == "the send's deadline passed"


def _hang_up(conn: socket.socket, stop: threading.Event) -> None:
    conn.recv(65536)


def _garbage(conn: socket.socket, stop: threading.Event) -> None:
    conn.recv(65536)
    conn.sendall(b"SPDY/9 what\r\n\r\n")


def test_a_failed_call_raises_httpcores_own_exception_type(
    peer: Callable[[Answer], Peer],
) -> None:
    with socket.socket() as unused:  # a port nobody listens on
        unused.bind(("127.0.0.1", 0))
        refused = f"http://127.0.0.1:{unused.getsockname()[1]}/hook"
    cases = [
        (refused, httpcore.ConnectError),
        (peer(_hang_up).url, httpcore.RemoteProtocolError),
        (peer(_garbage).url, httpcore.RemoteProtocolError),
    ]
    with closing(HttpClient(5.0)) as client:
        for url, kind in cases:
            with pytest.raises(kind) as raised:
                client.post(url, {}, b"{}")
            assert isinstance(raised.value, SEND_ERRORS)


def test_a_redirect_is_an_answer_not_followed_and_no_proxy_is_used(
    peer: Callable[[Answer], Peer], monkeypatch: pytest.MonkeyPatch
) -> None:
    def answer(conn: socket.socket, stop: threading.Event) -> None:
        while peer_.read_request(conn, stop):
            conn.sendall(b"HTTP/1.1 307 Temporary Redirect\r\nlocation: /elsewhere\r\n")
            conn.sendall(b"content-length: 2\r\n\r\nno")

    peer_ = peer(answer)
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "all_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")  # would refuse every call
    with closing(HttpClient(5.0)) as client:
        answers = [client.post(peer_.url, {"x-call": str(n)}, b"{}") for n in range(3)]
    assert [(a.status_code, a.headers["location"], a.head, a.cut) for a in answers] == [
        (307, "/elsewhere", b"no", False)
    ] * 3
    # Three calls, one kept-alive connection, nothing sent to the redirect's target.
    assert peer_.requests == [b"POST /hook HTTP/1.1"] * 3
    assert peer_.connections == 1
