"""Attachments end to end on both storage backends (tests/attachments/conftest.py): upload,
list, get, download, delete with the bytes compared; the limits; bad bodies; hostile names;
headers; sharing; trash, restore and purge with the bytes compared."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.engine import Engine

from backend.api.responses import EXAMPLES
from backend.services.history.trash import purge_expired
from backend.services.tasks.attachments import orphan_cutoff, sweep_orphans
from backend.storage import ObjectStorage, new_key
from tests.attachments.conftest import MAX_FILE, QUOTA
from tests.conftest import Account

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


def _task(files: TestClient, who: Account, list_id: int | None = None) -> int:
    body: dict[str, Any] = {"title": "with files"}
    if list_id is not None:
        body["list_id"] = list_id
    answer = files.post("/api/tasks", json=body, headers=who.headers)
    assert answer.status_code == 201, answer.text
    return int(answer.json()["data"]["id"])


def _upload(
    files: TestClient, who: Account, task: int, data: bytes, name: str = "a.bin", **extra: Any
) -> httpx.Response:
    return files.post(
        f"/api/tasks/{task}/attachments",
        files={"file": (name, data, extra.pop("content_type", "application/octet-stream"))},
        headers=who.headers,
        **extra,
    )


def _download(files: TestClient, who: Account, path: str) -> httpx.Response:
    """The download's answer, the presigned URL's when it redirects (S3)."""
    answer = files.get(f"{path}/download", headers=who.headers, follow_redirects=False)
    if answer.status_code == 302:
        return httpx.get(answer.headers["location"])
    return answer


def _keys(storage: ObjectStorage) -> set[str]:
    return {found.key for found in storage.list()}


def test_round_trip(files: TestClient, people: Callable[..., Account], storage: ObjectStorage):
    alice = people()
    task = _task(files, alice)
    data = bytes(range(256)) * 300
    before = _keys(storage)
    created = _upload(files, alice, task, data, "report.bin")
    assert created.status_code == 201, created.text
    row = created.json()["data"]
    assert set(row) == {
        "id",
        "task_id",
        "filename",
        "content_type",
        "size",
        "sha256",
        "created_at",
        "uploaded_by",
    }
    assert row["size"] == len(data) and row["sha256"] == hashlib.sha256(data).hexdigest()
    assert row["task_id"] == task and row["uploaded_by"] == alice.id
    assert row["filename"] == "report.bin"
    path = f"/api/tasks/{task}/attachments/{row['id']}"
    assert created.headers["location"] == path
    assert len(_keys(storage) - before) == 1
    listed = files.get(f"/api/tasks/{task}/attachments", headers=alice.headers)
    assert listed.status_code == 200 and listed.json()["data"] == [row]
    assert files.get(path, headers=alice.headers).json()["data"] == row
    got = _download(files, alice, path)
    assert got.status_code == 200 and got.content == data
    assert got.headers["content-disposition"].startswith("attachment;")
    if storage.kind == "filesystem":  # S3 signs type, disposition and caching alone
        assert got.headers["x-content-type-options"] == "nosniff"
        assert "sandbox" in got.headers["content-security-policy"]
    limits = files.get("/api/attachments/limits", headers=alice.headers).json()["data"]
    assert limits == {
        "max_file_bytes": MAX_FILE,
        "max_per_task": 100,
        "quota_bytes": QUOTA,
        "used_bytes": len(data),
    }
    assert files.delete(path, headers=alice.headers).status_code == 204
    assert files.get(path, headers=alice.headers).status_code == 404
    assert _download(files, alice, path).status_code == 404
    # After the commit (the response's background task): the bytes are gone.
    assert _keys(storage) == before


def test_sizes(files: TestClient, people: Callable[..., Account], storage: ObjectStorage):
    alice = people()
    task = _task(files, alice)
    empty = _upload(files, alice, task, b"")
    assert empty.status_code == 201, empty.text
    assert empty.json()["data"]["size"] == 0
    assert empty.json()["data"]["sha256"] == hashlib.sha256(b"").hexdigest()
    path = f"/api/tasks/{task}/attachments/{empty.json()['data']['id']}"
    assert _download(files, alice, path).content == b""
    full = _upload(files, alice, task, b"x" * MAX_FILE)
    assert full.status_code == 201 and full.json()["data"]["size"] == MAX_FILE
    before = _keys(storage)
    over = _upload(files, alice, task, b"x" * (MAX_FILE + 1))
    assert over.status_code == 413 and over.json()["error"]["code"] == "PAYLOAD_TOO_LARGE"
    # Far past the route's body limit: refused at the edge.
    huge = _upload(files, alice, task, b"x" * (MAX_FILE + 200_000))
    assert huge.status_code == 413
    assert _keys(storage) == before
    listed = files.get(f"/api/tasks/{task}/attachments", headers=alice.headers).json()["data"]
    assert len(listed) == 2


def test_bad_bodies(files: TestClient, people: Callable[..., Account], storage: ObjectStorage):
    alice = people()
    task = _task(files, alice)
    url = f"/api/tasks/{task}/attachments"
    before = _keys(storage)
    answers = [
        files.post(url, files={"other": ("a", b"x")}, headers=alice.headers),
        files.post(url, data={"file": "text, no file"}, headers=alice.headers),
        files.post(
            url, files=[("file", ("a", b"x")), ("file", ("b", b"y"))], headers=alice.headers
        ),
        files.post(url, files={"file": ("a", b"x")}, data={"x": "1"}, headers=alice.headers),
        files.post(url, json={"file": "x"}, headers=alice.headers),
        files.post(
            url,
            content=b"garbage",
            headers={**alice.headers, "Content-Type": "multipart/form-data; boundary=zz"},
        ),
        files.post(
            url, content=b"", headers={**alice.headers, "Content-Type": "multipart/form-data"}
        ),
    ]
    for answer in answers:
        assert 400 <= answer.status_code < 500, answer.text
        assert "error" in answer.json()
    assert _keys(storage) == before
    assert files.get(url, headers=alice.headers).json()["data"] == []


def _raw_post(app: Any, path: str, headers: list[tuple[bytes, bytes]], body: bytes) -> int:
    """POST straight to the ASGI app, the headers exactly as given (a client library would
    correct a lying Content-Length); the answer's status."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"testserver"), *headers],
        "client": ("127.0.0.1", 1),
        "server": ("testserver", 80),
        "state": {},
    }
    messages = [{"type": "http.request", "body": body, "more_body": False}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    anyio.run(app, scope, receive, send)
    return int(next(m["status"] for m in sent if m["type"] == "http.response.start"))


def test_lying_content_length(
    files: TestClient, people: Callable[..., Account], storage: ObjectStorage
):
    alice = people()
    task = _task(files, alice)
    url = f"/api/tasks/{task}/attachments"
    request = files.build_request(
        "POST", url, files={"file": ("a", b"x" * 1000)}, headers=alice.headers
    )
    body = request.read()
    kind = request.headers["content-type"].encode()
    before = _keys(storage)
    for length in (b"-1", b"10", str(MAX_FILE * 100).encode(), b"abc", b"1e9"):
        headers = [
            (b"authorization", alice.headers["Authorization"].encode()),
            (b"content-type", kind),
            (b"content-length", length),
        ]
        answer = _raw_post(
            files.app, url, headers, body[: int(length)] if length == b"10" else body
        )
        assert 400 <= answer < 500, length
    assert _keys(storage) == before
    assert files.get(url, headers=alice.headers).json()["data"] == []


@pytest.mark.parametrize(
    ("name", "kept"),
    [
        ("../../etc/passwd", "passwd"),
        ("C:\\fakepath\\x.txt", "x.txt"),
        ("a\x00b\x1bc\x7f.txt", "abc.txt"),
        ('q"uote;.txt', 'q"uote;.txt'),
        ("evil\u202etxt.exe", "eviltxt.exe"),
        ("..", "file"),
        ("é" * 300 + ".pdf", None),
    ],
)
def test_hostile_names(
    files: TestClient, people: Callable[..., Account], name: str, kept: str | None
):
    alice = people()
    task = _task(files, alice)
    # By hand: a client library would percent-encode the name; a hostile one sends it raw.
    body = (
        b'--B\r\nContent-Disposition: form-data; name="file"; filename="'
        + name.replace('"', '\\"').encode()
        + b'"\r\nContent-Type: text/plain\r\n\r\nhello\r\n--B--\r\n'
    )
    answer = files.post(
        f"/api/tasks/{task}/attachments",
        content=body,
        headers={**alice.headers, "Content-Type": "multipart/form-data; boundary=B"},
    )
    assert answer.status_code == 201, answer.text
    stored = answer.json()["data"]["filename"]
    if kept is not None:
        assert stored == kept
    assert len(stored.encode()) <= 255 and "/" not in stored and "\\" not in stored
    got = _download(files, alice, f"/api/tasks/{task}/attachments/{answer.json()['data']['id']}")
    disposition = got.headers["content-disposition"]
    assert "\r" not in disposition and "\n" not in disposition and "/" not in disposition
    assert got.content == b"hello"


@pytest.mark.parametrize(
    "data",
    [
        b"<!DOCTYPE html><html><script>alert(1)</script></html>",
        b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"><script>x</script></svg>',
    ],
    ids=["html", "svg"],
)
def test_active_types_never_inline(files: TestClient, people: Callable[..., Account], data: bytes):
    alice = people()
    task = _task(files, alice)
    # The declared type lies (image/png): the detected one is kept, and served inert.
    answer = _upload(files, alice, task, data, "x.html", content_type="image/png")
    assert answer.status_code == 201
    assert answer.json()["data"]["content_type"] != "image/png"
    path = f"/api/tasks/{task}/attachments/{answer.json()['data']['id']}"
    got = _download(files, alice, f"{path}")
    assert got.status_code == 200 and got.content == data
    assert got.headers["content-type"] == "application/octet-stream"
    assert got.headers["content-disposition"].startswith("attachment;")
    # Whatever the query string asks.
    inline = files.get(
        f"{path}/download?inline=1&response-content-disposition=inline",
        headers=alice.headers,
        follow_redirects=False,
    )
    final = httpx.get(inline.headers["location"]) if inline.status_code == 302 else inline
    assert final.headers["content-disposition"].startswith("attachment;")


def test_detected_type(files: TestClient, people: Callable[..., Account]):
    alice = people()
    task = _task(files, alice)
    answer = _upload(files, alice, task, PNG, "photo.txt", content_type="text/plain")
    assert answer.json()["data"]["content_type"] == "image/png"


def test_per_task_limit(
    files: TestClient, people: Callable[..., Account], db_engine: Engine, storage: ObjectStorage
):
    alice = people()
    task = _task(files, alice)
    first = _upload(files, alice, task, b"one").json()["data"]
    with db_engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO task_attachments (user_id, task_id, uploaded_by, storage_key, "
                "filename, content_type, size, sha256) SELECT user_id, task_id, uploaded_by, "
                "'zz/filler' || n, filename, content_type, 0, sha256 FROM task_attachments, "
                "generate_series(1, 99) n WHERE id = :id"
            ),
            {"id": first["id"]},
        )
    before = _keys(storage)
    full = _upload(files, alice, task, b"two")
    assert full.status_code == 422
    assert full.json() == EXAMPLES["too_many_attachments"].example()["value"]
    assert _keys(storage) == before


