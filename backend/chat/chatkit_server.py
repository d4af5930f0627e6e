"""ChatKit's protocol on our chat turn (specs/chat.md, "ChatKit"). All a client can get wrong
is settled in a worker thread before a byte is sent (`prepare`); a turn then streams through the
SDK's server, run as a task of its own, so a client that goes away stops hearing it, not it."""

from __future__ import annotations

import asyncio
import re
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import anyio.to_thread
from agents.models.interface import Model
from chatkit import types as kit
from chatkit.actions import Action
from chatkit.server import ChatKitServer
from pydantic import BaseModel, TypeAdapter, ValidationError

from backend.chat import chatkit_widgets as widgets
from backend.chat import turn
from backend.chat.chatkit_store import (
    ATTACHMENTS_UNSUPPORTED,
    ChatKitContext,
    TaskStore,
    item_of,
    items_page,
    now,
    random_id,
    thread_of,
)
from backend.errors import InvalidRequest, NotFound, describe, error_message, validation_details
from backend.mcp.caller import Caller
from backend.mcp.server import run_tool
from backend.mcp.tools import BY_NAME
from backend.models.conversation import MessageText
from backend.models.task import TASK_ID_MAX
from backend.models.types import Title
from backend.observability.logging import OUTCOME_STATUS_KEY
from backend.services.chat.chatkit import ITEM_NOT_FOUND, ChatKitService
from backend.services.tasks.service import TaskService
from backend.services.unit_of_work import UnitOfWork

REQUEST = TypeAdapter[kit.ChatKitReq](kit.ChatKitReq)
_MESSAGE = TypeAdapter[str](MessageText)
_TITLE = TypeAdapter[str](Title)
PAGE_DEFAULT, PAGE_MAX = 20, 100
TITLE_LENGTH = 60
NOT_SUPPORTED = "{} is not supported by this server"
# ChatKit's messages carry no Idempotency-Key: each gets one, so a retry is the turn's retry.
KEY_PREFIX = "chatkit-"
_GET_TASK = BY_NAME["get_task"]


def parse(body: bytes) -> Any:
    """The request, or the 422 of a body that is not one (never the SDK's 500)."""
    try:
        request = REQUEST.validate_json(body or b"null")
    except ValidationError as exc:
        details = validation_details(exc.errors(include_input=False))
        raise InvalidRequest("The body is not a ChatKit request", details=details) from None
    params = request.params
    for name in ("thread_id", "item_id", "after", "attachment_id"):
        _check_id(getattr(params, name, None), f"params.{name}")
    for item_id in getattr(params, "item_ids", None) or ():
        _check_id(item_id, "params.item_ids")
    return request


# A ChatKit id of ours (`thr_`... and hex): anything else names nothing and reaches no query.
_ID = re.compile(r"[A-Za-z0-9_-]{1,100}")


def _check_id(value: str | None, field: str) -> None:
    if value is not None and _ID.fullmatch(value) is None:
        raise InvalidRequest.at(field, "Not a ChatKit id of this server")


def answer_id(user_item_id: str) -> str:
    """The answer's ChatKit id, known before it is stored (migration 0025's trigger agrees)."""
    return "ans_" + user_item_id.removeprefix("msg_")


def to_json(value: BaseModel) -> bytes:
    """A response body as ChatKit's server writes one."""
    return value.model_dump_json(
        by_alias=True, exclude_none=True, context={"exclude_metadata": True}
    ).encode()


@dataclass
class TurnPlan:
    """A streamed turn, begun: what `respond` runs."""

    model: Model
    start: Any
    message: str


@dataclass
class Prepared:
    """What the route sends: `body` (JSON, answered already) or a stream over `context`."""

    context: ChatKitContext
    body: bytes | None = None


