"""ChatKit's `Store` over our tables (specs/chat.md, "ChatKit"): threads are conversations, user
and assistant messages `messages` rows (written by the turn only), other items `chatkit_items`.
Each method runs in the caller's own `UnitOfWork`; ids are random `public_id`s (`secrets`),
never the SDK's 32-bit defaults."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

import anyio.to_thread
from chatkit.store import Store, StoreItemType
from chatkit.types import (
    AssistantMessageContent,
    AssistantMessageItem,
    Attachment,
    InferenceOptions,
    Page,
    ThreadItem,
    ThreadMetadata,
    UserMessageItem,
    UserMessageTextContent,
    WidgetItem,
)
from chatkit.widgets import DynamicWidgetRoot
from pydantic import TypeAdapter

from backend.errors import InvalidRequest
from backend.mcp.caller import Caller
from backend.services.chat.chatkit import ChatKitService
from backend.services.rate_limits import HeaderSink

T = TypeVar("T")
_ITEM = TypeAdapter[ThreadItem](ThreadItem)
_PREFIXES: dict[str, str] = {
    "thread": "thr",
    "message": "itm",
    "widget": "wdg",
    "tool_call": "tc",
    "task": "tsk",
    "workflow": "wf",
    "attachment": "atc",
    "sdk_hidden_context": "shcx",
}
ATTACHMENTS_UNSUPPORTED = "Attachments are not supported by this server"


def random_id(kind: str) -> str:
    """A new item id: its kind's prefix and 128 random bits."""
    return f"{_PREFIXES.get(kind, 'itm')}_{secrets.token_hex(16)}"


@dataclass
class ChatKitContext:
    """One `/api/chatkit` request, as the route prepared it."""

    caller: Caller
    headers: HeaderSink
    thread: ThreadMetadata | None = None  # the one named, its owner checked (None: a new one)
    item: ThreadItem | None = None  # the widget a custom action names, its owner checked
    user_item_id: str | None = None  # a turn's stored user message (its ChatKit id)
    turn: Any = None
    action: Any = None  # a custom action's outcome: what the widget's row shows now
    # Where a failing stream leaves its status for the access line (the answer began as 200).
    outcome: dict[str, Any] = field(default_factory=dict)

    @property
    def thread_title(self) -> str | None:
        return self.thread.title if self.thread is not None else None

    @contextmanager
    def chatkit(self, *, counts_write: bool = False) -> Iterator[ChatKitService]:
        """ChatKit's service, in a unit of work of the caller's own."""
        with self.caller.work(counts_write=counts_write, response_headers=self.headers) as work:
            yield work.service(ChatKitService)


def thread_of(row: Any) -> ThreadMetadata:
    return ThreadMetadata(id=row.public_id, title=row.title, created_at=row.created_at)


def item_of(thread_id: str, row: Any) -> ThreadItem | None:
    """A stored row as ChatKit's item (None: a failed turn's empty answer, not shown)."""
    created = row.created_at
    if row.kind == "user":
        return UserMessageItem(
            id=row.public_id,
            thread_id=thread_id,
            created_at=created,
            content=[UserMessageTextContent(text=row.content)],
            inference_options=InferenceOptions(),
        )
    if row.kind == "assistant":
        if not row.content:
            return None
        return AssistantMessageItem(
            id=row.public_id,
            thread_id=thread_id,
            created_at=created,
            content=[AssistantMessageContent(text=row.content)],
        )
    body = {**row.item, "id": row.public_id, "thread_id": thread_id}
    if body.get("type") == "widget":
        # As a dynamic widget: the SDK's named widget classes are deprecated.
        body["widget"] = DynamicWidgetRoot.model_validate(body.get("widget") or {})
        return WidgetItem.model_validate(body)
    return _ITEM.validate_python(body)


def items_page(thread_id: str, rows: list[Any], more: bool) -> Page[ThreadItem]:
    items = [item for row in rows if (item := item_of(thread_id, row)) is not None]
    return Page(data=items, has_more=more, after=rows[-1].public_id if rows and more else None)