def test_quota_under_concurrent_uploads(
    files: TestClient, people: Callable[..., Account], storage: ObjectStorage
):
    alice = people()
    task = _task(files, alice)
    size = 60_000  # 16 fit in the quota, the 17th would not
    before = _keys(storage)

    def one(n: int) -> int:
        return _upload(files, alice, task, bytes([n]) * size).status_code

    with ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(one, range(20)))
    assert sorted(answers) == [201] * (QUOTA // size) + [422] * (20 - QUOTA // size)
    refused = _upload(files, alice, task, b"x" * size)
    assert refused.json() == EXAMPLES["attachment_quota_reached"].example()["value"]
    used = files.get("/api/attachments/limits", headers=alice.headers).json()["data"]
    assert used["used_bytes"] == size * (QUOTA // size) <= QUOTA
    assert len(_keys(storage) - before) == QUOTA // size


def test_sharing(files: TestClient, people: Callable[..., Account], db_engine: Engine):
    alice, bob, carol = people(), people(), people()
    list_id = files.post("/api/lists", json={"name": "shared"}, headers=alice.headers).json()[
        "data"
    ]["id"]
    task = _task(files, alice, list_id)
    mine = _upload(files, alice, task, b"alice's").json()["data"]
    path = f"/api/tasks/{task}/attachments/{mine['id']}"
    other_task = _task(files, alice)
    other = _upload(files, alice, other_task, b"elsewhere").json()["data"]
    missing = files.get(f"/api/tasks/{task}/attachments/999999", headers=alice.headers)
    wrong_task = files.get(f"/api/tasks/{task}/attachments/{other['id']}", headers=alice.headers)
    assert wrong_task.status_code == 404 and wrong_task.content == missing.content
    wrong_download = _download(files, alice, f"/api/tasks/{task}/attachments/{other['id']}")
    assert wrong_download.status_code == 404 and wrong_download.content == missing.content

    def member(role: str | None) -> None:
        with db_engine.begin() as conn:
            conn.execute(text("DELETE FROM list_members WHERE member_id = :m"), {"m": bob.id})
            if role:
                conn.execute(
                    text(
                        "INSERT INTO list_members (user_id, list_id, member_id, role) "
                        "VALUES (:owner, :list, :member, :role)"
                    ),
                    {"owner": alice.id, "list": list_id, "member": bob.id, "role": role},
                )

    nobody = files.get(f"/api/tasks/999999/attachments/{mine['id']}", headers=alice.headers)
    for role in ("viewer", "commenter"):
        member(role)
        assert _download(files, bob, path).content == b"alice's"
        assert files.get(f"/api/tasks/{task}/attachments", headers=bob.headers).status_code == 200
        assert _upload(files, bob, task, b"x").status_code == 403
        assert files.delete(path, headers=bob.headers).status_code == 403
    member("editor")
    bobs = _upload(files, bob, task, b"bob's")
    assert bobs.status_code == 201
    # An editor deletes any attachment of the task, the owner's included (its declared rule).
    owners = _upload(files, alice, task, b"alice's too").json()["data"]
    theirs = f"/api/tasks/{task}/attachments/{owners['id']}"
    assert files.delete(theirs, headers=bob.headers).status_code == 204
    assert files.get(theirs, headers=alice.headers).status_code == 404
    member("admin")
    bob_path = f"/api/tasks/{task}/attachments/{bobs.json()['data']['id']}"
    # A stranger, and a removed member: the missing task's 404, byte for byte, everywhere.
    for _ in ("stranger", "removed"):
        for who in (carol, bob) if _ == "removed" else (carol,):
            if _ == "removed":
                member(None)
            answers = [
                files.get(f"/api/tasks/{task}/attachments", headers=who.headers),
                files.get(path, headers=who.headers),
                files.get(f"{path}/download", headers=who.headers, follow_redirects=False),
                files.delete(bob_path, headers=who.headers),
                _upload(files, who, task, b"x"),
            ]
            for answer in answers:
                assert answer.status_code == 404, answer.text
                assert answer.content == nobody.content
    member("admin")
    assert files.delete(path, headers=bob.headers).status_code == 204


def _attachment_entries(files: TestClient, who: Account, cursor: str) -> list[tuple[Any, ...]]:
    """The `attachment.*` entries of `who`'s change feed after `cursor`: type, task, child."""
    feed = files.get("/api/tasks/changes", params={"cursor": cursor}, headers=who.headers)
    assert feed.status_code == 200, feed.text
    return [
        (entry["type"], entry["task_id"], entry["child"])
        for entry in feed.json()["data"]
        if entry["type"].startswith("attachment.")
    ]


def test_the_feeds_name_the_added_and_the_removed_attachment(
    files: TestClient, people: Callable[..., Account], db_engine: Engine
):
    """The owner's and a viewer's change feeds say which attachment was added and which was
    removed (its kind and id), so a client updates its copy without listing the task's."""
    alice, bob = people(), people()
    list_id = _shared_list(files, alice, bob, db_engine)
    with db_engine.begin() as conn:
        conn.execute(
            text("UPDATE list_members SET role = 'viewer' WHERE member_id = :m"), {"m": bob.id}
        )
    task = _task(files, alice, list_id)
    cursors = {
        who.id: files.get("/api/tasks", headers=who.headers).json()["meta"]["changes_cursor"]
        for who in (alice, bob)
    }
    kept = _upload(files, alice, task, b"kept").json()["data"]["id"]
    gone = _upload(files, alice, task, b"gone").json()["data"]["id"]
    deleted = files.delete(f"/api/tasks/{task}/attachments/{gone}", headers=alice.headers)
    assert deleted.status_code == 204, deleted.text
    seen = [
        ("attachment.created", task, {"kind": "attachment", "id": kept}),
        ("attachment.created", task, {"kind": "attachment", "id": gone}),
        ("attachment.deleted", task, {"kind": "attachment", "id": gone}),
    ]
    for who in (alice, bob):
        assert _attachment_entries(files, who, cursors[who.id]) == seen


def test_trash_restore_purge(
    files: TestClient, people: Callable[..., Account], storage: ObjectStorage
):
    alice = people()
    task = _task(files, alice)
    data = b"keep me" * 1000
    before = _keys(storage)
    row = _upload(files, alice, task, data).json()["data"]
    (key,) = _keys(storage) - before
    path = f"/api/tasks/{task}/attachments/{row['id']}"
    assert files.delete(f"/api/tasks/{task}", headers=alice.headers).status_code == 204
    assert key in _keys(storage)  # the bytes stay with the trash
    used = files.get("/api/attachments/limits", headers=alice.headers).json()["data"]
    assert used["used_bytes"] == len(data)  # trashed files count
    restored = files.post(f"/api/trash/{task}/restore", headers=alice.headers)
    assert restored.status_code == 200, restored.text
    assert files.get(path, headers=alice.headers).json()["data"] == row
    got = _download(files, alice, path)
    assert got.content == data and hashlib.sha256(got.content).hexdigest() == row["sha256"]
    assert files.delete(f"/api/tasks/{task}", headers=alice.headers).status_code == 204
    purged = files.delete(f"/api/trash/{task}", headers=alice.headers)
    assert purged.status_code == 204, purged.text
    # After the purge's commit (the response's background task): the bytes are gone.
    assert key not in _keys(storage)
    used = files.get("/api/attachments/limits", headers=alice.headers).json()["data"]
    assert used["used_bytes"] == 0


def test_sweeper_and_expired_purge(
    files: TestClient, people: Callable[..., Account], storage: ObjectStorage, db_engine: Engine
):
    """The worker's jobs: the 30-day purge deletes a trashed task's bytes after its commit;
    the sweeper deletes objects no row names (an upload that crashed before its row), and
    keeps those an attachment or a trash snapshot names."""
    alice = people()
    kept_task, trashed_task, expired_task = (_task(files, alice) for _ in range(3))
    keys = {}
    for name, task in (("kept", kept_task), ("trashed", trashed_task), ("expired", expired_task)):
        before = _keys(storage)
        assert _upload(files, alice, task, name.encode()).status_code == 201
        (keys[name],) = _keys(storage) - before
    for task in (trashed_task, expired_task):
        assert files.delete(f"/api/tasks/{task}", headers=alice.headers).status_code == 204
    orphan = new_key()
    storage.put(orphan, io.BytesIO(b"crashed before its row"), max_bytes=100)
    with db_engine.begin() as conn:
        conn.execute(
            text("UPDATE task_trash SET deleted_at = now() - interval '31 days' WHERE id = :id"),
            {"id": expired_task},
        )
    dropped: list[str] = []
    assert purge_expired(db_engine, drop=dropped.extend) >= 1
    assert keys["expired"] in dropped and keys["trashed"] not in dropped
    # A young orphan stays (it may be an upload in flight).
    sweep_orphans(db_engine, storage, orphan_cutoff(files.app.state.settings))
    assert orphan in _keys(storage)
    sweep_orphans(db_engine, storage, datetime.now(UTC) + timedelta(minutes=1))
    left = _keys(storage)
    assert orphan not in left and keys["expired"] not in left
    assert keys["kept"] in left and keys["trashed"] in left


def _shared_list(files: TestClient, owner: Account, member: Account, db_engine: Engine) -> int:
    made = files.post("/api/lists", json={"name": "team"}, headers=owner.headers)
    list_id = int(made.json()["data"]["id"])
    with db_engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO list_members (user_id, list_id, member_id, role) "
                "VALUES (:owner, :list, :member, 'editor')"
            ),
            {"owner": owner.id, "list": list_id, "member": member.id},
        )
    return list_id