def prepare(
    door: UnitOfWork, caller: Caller, request: Any, key: str | None, model: Any
) -> Prepared:
    """Everything before the answer, in a worker thread. `door`: the route's counted unit of
    work (reads go through an uncounted one); `model`: builds the chat model, for a turn."""
    context = ChatKitContext(caller=caller, headers=door.response_headers)
    match request:
        case (
            kit.ThreadsCreateReq() | kit.ThreadsAddUserMessageReq() | kit.ThreadsRetryAfterItemReq()
        ):
            _begin(door, context, request, key, model)
        case kit.ThreadsCustomActionReq():
            _act(door, context, request)
        case kit.ThreadsGetByIdReq():
            with context.chatkit() as chatkit:
                row = chatkit.thread(request.params.thread_id)
                rows, more = chatkit.items(row.public_id, PAGE_DEFAULT, None, "desc")
            page = items_page(row.public_id, rows[::-1], more)
            thread = kit.Thread(**thread_of(row).model_dump(), items=_shown(page))
            return Prepared(context, to_json(thread))
        case kit.ThreadsListReq():
            params = request.params
            with context.chatkit() as chatkit:
                rows, more = chatkit.threads(_limit(params.limit), params.after, params.order)
            threads = [kit.Thread(**thread_of(row).model_dump(), items=kit.Page()) for row in rows]
            after = threads[-1].id if more else None
            return Prepared(context, to_json(kit.Page(data=threads, has_more=more, after=after)))
        case kit.ItemsListReq():
            listing = request.params
            with context.chatkit() as chatkit:
                chatkit.thread(listing.thread_id)
                rows, more = chatkit.items(
                    listing.thread_id, _limit(listing.limit), listing.after, listing.order
                )
            return Prepared(context, to_json(_shown(items_page(listing.thread_id, rows, more))))
        case kit.ThreadsUpdateReq():
            title = _valid(_TITLE, request.params.title, "params.title")
            with door:
                chatkit = door.service(ChatKitService)
                row = chatkit.rename(request.params.thread_id, title)
            return Prepared(
                context, to_json(kit.Thread(**thread_of(row).model_dump(), items=kit.Page()))
            )
        case kit.ThreadsDeleteReq():
            with door:
                chatkit = door.service(ChatKitService)
                chatkit.delete(request.params.thread_id)
            return Prepared(context, b"{}")
        case kit.ItemsFeedbackReq():
            # Checked (the caller's thread and items), not kept: feedback goes nowhere yet.
            if not 1 <= len(request.params.item_ids) <= PAGE_MAX:
                raise InvalidRequest.at("params.item_ids", f"1-{PAGE_MAX} item ids")
            with context.chatkit() as chatkit:
                chatkit.thread(request.params.thread_id)
                for item_id in request.params.item_ids:
                    chatkit.item(request.params.thread_id, item_id)
            return Prepared(context, b"{}")
        case (
            kit.ThreadsAddClientToolOutputReq()
            | kit.ThreadsAddStructuredInputReq()
            | kit.ThreadsSyncCustomActionReq()
        ):
            with context.chatkit() as chatkit:
                chatkit.thread(request.params.thread_id)
            raise InvalidRequest.at("type", NOT_SUPPORTED.format(f"`{request.type}`"))
        case kit.AttachmentsCreateReq() | kit.AttachmentsDeleteReq():
            raise InvalidRequest.at("type", ATTACHMENTS_UNSUPPORTED)
        case kit.InputTranscribeReq():
            raise InvalidRequest.at("type", NOT_SUPPORTED.format("Dictation"))
    return Prepared(context)


def _limit(limit: int | None) -> int:
    if limit is None:
        return PAGE_DEFAULT
    if not 1 <= limit <= PAGE_MAX:
        raise InvalidRequest.at("params.limit", f"limit must be 1-{PAGE_MAX}")
    return limit


def _valid(adapter: TypeAdapter[str], value: Any, field: str) -> str:
    try:
        return adapter.validate_python(value)
    except ValidationError as exc:
        raise InvalidRequest.at(field, error_message(exc.errors()[0])) from None


def _shown(page: kit.Page[kit.ThreadItem]) -> kit.Page[kit.ThreadItem]:
    """Hidden context stays on the server (as the SDK's server does)."""
    page.data = [item for item in page.data if item.type not in _HIDDEN]
    return page


_HIDDEN = ("hidden_context_item", "sdk_hidden_context")


