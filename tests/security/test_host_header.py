"""RFC 9112 3.2: an HTTP/1.1 request without `Host`, and any request with two or with an
invalid one, is 400 (uvicorn passed all of them on and the app answered 200). The real
server, raw sockets: no HTTP client sends these."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import running_server
from tests.rawhttp import Answer, exchange, port_of


@pytest.fixture(scope="module")
def port(database_url: str) -> Iterator[int]:
    with running_server(database_url) as (base_url, _, _):
        yield port_of(base_url)


def _bad_request(answer: Answer, message: str) -> None:
    assert answer.status == 400, answer
    assert answer.json() == {"error": {"code": "BAD_REQUEST", "message": message, "details": []}}
    # Through the app's middleware like any error: request id, protective headers.
    assert answer.header("x-request-id")
    assert answer.header("x-content-type-options") == "nosniff"


def test_http_1_1_without_host_is_400_and_http_1_0_without_host_is_served(port: int) -> None:
    _bad_request(exchange(port, b"GET /health HTTP/1.1\r\n\r\n"), "The Host header is missing")
    _bad_request(
        exchange(port, b"GET /api/tasks HTTP/1.1\r\nConnection: close\r\n\r\n"),
        "The Host header is missing",
    )
    # HTTP/1.0 predates Host: not required there.
    assert exchange(port, b"GET /health HTTP/1.0\r\n\r\n").status == 200
    assert exchange(port, b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").status == 200


@pytest.mark.parametrize("version", [b"1.1", b"1.0"])
def test_two_host_headers_are_400(port: int, version: bytes) -> None:
    request = b"GET /health HTTP/" + version + b"\r\nHost: a.example\r\nHost: b.example\r\n\r\n"
    _bad_request(exchange(port, request), "More than one Host header")
    same_twice = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nHost: 127.0.0.1\r\n\r\n"
    _bad_request(exchange(port, same_twice), "More than one Host header")


def test_an_invalid_host_is_400_and_valid_forms_are_served(port: int) -> None:
    for host in (b"a b.example", b"a/b", b"user@example.com", b"example.com:80x", b'"x"'):
        request = b"GET /health HTTP/1.1\r\nHost: " + host + b"\r\n\r\n"
        _bad_request(exchange(port, request), "The Host header is not a valid host")
    for host in (
        b"example.com",
        b"EXAMPLE.com:8000",
        b"127.0.0.1:1",
        b"[::1]:8000",
        b"xn--bcher-kva.example",
        b"",
    ):
        request = b"GET /health HTTP/1.1\r\nHost: " + host + b"\r\n\r\n"
        assert exchange(port, request).status == 200, host