def test_account_deletion_removes_bytes_after_commit(
    files: TestClient, people: Callable[..., Account], storage: ObjectStorage, db_engine: Engine
):
    """The account's files go with its answer (after the commit), its trash's too; a shared
    list's are handed over with the list and stay, bytes identical."""
    alice, bob = people(), people()
    own, trashed = _task(files, alice), _task(files, alice)
    shared = _task(files, alice, _shared_list(files, alice, bob, db_engine))
    keys: dict[str, str] = {}
    rows: dict[str, Any] = {}
    for name, task, who in (
        ("own", own, alice),
        ("trashed", trashed, alice),
        ("shared", shared, alice),
        ("bobs", shared, bob),
    ):
        before = _keys(storage)
        answer = _upload(files, who, task, f"{name}'s bytes".encode())
        assert answer.status_code == 201, answer.text
        rows[name] = answer.json()["data"]
        (keys[name],) = _keys(storage) - before
    assert files.delete(f"/api/tasks/{trashed}", headers=alice.headers).status_code == 204
    assert set(keys.values()) <= _keys(storage)
    assert files.delete("/api/auth/me", headers=alice.headers).status_code == 204
    left = _keys(storage)
    assert keys["own"] not in left and keys["trashed"] not in left
    assert keys["shared"] in left and keys["bobs"] in left
    for name in ("shared", "bobs"):
        path = f"/api/tasks/{shared}/attachments/{rows[name]['id']}"
        got = _download(files, bob, path)
        assert got.status_code == 200 and got.content == f"{name}'s bytes".encode()