def title_of(message: str) -> str | None:
    """A thread's title from its first message: its first line, at most 60 characters."""
    line = next((line.strip() for line in message.splitlines() if line.strip()), "")
    if len(line) > TITLE_LENGTH:
        line = line[: TITLE_LENGTH - 1].rstrip() + "\u2026"
    try:
        return _TITLE.validate_python(line)
    except ValidationError:
        return None


def message_of(user_input: kit.UserMessageInput) -> str:
    """A ChatKit message's text, under the chat message's rules: else 422, nothing stored."""
    if user_input.attachments:
        raise InvalidRequest.at("params.input.attachments", ATTACHMENTS_UNSUPPORTED)
    text = "".join(part.text for part in user_input.content)
    return _valid(_MESSAGE, text, "params.input.content")


def _begin(
    door: UnitOfWork, context: ChatKitContext, request: Any, key: str | None, model: Any
) -> None:
    """A turn's steps 1 and 2 (`turn.begin`), its thread and its user message's ChatKit id."""
    conversation_id: int | None = None
    if isinstance(request, kit.ThreadsCreateReq):
        message = message_of(request.params.input)
    else:
        with context.chatkit() as chatkit:
            thread = chatkit.thread(request.params.thread_id)
            if isinstance(request, kit.ThreadsAddUserMessageReq):
                asked = None
            else:
                asked = chatkit.item(thread.public_id, request.params.item_id)
        conversation_id = int(thread.id)
        if asked is None:
            message = message_of(request.params.input)
        else:
            # The chat turn's retry of its key: an answer replayed, or a failure run again.
            if asked.kind != "user" or asked.idempotency_key is None:
                raise InvalidRequest.at("params.item_id", "Only a ChatKit user message is retried")
            message, key = asked.content, asked.idempotency_key
    key = key or KEY_PREFIX + secrets.token_hex(16)
    start = turn.begin(door, context.caller, turn.TurnRequest(conversation_id, message, key))
    title = title_of(message) if isinstance(request, kit.ThreadsCreateReq) else None
    with context.chatkit() as chatkit:
        row = chatkit.started(start.conversation_id, start.message_id, title)
    context.thread = thread_of(row)
    context.user_item_id = row.message_public_id
    context.turn = TurnPlan(model(), start, message)


def _act(door: UnitOfWork, context: ChatKitContext, request: kit.ThreadsCustomActionReq) -> None:
    """A widget's button: the task's write, as REST's, counted (the door); a task since
    deleted answers as gone, not as an error."""
    params = request.params
    action = params.action
    task_id = action.payload.get("task_id") if isinstance(action.payload, dict) else None
    if (
        action.type not in widgets.ACTIONS
        or not isinstance(task_id, int)
        or isinstance(task_id, bool)
        or not 1 <= task_id <= TASK_ID_MAX
    ):
        raise InvalidRequest.at("params.action", "Unknown action")
    if params.item_id is None:
        raise InvalidRequest.at("params.item_id", "An action names its widget")
    # Both spaces' change locks in the entry: a member's own then the owner's could deadlock.
    door.names_task(task_id)
    with door:
        chatkit: ChatKitService = door.service(ChatKitService)
        tasks: TaskService = door.service(TaskService)
        row = chatkit.thread(params.thread_id)
        item = item_of(row.public_id, chatkit.item(row.public_id, params.item_id))
        if not isinstance(item, kit.WidgetItem) or not widgets.shows(item.widget, task_id):
            raise NotFound(ITEM_NOT_FOUND)
        try:
            if action.type == widgets.COMPLETE:
                line = widgets.TaskLine.of(tasks.set_completed(task_id, True))
            else:
                title = tasks.delete(task_id)
                line = widgets.TaskLine(id=task_id, title=title, gone=True)
        except NotFound:
            line = widgets.TaskLine(id=task_id, title="", gone=True)
    context.thread, context.item, context.action = thread_of(row), item, line


