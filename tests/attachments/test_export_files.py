"""The export's files on each storage backend (the filesystem, S3 on radosgw): every
attachment's bytes in `attachments/<id>/<name>` as uploaded, read from the storage after the
page's unit of work closed, and one whose bytes are gone left out of the archive and its
lines alike."""

from __future__ import annotations

import io
import json
import os
import zipfile
from collections.abc import Callable

from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from backend.storage import ObjectStorage
from tests.conftest import Account


def test_the_export_holds_each_file_as_uploaded(
    files: TestClient, people: Callable[..., Account], storage: ObjectStorage, db_engine: Engine
) -> None:
    owner = people()
    task = files.post("/api/tasks", json={"title": "Receipts"}, headers=owner.headers)
    task_id = task.json()["data"]["id"]
    sent = {"receipt.pdf": os.urandom(70_000), "notes.txt": b"Paid in full\n", "gone.bin": b"x"}
    ids = {}
    for name, content in sent.items():
        made = files.post(
            f"/api/tasks/{task_id}/attachments",
            files={"file": (name, content, "application/octet-stream")},
            headers=owner.headers,
        )
        assert made.status_code == 201, made.text
        ids[name] = made.json()["data"]["id"]
    with db_engine.connect() as conn:
        key = conn.execute(
            text("SELECT storage_key FROM task_attachments WHERE id = :id"), {"id": ids["gone.bin"]}
        ).scalar_one()
    storage.delete(key)  # its bytes gone (a sweep, an operator): its row still there

    answer = files.get("/api/export", headers=owner.headers)

    assert answer.status_code == 200, answer.text
    zipped = zipfile.ZipFile(io.BytesIO(answer.content))
    for name in ("receipt.pdf", "notes.txt"):
        assert zipped.read(f"attachments/{ids[name]}/{name}") == sent[name]
    lines = [json.loads(line) for line in zipped.read("attachments.jsonl").splitlines()]
    assert [line["id"] for line in lines] == [ids["receipt.pdf"], ids["notes.txt"]]
    assert json.loads(zipped.read("manifest.json"))["counts"]["attachments"] == 2
    assert not [n for n in zipped.namelist() if "gone.bin" in n]
