"""`stored=` is the whole story (issue 71; backend/models/task_children.py `Stored`): a second
stored child, declared and registered for the test as a new child's migration would
(`task_children_register`, `task_children_store`), gets from the registry alone what
attachments get: its bytes survive the sweeper while a row names them (on its task, in a
trash), count against their uploader's quota, are freed by a purge and by the account's
deletion, and go with the sweeper once no row names them. And the sweeper aborts an upload
never finished (a multipart upload on the real radosgw, a partial file on the filesystem)
once it is older than `ATTACHMENTS_ORPHAN_SECONDS`, not before."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import BigInteger, Column, Engine, MetaData, Table, Text, text

from backend.models import task_children
from backend.models.task_children import Stored, TaskChild
from backend.services.tasks.attachments import orphan_cutoff, sweep_orphans
from backend.storage import ObjectStorage, new_key
from backend.storage.filesystem import INCOMING, FilesystemStorage
from backend.storage.s3 import S3Storage
from tests.conftest import Account
from tests.test_task_children import registration

NOTES = "test_voice_notes"


@pytest.fixture
def voice_notes(setup_engine: Engine, monkeypatch: pytest.MonkeyPatch) -> Iterator[TaskChild]:
    """A throwaway stored child: its table and registration as its migration would make them,
    its declaration among `CHILDREN` for the test's duration; then gone."""
    with setup_engine.begin() as conn:
        conn.execute(
            text(
                f"""
                CREATE TABLE {NOTES} (
                    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                    user_id TEXT NOT NULL,
                    task_id BIGINT NOT NULL,
                    list_id BIGINT,
                    recorded_by TEXT REFERENCES users (id) ON DELETE SET NULL,
                    blob_key TEXT NOT NULL,
                    bytes BIGINT NOT NULL,
                    FOREIGN KEY (user_id, task_id) REFERENCES tasks (user_id, id)
                        ON UPDATE CASCADE ON DELETE CASCADE
                );
                CALL task_children_register('{NOTES}', 'test_voice_note');
                CALL task_children_store('{NOTES}', 'blob_key', 'bytes', 'recorded_by');
                """
            )
        )
    table = Table(
        NOTES,
        MetaData(),
        *(Column(name, Text) for name in ("user_id", "list_id", "recorded_by", "blob_key")),
        *(Column(name, BigInteger) for name in ("id", "task_id", "bytes")),
    )
    notes = TaskChild(
        SimpleNamespace(__table__=table, __tablename__=NOTES),  # type: ignore[arg-type]
        noun="test voice note",
        stored=Stored(key="blob_key", size="bytes", by="recorded_by"),
    )
    monkeypatch.setattr(task_children, "CHILDREN", (*task_children.CHILDREN, notes))
    try:
        yield notes
    finally:
        with setup_engine.begin() as conn:
            conn.execute(text("DELETE FROM task_children WHERE name = :n"), {"n": NOTES})
            conn.execute(text(f"DROP TABLE {NOTES}"))


def _task(files: TestClient, who: Account) -> int:
    made = files.post("/api/tasks", json={"title": "recorded"}, headers=who.headers)
    assert made.status_code == 201, made.text
    return int(made.json()["data"]["id"])


def _record(
    engine: Engine, storage: ObjectStorage, who: Account, task: int, data: bytes
) -> tuple[int, str]:
    """A note as the child's own upload would add it: the bytes stored, then its row."""
    key = new_key()
    storage.put(key, io.BytesIO(data), max_bytes=len(data))
    with engine.begin() as conn:
        row = conn.execute(
            text(
                f"INSERT INTO {NOTES} (user_id, task_id, recorded_by, blob_key, bytes) "
                "VALUES (:owner, :task, :owner, :key, :size) RETURNING id"
            ),
            {"owner": who.id, "task": task, "key": key, "size": len(data)},
        ).scalar_one()
    return int(row), key


def _keys(storage: ObjectStorage) -> set[str]:
    return {found.key for found in storage.list()}


def test_a_second_stored_child_gets_the_sweeper_quota_trash_and_deletion(
    files: TestClient,
    people: Callable[..., Account],
    storage: ObjectStorage,
    db_engine: Engine,
    voice_notes: TaskChild,
) -> None:
    with db_engine.connect() as conn:
        registered = conn.execute(
            text(
                "SELECT noun, edits, stored, stored_size, stored_by FROM task_children "
                "WHERE name = :n"
            ),
            {"n": NOTES},
        ).one()
    assert tuple(registered) == registration(voice_notes)
    alice = people()
    kept_task, trashed_task, emptied_task = (_task(files, alice) for _ in range(3))
    _, kept = _record(db_engine, storage, alice, kept_task, b"k" * 100)
    _, trashed = _record(db_engine, storage, alice, trashed_task, b"t" * 200)
    gone_row, gone = _record(db_engine, storage, alice, emptied_task, b"g" * 400)
    assert files.delete(f"/api/tasks/{trashed_task}", headers=alice.headers).status_code == 204

    # The quota counts its bytes, the trashed ones too (the trash's own row of them).
    limits = files.get("/api/attachments/limits", headers=alice.headers)
    assert limits.json()["data"]["used_bytes"] == 700

    # Named (on its task, in a trash): kept by the sweeper, however old; its row gone: swept.
    with db_engine.begin() as conn:
        conn.execute(text(f"DELETE FROM {NOTES} WHERE id = :id"), {"id": gone_row})
    sweep_orphans(db_engine, storage, datetime.now(UTC) + timedelta(minutes=1))
    left = _keys(storage)
    assert kept in left and trashed in left
    assert gone not in left

    # A purge frees the trashed bytes after its commit; the account's deletion, the rest.
    assert files.delete(f"/api/trash/{trashed_task}", headers=alice.headers).status_code == 204
    assert trashed not in _keys(storage)
    deleted = files.request(
        "DELETE", "/api/auth/me", json={"password": alice.password}, headers=alice.headers
    )
    assert deleted.status_code == 204, deleted.text
    assert kept not in _keys(storage)


def _unfinished(storage: ObjectStorage) -> list[Any]:
    if isinstance(storage, S3Storage):
        listed = storage.client.list_multipart_uploads(Bucket=storage.bucket, Prefix=storage.prefix)
        return list(listed.get("Uploads", []))
    assert isinstance(storage, FilesystemStorage)
    return list((storage.root / INCOMING).glob("*.part"))


def test_the_sweeper_aborts_an_unfinished_upload_past_its_age(
    files: TestClient, storage: ObjectStorage, db_engine: Engine
) -> None:
    """An upload its process never finished nor aborted (a database freeze, a crash, a kill
    mid-upload): on S3 a multipart upload, started here on the real radosgw; on the
    filesystem a partial file."""
    if isinstance(storage, S3Storage):
        storage.client.create_multipart_upload(
            Bucket=storage.bucket, Key=storage.prefix + new_key()
        )
    else:
        assert isinstance(storage, FilesystemStorage)
        (storage.root / INCOMING / "crashed.part").write_bytes(b"half")
    settings = files.app.state.settings
    # Younger than the sweeper's age (an hour by default): it may be an upload in flight.
    sweep_orphans(db_engine, storage, orphan_cutoff(settings))
    assert len(_unfinished(storage)) == 1
    aged = settings.model_copy(update={"attachments_orphan_seconds": 0})
    assert sweep_orphans(db_engine, storage, orphan_cutoff(aged)) >= 1
    assert _unfinished(storage) == []