class TaskChatKitServer(ChatKitServer[ChatKitContext]):
    """The SDK's server over `TaskStore`: `respond` is the turn, `action` redraws a widget."""

    def __init__(self, running: set[asyncio.Task[None]]) -> None:
        super().__init__(TaskStore())
        # The app's running turns (`app.state.chat_turns`): a turn outlives its stream.
        self._running = running

    async def respond(
        self,
        thread: kit.ThreadMetadata,
        input_user_message: kit.UserMessageItem | None,
        context: ChatKitContext,
    ) -> AsyncIterator[kit.ThreadStreamEvent]:
        plan: TurnPlan = context.turn
        if input_user_message is None:
            return
        queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()

        def emit(event: str, data: Any) -> None:
            queue.put_nowait((event, data))

        async def work() -> None:
            try:
                emit(
                    "done",
                    await turn.run(plan.model, context.caller, plan.start, plan.message, emit),
                )
            except Exception as exc:  # every failure is the stream's last event
                emit("error", exc)

        task = asyncio.create_task(work())
        self._running.add(task)
        task.add_done_callback(self._running.discard)
        reply = kit.AssistantMessageItem(
            id=answer_id(input_user_message.id), thread_id=thread.id, created_at=now(), content=[]
        )
        started = False
        while True:
            event, data = await queue.get()
            if thread.title != context.thread_title and event != "error":
                # The stored title, told to the client: the SDK sends `thread.updated` next.
                thread.title = context.thread_title
            if event == "delta":
                if not started:
                    started = True
                    yield kit.ThreadItemAddedEvent(item=reply)
                    yield kit.ThreadItemUpdatedEvent(
                        item_id=reply.id,
                        update=kit.AssistantMessageContentPartAdded(
                            content_index=0, content=kit.AssistantMessageContent(text="")
                        ),
                    )
                yield kit.ThreadItemUpdatedEvent(
                    item_id=reply.id,
                    update=kit.AssistantMessageContentPartTextDelta(
                        content_index=0, delta=data["text"]
                    ),
                )
            elif event == "tool_call_end":
                widget = await widget_for(context.caller, data)
                if widget is not None:
                    yield kit.ThreadItemDoneEvent(
                        item=kit.WidgetItem(
                            id=random_id("widget"),
                            thread_id=thread.id,
                            created_at=now(),
                            widget=widget,
                        )
                    )
            elif event == "done":
                text = data.response
                yield kit.ThreadItemDoneEvent(
                    item=reply.model_copy(
                        update={"content": [kit.AssistantMessageContent(text=text)]}
                    )
                )
                return
            elif event == "error":
                parts = describe(data)
                context.outcome[OUTCOME_STATUS_KEY] = parts.status
                yield kit.ErrorEvent(
                    code="custom", message=f"{parts.message} ({parts.code})", allow_retry=True
                )
                return

    async def action(
        self,
        thread: kit.ThreadMetadata,
        action: Action[str, Any],
        sender: kit.WidgetItem | None,
        context: ChatKitContext,
    ) -> AsyncIterator[kit.ThreadStreamEvent]:
        line: widgets.TaskLine = context.action
        if sender is None:  # `prepare` refuses an action without its widget
            return
        widget = widgets.redraw(sender.widget, line.id, line)
        yield kit.ThreadItemReplacedEvent(item=sender.model_copy(update={"widget": widget}))
        if line.gone:
            yield kit.NoticeEvent(level="info", message="That task no longer exists.")

    async def handle_stream_cancelled(
        self,
        thread: kit.ThreadMetadata,
        pending_items: list[kit.ThreadItem],
        context: ChatKitContext,
    ) -> None:
        """The turn runs on and stores its answer: nothing to keep or undo here."""


async def widget_for(caller: Caller, call: dict[str, Any]) -> Any:
    """The task widget a tool call shows (None: none); a changed task is read (`get_task`)."""
    found = widgets.tasks_of_call(call)
    if found is None:
        return None
    lines: list[widgets.TaskLine] = []
    for entry in found:
        if isinstance(entry, widgets.TaskLine):
            lines.append(entry)
            continue
        try:
            result = await anyio.to_thread.run_sync(run_tool, _GET_TASK, caller, {"task_id": entry})
        except Exception:  # deleted since, or the database: the call shows no widget
            return None
        if not isinstance(result.structured_content, dict):
            return None
        lines.append(widgets.TaskLine.of(result.structured_content))
    return widgets.task_widget(lines)