def test_account_deletion_rolled_back_keeps_bytes(
    files: TestClient, people: Callable[..., Account], storage: ObjectStorage, db_engine: Engine
):
    """A deletion refused at its COMMIT (a deferred constraint of the database's, made for
    this account) leaves the account, its rows and its bytes."""
    alice = people()
    task = _task(files, alice)
    before = _keys(storage)
    row = _upload(files, alice, task, b"still here").json()["data"]
    (key,) = _keys(storage) - before
    with db_engine.begin() as conn:
        conn.execute(
            text(
                "CREATE FUNCTION test_refuse_at_commit() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN RAISE EXCEPTION 'refused at commit'; END $$"
            )
        )
        conn.execute(
            text(
                "CREATE CONSTRAINT TRIGGER test_refuse_at_commit AFTER DELETE ON users "
                "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW "
                f"WHEN (OLD.id = '{alice.id}') EXECUTE FUNCTION test_refuse_at_commit()"
            )
        )
    try:
        refused = files.delete("/api/auth/me", headers=alice.headers)
    finally:
        with db_engine.begin() as conn:
            conn.execute(text("DROP TRIGGER test_refuse_at_commit ON users"))
            conn.execute(text("DROP FUNCTION test_refuse_at_commit()"))
    assert refused.status_code >= 500, refused.text
    assert "error" in refused.json()
    assert files.get("/api/auth/me", headers=alice.headers).status_code == 200
    assert key in _keys(storage)
    got = _download(files, alice, f"/api/tasks/{task}/attachments/{row['id']}")
    assert got.status_code == 200 and got.content == b"still here"


