"""list_attachments: a task's files, each with a download link (a `Credential`)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, Field, create_model

from backend.mcp.tools.common import Credential, OneTask, Tool, child_page
from backend.models.attachment import TASK_ATTACHMENTS, AttachmentPublic
from backend.services.tasks.task_children import TaskAttachmentService
from backend.services.unit_of_work import UnitOfWork
from backend.storage.app import storage_for

ListAttachmentsArguments: Any = create_model(
    "ListAttachmentsArguments", __base__=OneTask, **child_page("attachments")
)


class AttachmentLink(AttachmentPublic):
    download_url: Annotated[
        str | None,
        Credential(
            where="A download link is a credential while it lives: a chat never shows it. "
            "The user downloads the file in their own client (GET {download_path}), which "
            "follows the API's redirect to a fresh link."
        ),
    ] = Field(
        description="A presigned URL good for `expires_in_seconds` (S3 storage): give it to "
        "the user, never store it. Null with filesystem storage: download through the API's "
        "`download_path` with the bearer token."
    )
    download_path: str = Field(examples=["/api/tasks/42/attachments/11/download"])
    expires_in_seconds: int | None = Field(examples=[300])


class AttachmentsPage(BaseModel):
    attachments: list[AttachmentLink]
    has_more: bool = Field(description="More attachments follow: call again with after_id.")


def _list_attachments(work: UnitOfWork, given: Any) -> AttachmentsPage:
    attachment_rows: TaskAttachmentService = work.service(TaskAttachmentService)
    found, more = attachment_rows.page(given.task_id, given.limit, given.after_id)
    storage, ttl = storage_for(work.settings), work.settings.attachments_url_seconds
    links = []
    for row in found:
        url = storage.presigned_get(
            row.storage_key, filename=row.filename, content_type=row.content_type, ttl_seconds=ttl
        )
        links.append(
            AttachmentLink(
                **AttachmentPublic.model_validate(row).model_dump(),
                download_url=url,
                download_path=f"/api/tasks/{row.task_id}/attachments/{row.id}/download",
                expires_in_seconds=ttl if url else None,
            )
        )
    return AttachmentsPage(attachments=links, has_more=more)


TOOLS: tuple[Tool[Any], ...] = (
    Tool(
        name="list_attachments",
        action=TASK_ATTACHMENTS.action(writes=False),
        title="List a task's attachments",
        description="A task's files, oldest first (after after_id), each with its name, "
        "detected type, size, sha256 and a download link that lives minutes "
        "(download_url, with S3 storage; else download_path through the API). Anyone who may "
        "read the task. Returns attachments and has_more.",
        arguments=ListAttachmentsArguments,
        result=AttachmentsPage,
        run=_list_attachments,
        read_only=True,
    ),
)
