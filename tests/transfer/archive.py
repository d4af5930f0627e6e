"""Our export's zip (issue 89's format), built in a test from task objects as `GET
/api/tasks/{id}` answers them."""

from __future__ import annotations

import io
import json
import zipfile
from typing import Any


def export_zip(
    lists: list[dict[str, Any]] = (),  # type: ignore[assignment]
    tasks: list[dict[str, Any]] = (),  # type: ignore[assignment]
    comments: list[dict[str, Any]] = (),  # type: ignore[assignment]
    filters: list[dict[str, Any]] = (),  # type: ignore[assignment]
    attachments: list[tuple[dict[str, Any], bytes]] = (),  # type: ignore[assignment]
) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        manifest = {
            "format": "task-api-export",
            "version": 1,
            "exported_at": "2026-11-29T12:00:00Z",
            "account": {"id": "someone", "email": "someone@example.com"},
            "counts": {
                "lists": len(lists),
                "tasks": len(tasks),
                "comments": len(comments),
                "attachments": len(attachments),
                "filters": len(filters),
            },
        }
        archive.writestr("manifest.json", json.dumps(manifest))
        for name, rows in (
            ("lists.jsonl", lists),
            ("tasks.jsonl", tasks),
            ("comments.jsonl", comments),
            ("filters.jsonl", filters),
            ("attachments.jsonl", [row for row, _ in attachments]),
        ):
            archive.writestr(name, "".join(json.dumps(row) + "\n" for row in rows))
        for row, data in attachments:
            archive.writestr(f"attachments/{row['id']}/{row['filename']}", data)
    return buffer.getvalue()


def task(task_id: int, title: str, **fields: Any) -> dict[str, Any]:
    return {"id": task_id, "title": title, "list_id": None, "parent_id": None, **fields}
