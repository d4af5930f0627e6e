"""A stand-in for a chat model provider: a real HTTP server on 127.0.0.1 that speaks the
OpenAI Chat Completions wire protocol (`POST .../chat/completions`, JSON or, with
`"stream": true`, server-sent chunks), playing scripted turns.

The app under test talks to it with the real SDK client over HTTP, exactly as it would to
OpenAI, Gemini or Ollama. Each request takes the next scripted step; a step is a reply
(`say`, `call`), a failure (`fail`: an HTTP status; `hang`: no answer until the test ends;
`garbage`: a body that is not JSON), or a function of the request that returns a reply (a
model that reads its tool results: "delete the meeting task" lists first, then deletes the
id it read). Every request body is kept in `requests`, for what the app sent.
"""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Engine, text

from tests.serving import serve_in_thread


@dataclass(frozen=True)
class Reply:
    """One assistant message: text, and/or tool calls [(name, arguments as sent)]."""

    text: str | None = None
    calls: tuple[tuple[str, str], ...] = ()
    prompt_tokens: int = 11
    completion_tokens: int = 7


@dataclass(frozen=True)
class Failure:
    status: int = 0  # 0: the body below with 200
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()
    hang: bool = False


Step = Reply | Failure | Callable[[dict[str, Any]], Reply]


def say(text: str, **usage: int) -> Reply:
    return Reply(text=text, **usage)


def call(name: str, arguments: dict[str, Any] | str, *more: tuple[str, Any]) -> Reply:
    """A reply calling `name` (and each (name, arguments) of `more`); a str is sent as is."""
    pairs = [(name, arguments), *more]
    return Reply(calls=tuple((n, a if isinstance(a, str) else json.dumps(a)) for n, a in pairs))


def fail(status: int, retry_after: str | None = None) -> Failure:
    body = json.dumps({"error": {"message": "scripted failure", "type": "server_error"}})
    headers = (("Retry-After", retry_after),) if retry_after else ()
    return Failure(status, body.encode(), headers)


GARBAGE = Failure(0, b"this is not json")
HANG = Failure(hang=True)


def tool_results(request: dict[str, Any]) -> list[Any]:
    """The tool results the app sent back in this request, oldest first (parsed JSON)."""
    return [json.loads(m["content"]) for m in request["messages"] if m["role"] == "tool"]


@dataclass
class FakeModel:
    steps: list[Step] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    released: threading.Event = field(default_factory=threading.Event)
    url: str = ""
    # What a request gets when no step is left (None: a 500, so a test that runs out of
    # script fails loudly); a fuzzing run sets a plain answer.
    default: Reply | None = None

    def script(self, *steps: Step) -> None:
        self.steps.extend(steps)

    def next_step(self, request: dict[str, Any]) -> Reply | Failure:
        self.requests.append(request)
        if not self.steps:
            if self.default is not None:
                return self.default
            return Failure(500, b'{"error": {"message": "no scripted step left"}}')
        step = self.steps.pop(0)
        return step(request) if callable(step) else step

    @property
    def last_messages(self) -> list[dict[str, Any]]:
        return list(self.requests[-1]["messages"])


_ids = itertools.count(1)


def _completion(model: str, reply: Reply) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": reply.text}
    if reply.calls:
        message["tool_calls"] = [
            {
                "id": f"call_{next(_ids)}",
                "type": "function",
                "function": {"name": n, "arguments": a},
            }
            for n, a in reply.calls
        ]
    return {
        "id": f"chatcmpl-{next(_ids)}",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": "tool_calls" if reply.calls else "stop",
            }
        ],
        "usage": _usage(reply),
    }


def _usage(reply: Reply) -> dict[str, int]:
    return {
        "prompt_tokens": reply.prompt_tokens,
        "completion_tokens": reply.completion_tokens,
        "total_tokens": reply.prompt_tokens + reply.completion_tokens,
    }


def _chunks(model: str, reply: Reply, usage: bool) -> Iterator[dict[str, Any]]:
    """The reply as a provider streams it: role, text in pieces, each call's name then its
    arguments in two pieces, the finish reason, and the usage last (only when the request
    asked for it, `stream_options.include_usage`, as OpenAI's API does)."""
    base = {"id": f"chatcmpl-{next(_ids)}", "object": "chat.completion.chunk", "model": model}
    base["created"] = 1_700_000_000

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

    yield chunk({"role": "assistant", "content": ""})
    text = reply.text or ""
    for start in range(0, len(text), 8):
        yield chunk({"content": text[start : start + 8]})
    for index, (name, arguments) in enumerate(reply.calls):
        head = {"index": index, "id": f"call_{next(_ids)}", "type": "function"}
        half = len(arguments) // 2
        yield chunk({"tool_calls": [{**head, "function": {"name": name, "arguments": ""}}]})
        for piece in (arguments[:half], arguments[half:]):
            yield chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
    yield chunk({}, "tool_calls" if reply.calls else "stop")
    if usage:
        yield {**base, "choices": [], "usage": _usage(reply)}