_FROM_SNAPSHOTS = text(
    "SELECT t.id, j ->> 'storage_key' AS key, (j ->> 'size')::bigint AS size, "
    "j ->> 'uploaded_by' AS uploaded_by FROM task_trash t CROSS JOIN LATERAL "
    "jsonb_array_elements(coalesce(t.snapshot -> 'children' -> 'task_attachments', '[]')) j "
    "WHERE t.user_id = :user"
)
_KEPT_ROWS = text(
    "SELECT k.trash_id, k.storage_key, k.size, k.stored_by FROM task_trash_stored k "
    "JOIN task_trash t ON t.id = k.trash_id WHERE t.user_id = :user"
)


def _trashed_files(db_engine: Engine, user: str) -> tuple[set[Any], set[Any]]:
    """The trash's files as its snapshots hold them, and as `task_trash_stored` does."""
    with db_engine.connect() as conn:
        snapshots = {tuple(row) for row in conn.execute(_FROM_SNAPSHOTS, {"user": user})}
        kept = {tuple(row) for row in conn.execute(_KEPT_ROWS, {"user": user})}
    return snapshots, kept


def test_trashed_files_kept_countable(
    files: TestClient, people: Callable[..., Account], db_engine: Engine
):
    """The trash keeps a row per trashed file (migration 0068), in step with its snapshots
    through a deletion with subtasks, a bulk deletion, a restore and a purge: the quota's
    indexed sum counts them until purged."""
    alice, bob = people(), people()
    list_id = _shared_list(files, alice, bob, db_engine)
    parent = _task(files, alice)
    child = files.post(
        "/api/tasks", json={"title": "sub", "parent_id": parent}, headers=alice.headers
    ).json()["data"]["id"]
    listed = _task(files, alice, list_id)
    sizes = {"parent": 1000, "child": 2000, "listed": 3000, "bobs": 4000}
    for name, task, who in (
        ("parent", parent, alice),
        ("child", child, alice),
        ("listed", listed, alice),
        ("bobs", listed, bob),
    ):
        assert _upload(files, who, task, b"z" * sizes[name]).status_code == 201

    def used(who: Account) -> int:
        answer = files.get("/api/attachments/limits", headers=who.headers)
        return int(answer.json()["data"]["used_bytes"])

    assert used(alice) == 6000 and used(bob) == 4000
    assert files.delete(f"/api/tasks/{parent}", headers=alice.headers).status_code == 204
    bulk = files.post(
        "/api/tasks/bulk",
        json={"operations": [{"op": "delete", "id": listed}]},
        headers=alice.headers,
    )
    assert bulk.status_code == 200, bulk.text
    snapshots, kept = _trashed_files(db_engine, alice.id)
    assert snapshots == kept and len(kept) == 4
    assert used(alice) == 6000 and used(bob) == 4000  # trashed files count
    restored = files.post(f"/api/trash/{parent}/restore", headers=alice.headers)
    assert restored.status_code == 200, restored.text
    snapshots, kept = _trashed_files(db_engine, alice.id)
    assert snapshots == kept and len(kept) == 2
    assert used(alice) == 6000
    assert files.delete(f"/api/trash/{listed}", headers=alice.headers).status_code == 204
    assert _trashed_files(db_engine, alice.id) == (set(), set())
    assert used(alice) == 3000 and used(bob) == 0
