"""How an upload's and a download's bytes move: with no pooled connection checked out, within
the worker's bound on uploads (503 past it), a stalled body answered 408, a body cut short
logged as the client's abort (INFO, never a 500); nothing kept in any of these cases.

The pool's checked-out connections are read by the storage itself while bytes move (the
storage instance's `put` and `open`, wrapped); stalls and cuts are sent as raw ASGI messages."""

from __future__ import annotations

import logging
import secrets
import tempfile
from collections.abc import Callable, Iterator, MutableMapping
from pathlib import Path
from typing import Any

import anyio
import pytest
from fastapi.testclient import TestClient

from backend.api.routes.attachments import UploadSlots
from backend.config import Settings
from backend.main import create_app
from backend.storage import ObjectStorage
from backend.storage.app import app_storage
from tests.attachments.conftest import _settings
from tests.attachments.test_attachments import _download, _keys, _task, _upload
from tests.conftest import Account, _registering, loaded

STALL_SECONDS = 0.5


def test_no_connection_is_checked_out_while_bytes_move(
    files: TestClient,
    people: Callable[..., Account],
    storage: ObjectStorage,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Counted by the pool itself at every piece of the upload's bytes read into storage and
    of the download's bytes read out of it (the filesystem streams them; S3 redirects)."""
    pool = files.app.state.engine.pool  # type: ignore[attr-defined]
    alice = people()
    task = _task(files, alice)
    seen: list[int] = []
    put, open_ = storage.put, storage.open

    class Watched:
        def __init__(self, source: Any) -> None:
            self.source = source

        def read(self, size: int = -1) -> bytes:
            seen.append(pool.checkedout())
            chunk: bytes = self.source.read(size)
            return chunk

    def watched_put(key: str, source: Any, **kwargs: Any) -> Any:
        return put(key, Watched(source), **kwargs)

    def watched_open(key: str) -> Iterator[bytes]:
        for chunk in open_(key):
            seen.append(pool.checkedout())
            yield chunk

    monkeypatch.setattr(storage, "put", watched_put)
    monkeypatch.setattr(storage, "open", watched_open)
    data = secrets.token_bytes(90_000)
    made = _upload(files, alice, task, data)
    assert made.status_code == 201, made.text
    uploaded = len(seen)
    assert uploaded >= 2  # every 64 KiB piece, and the end
    path = f"/api/tasks/{task}/attachments/{made.json()['data']['id']}"
    assert _download(files, alice, path).content == data
    if storage.kind == "filesystem":
        assert len(seen) > uploaded  # the download's stream was watched too
    assert set(seen) == {0}


@pytest.fixture(scope="module")
def tight(settings: Settings) -> Iterator[TestClient]:
    """An app on the filesystem whose uploads stall after STALL_SECONDS."""
    folder = Path(tempfile.mkdtemp(prefix="task-api-uploads-"))
    app = create_app(
        _settings(settings, attachments_dir=folder, attachments_stall_seconds=STALL_SECONDS)
    )
    with TestClient(app, raise_server_exceptions=False) as client:
        yield loaded(client)


def _multipart(data: bytes) -> tuple[str, bytes]:
    boundary = secrets.token_hex(8)
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.bin"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    return boundary, head + data + f"\r\n--{boundary}--\r\n".encode()


def _cut(client: TestClient, who: Account, task: int, then: str) -> tuple[int, dict[str, str]]:
    """An upload whose body sends its first half, then `then`: "stall" (nothing more, ever)
    or "disconnect" (the client gone). The app's answer: status and headers."""
    boundary, body = _multipart(secrets.token_bytes(50_000))
    pieces = [{"type": "http.request", "body": body[:30_000], "more_body": True}]
    path = f"/api/tasks/{task}/attachments"
    headers = {
        "host": "testserver",
        "authorization": who.headers["Authorization"],
        "content-type": f"multipart/form-data; boundary={boundary}",
        "content-length": str(len(body)),
    }
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(name.encode(), value.encode()) for name, value in headers.items()],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
        "extensions": {},
    }
    sent: list[MutableMapping[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if pieces:
            return pieces.pop(0)
        if then == "disconnect":
            return {"type": "http.disconnect"}
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    async def run() -> None:
        with anyio.fail_after(60):
            await client.app(scope, receive, send)

    assert client.portal is not None
    client.portal.call(run)
    start = next(message for message in sent if message["type"] == "http.response.start")
    answer = {name.decode(): value.decode() for name, value in start["headers"]}
    return start["status"], answer


def test_a_stalled_body_is_408_and_keeps_nothing(tight: TestClient) -> None:
    alice = _registering(tight)()
    task = _task(tight, alice)
    storage = app_storage(tight.app)
    before = _keys(storage)
    status, headers = _cut(tight, alice, task, "stall")
    assert status == 408
    assert headers["connection"] == "close"
    assert _keys(storage) == before
    assert tight.get(f"/api/tasks/{task}/attachments", headers=alice.headers).json()["data"] == []


def test_a_cut_body_is_the_clients_abort_not_a_500(
    tight: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    alice = _registering(tight)()
    task = _task(tight, alice)
    storage = app_storage(tight.app)
    before = _keys(storage)
    with caplog.at_level(logging.INFO):
        status, _ = _cut(tight, alice, task, "disconnect")
    assert status == 400
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert any("client's abort" in r.getMessage() for r in caplog.records)
    assert _keys(storage) == before


def test_an_upload_past_the_workers_bound_is_503_before_its_body(tight: TestClient) -> None:
    alice = _registering(tight)()
    task = _task(tight, alice)
    storage = app_storage(tight.app)
    before = _keys(storage)
    state = tight.app.state  # type: ignore[attr-defined]
    kept = getattr(state, "upload_slots", None)
    state.upload_slots = slots = UploadSlots(1)
    try:
        assert slots.take()  # another upload runs
        refused = _upload(tight, alice, task, b"x" * 1000)
        assert refused.status_code == 503
        assert refused.json()["error"]["code"] == "SERVICE_UNAVAILABLE"
        assert refused.headers["retry-after"] == "2"
        assert _keys(storage) == before
        slots.give_back()
        assert _upload(tight, alice, task, b"x" * 1000).status_code == 201
        assert slots.running == 0  # given back once answered
    finally:
        state.upload_slots = kept


def test_a_refused_record_deletes_the_stored_bytes(tight: TestClient) -> None:
    """Stored before the row is tried: a task that is not the caller's (404), or one that
    does not exist, leaves nothing."""
    register = _registering(tight)
    alice, bob = register(), register()
    task = _task(tight, alice)
    storage = app_storage(tight.app)
    before = _keys(storage)
    assert _upload(tight, bob, task, b"y" * 5000).status_code == 404
    assert _upload(tight, alice, 999_999_999, b"y" * 5000).status_code == 404
    assert _keys(storage) == before