def _handler(fake: FakeModel) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            request = json.loads(self.rfile.read(length))
            if not self.path.endswith("/chat/completions"):
                self._send(404, b'{"error": {"message": "no such path"}}')
                return
            step = fake.next_step(request)
            if isinstance(step, Failure):
                if step.hang:
                    fake.released.wait(120)
                    self.close_connection = True
                    return
                self._send(step.status or 200, step.body, step.headers)
                return
            model = request.get("model", "fake")
            if not request.get("stream"):
                self._send(200, json.dumps(_completion(model, step)).encode())
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            usage = bool((request.get("stream_options") or {}).get("include_usage"))
            for item in _chunks(model, step, usage):
                self.wfile.write(f"data: {json.dumps(item)}\n\n".encode())
                self.wfile.flush()
            self.wfile.write(b"data: [DONE]\n\n")
            self.wfile.flush()

        def _send(
            self, status: int, body: bytes, headers: tuple[tuple[str, str], ...] = ()
        ) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            for name, value in headers:
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

    return Handler


def serve() -> Iterator[FakeModel]:
    """Run a fake model on a free loopback port until the generator is closed."""
    fake = FakeModel()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))
    server.daemon_threads = True
    fake.url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    serve_in_thread(server)
    try:
        yield fake
    finally:
        fake.released.set()
        server.shutdown()
        server.server_close()


@contextmanager
def held_answer_server(database_url: str) -> Iterator[tuple[httpx.Client, threading.Event, Path]]:
    """The real server (uvicorn, a separate process) on `database_url`, whose model adds the
    task "Buy milk", then holds its answer back until the yielded gate is set: the set-up of
    a client that disconnects mid-stream (/api/chat and ChatKit alike). Yields a client of
    the server, the gate and the server's log."""
    from tests.conftest import running_server  # the fixtures' module, only where it is used

    gate = threading.Event()

    def answer_when_let(request: dict[str, Any]) -> Reply:
        gate.wait(60)
        return say("Added \u201cBuy milk\u201d.")

    for fake in serve():
        fake.script(call("add_task", {"title": "Buy milk"}), answer_when_let)
        env = {"CHAT_BASE_URL": fake.url, "CHAT_MODEL": "fake-model", "CHAT_API_KEY": "k"}
        with (
            running_server(database_url, **env) as (base_url, _, log),
            httpx.Client(base_url=base_url, timeout=60) as http,
        ):
            yield http, gate, log


@contextmanager
def hanging_turn(fake: FakeModel, post: Callable[[], Any], reached: int = 1) -> Iterator[list[Any]]:
    """A turn (`post`, with a HANG step scripted) sent in a thread of its own, entered once
    the model has had `reached` requests (a condition, not a time); on exit the model lets
    go (`released`) and the thread is joined. Yields what `post` returned, once it did."""
    answers: list[Any] = []
    sender = threading.Thread(target=lambda: answers.append(post()))
    sender.start()
    try:
        waited = threading.Event()
        for _ in range(600):
            if len(fake.requests) >= reached:
                break
            waited.wait(0.1)
        assert len(fake.requests) >= reached, "the turn never reached the model"
        yield answers
    finally:
        fake.released.set()
        sender.join(120)


def answered_after_disconnect(
    http: httpx.Client, gate: threading.Event, engine: Engine, headers: dict[str, str]
) -> None:
    """After the client of `held_answer_server` disconnected: the model answers (`gate`), and
    the server stores the answer; the task was added once."""
    gate.set()
    assert stored_messages(engine, 2) == [
        ("user", "add milk", None),
        ("assistant", "Added \u201cBuy milk\u201d.", None),
    ]
    listed = http.get("/api/tasks", headers=headers).json()["data"]
    assert [t["title"] for t in listed] == ["Buy milk"]


def stored_messages(engine: Engine, count: int) -> list[tuple[Any, ...]]:
    """The messages (role, content, error code) once there are `count` of them (a bounded
    wait on the rows, never on the clock)."""
    stored: list[Any] = []
    for _ in range(600):
        with engine.connect() as conn:
            query = text("SELECT role, content, error_code FROM messages ORDER BY id")
            stored = list(conn.execute(query))
        # The answer is recorded from the start as unfinished, then replaced.
        if len(stored) == count and stored[-1][2] != "CHAT_TURN_UNFINISHED":
            break
        threading.Event().wait(0.1)
    return [tuple(row) for row in stored]