async def _using(
    context: ChatKitContext, use: Callable[[ChatKitService], T], *, counts_write: bool = False
) -> T:
    """`use` of ChatKit's service in a worker thread (psycopg2 blocks)."""

    def run() -> T:
        with context.chatkit(counts_write=counts_write) as chatkit:
            return use(chatkit)

    return await anyio.to_thread.run_sync(run)


class TaskStore(Store[ChatKitContext]):
    """The store `ChatKitServer` writes a turn's items to and reads threads from."""

    def generate_thread_id(self, context: ChatKitContext) -> str:
        if context.thread is None:
            raise RuntimeError("a new thread's conversation is started by the route")
        return context.thread.id

    def generate_item_id(
        self, item_type: StoreItemType, thread: ThreadMetadata, context: ChatKitContext
    ) -> str:
        # The user message the turn stored: the SDK builds its item with this id.
        if item_type == "message" and context.user_item_id is not None:
            item_id, context.user_item_id = context.user_item_id, None
            return item_id
        return random_id(item_type)

    async def load_thread(self, thread_id: str, context: ChatKitContext) -> ThreadMetadata:
        if context.thread is not None and context.thread.id == thread_id:
            return context.thread
        return await _using(context, lambda chatkit: thread_of(chatkit.thread(thread_id)))

    async def save_thread(self, thread: ThreadMetadata, context: ChatKitContext) -> None:
        known = context.thread
        if known is not None and known.id == thread.id and thread.title in (None, known.title):
            return  # the SDK saving the turn's thread (untitled, or with its stored title)
        await _using(context, lambda chatkit: chatkit.rename(thread.id, thread.title))
        context.thread = thread.model_copy()

    async def load_thread_items(
        self, thread_id: str, after: str | None, limit: int, order: str, context: ChatKitContext
    ) -> Page[ThreadItem]:
        rows, more = await _using(context, lambda c: c.items(thread_id, limit, after, order))
        return items_page(thread_id, rows, more)

    async def load_threads(
        self, limit: int, after: str | None, order: str, context: ChatKitContext
    ) -> Page[ThreadMetadata]:
        rows, more = await _using(context, lambda chatkit: chatkit.threads(limit, after, order))
        threads = [thread_of(row) for row in rows]
        return Page(data=threads, has_more=more, after=threads[-1].id if more else None)

    async def add_thread_item(
        self, thread_id: str, item: ThreadItem, context: ChatKitContext
    ) -> None:
        await self.save_item(thread_id, item, context)

    async def save_item(self, thread_id: str, item: ThreadItem, context: ChatKitContext) -> None:
        if isinstance(item, UserMessageItem | AssistantMessageItem):
            return  # a message: the chat turn stores it (one history with /api/chat)
        body = item.model_dump(mode="json", exclude={"id", "thread_id"})
        await _using(context, lambda chatkit: chatkit.save_item(thread_id, item.id, body))

    async def load_item(self, thread_id: str, item_id: str, context: ChatKitContext) -> ThreadItem:
        if context.item is not None and context.item.id == item_id:
            return context.item
        item = item_of(thread_id, await _using(context, lambda c: c.item(thread_id, item_id)))
        if item is None:
            raise InvalidRequest.at("params.item_id", "This item has no content")
        return item

    async def delete_thread(self, thread_id: str, context: ChatKitContext) -> None:
        await _using(context, lambda chatkit: chatkit.delete(thread_id), counts_write=True)

    async def delete_thread_item(
        self, thread_id: str, item_id: str, context: ChatKitContext
    ) -> None:
        # A retry's: items go, messages stay (the turn's retry replaces its answer).
        await _using(context, lambda chatkit: chatkit.delete_item(thread_id, item_id))

    async def save_attachment(self, attachment: Attachment, context: ChatKitContext) -> None:
        raise InvalidRequest.at("params.input.attachments", ATTACHMENTS_UNSUPPORTED)

    async def load_attachment(self, attachment_id: str, context: ChatKitContext) -> Attachment:
        raise InvalidRequest.at("params.input.attachments", ATTACHMENTS_UNSUPPORTED)

    async def delete_attachment(self, attachment_id: str, context: ChatKitContext) -> None:
        raise InvalidRequest.at("params.attachment_id", ATTACHMENTS_UNSUPPORTED)


def now() -> datetime:
    return datetime.now(UTC)
