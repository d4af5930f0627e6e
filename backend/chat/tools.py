"""The MCP tools as the chat agent's, run by `run_tool` for the request's verified caller
(never anyone the model names). Every call goes into the turn's `Ledger`: a retry of a failed
turn gets a committed call's recorded result instead of running it twice."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NoReturn

import anyio.to_thread
from agents import FunctionTool, RunContextWrapper
from mcp_types import CallToolResult

from backend.chat.claim import Claim, ClaimEnded
from backend.errors import ChatProviderError, InvalidRequest, describe, envelope
from backend.mcp.caller import Caller
from backend.mcp.server import run_tool
from backend.mcp.tools import BY_NAME, withheld_call
from backend.mcp.tools.common import Tool
from backend.models.conversation import ARGUMENTS_MAX_CHARS, STORED_DEPTH_MAX, storable, stored_call
from backend.services.chat.conversations import ConversationService
from backend.services.unit_of_work import UnitOfWork

# Not the list writes: a chat that could delete a list would delete its tasks on a misunderstanding.
CHAT_TOOLS = (
    "add_task",
    "quick_add_task",  # read by the server, not the model: as every client's quick add
    "list_tasks",
    "complete_task",
    "delete_task",
    "update_task",
    "get_task",
    "reopen_task",
    "task_stats",
    "list_lists",
    "create_calendar_feed",
    "list_attachments",
    "undo",
)

# What an event listener hears: ("tool_call_start" | "tool_call_end", the call so far).
Emit = Callable[[str, dict[str, Any]], None]


class MalformedArguments(Exception):
    """The model sent tool arguments that are not a JSON object: a provider fault."""


@dataclass
class Ledger:
    """The turn's tool calls, in order (each as `ToolCallPublic` fields)."""

    earlier: list[dict[str, Any]] = field(default_factory=list)
    calls: list[dict[str, Any]] = field(default_factory=list)
    message_id: int | None = None  # where a write's call records itself (None: no record)
    # Arguments too deep for the SDK, by call id: what the model sent (`agent._Bounded`).
    set_aside: dict[str, str] = field(default_factory=dict)
    # The attempt's claim on its turn: a call runs only while it stands (None: no turn).
    claim: Claim | None = None

    def malformed(self, name: str, raw: str) -> NoReturn:
        """A call whose arguments are not a JSON object: recorded, and the turn ends."""
        self.calls.append(_call(name, raw, "error", ChatProviderError.code, None))
        raise MalformedArguments(name)

    def recorded(self, name: str, arguments: Any) -> dict[str, Any] | None:
        """A call that committed in an earlier attempt of this turn, with these arguments."""
        for call in self.earlier:
            if call["name"] == name and call["arguments"] == arguments and call["outcome"] == "ok":
                return withheld_call(call)  # as a stored call is read: no credential
        return None


def agent_tools(caller: Caller, ledger: Ledger, emit: Emit | None) -> list[FunctionTool]:
    return [_agent_tool(BY_NAME[name], caller, ledger, emit) for name in CHAT_TOOLS]


def _agent_tool(tool: Tool[Any], caller: Caller, ledger: Ledger, emit: Emit | None) -> FunctionTool:
    definition = tool.definition()

    async def invoke(context: RunContextWrapper[Any], raw: str) -> str:
        call_id = getattr(context, "tool_call_id", None)
        if call_id in ledger.set_aside:
            raw = ledger.set_aside[call_id]
        arguments = read_arguments(raw)
        if arguments is None:
            ledger.malformed(tool.name, raw)
        if isinstance(arguments, InvalidRequest):  # a validation error: nothing runs
            refused = arguments
            call = _call(tool.name, raw, "error", refused.code, envelope(describe(refused)))
            if emit is not None:
                emit("tool_call_start", {"name": tool.name, "arguments": call["arguments"]})
        else:
            if emit is not None:
                emit("tool_call_start", {"name": tool.name, "arguments": arguments})
            recorded = ledger.recorded(tool.name, arguments)
            if recorded is not None:
                call = {**recorded}  # its first attempt's result: it is not run again
            else:
                call = await _run(tool, caller, arguments, ledger)
        ledger.calls.append(call)
        if emit is not None:
            emit("tool_call_end", call)
        return json.dumps(call["result"], ensure_ascii=False)

    return FunctionTool(
        name=tool.name,
        description=definition.description or tool.description,
        params_json_schema=definition.input_schema,
        on_invoke_tool=invoke,
        strict_json_schema=False,
    )


async def _run(
    tool: Tool[Any], caller: Caller, arguments: dict[str, Any], ledger: Ledger
) -> dict[str, Any]:
    message_id, claim = ledger.message_id, ledger.claim

    def record(work: UnitOfWork, result: CallToolResult) -> None:
        # In the write's transaction: the turn's answer keeps the call if the write commits.
        conversations: ConversationService = work.service(ConversationService)
        if message_id is not None:
            call = _call(tool.name, arguments, "ok", None, _kept(tool, result))
            conversations.record_call(message_id, call)

    def claimed() -> CallToolResult:
        # Checked when the call really starts (a thread may be waited for).
        if claim is not None:
            claim.check()
        return run_tool(tool, caller, arguments, record)

    try:
        result = await anyio.to_thread.run_sync(claimed)
    except ClaimEnded:
        raise  # the turn ends (`agent.client_error`): this attempt may no longer act
    except Exception as exc:  # every failure is the tool's answer to the model, as on MCP
        parts = describe(exc)
        return _call(tool.name, arguments, "error", parts.code, envelope(parts))
    return _call(tool.name, arguments, "ok", None, _kept(tool, result))


def _kept(tool: Tool[Any], result: CallToolResult) -> Any:
    """A call's result as the turn keeps, streams and sends it: never a credential."""
    content = result.structured_content
    return tool.withheld(content) if isinstance(content, dict) else content


def _call(name: str, arguments: Any, outcome: str, code: str | None, result: Any) -> dict[str, Any]:
    """A call's record, as stored and sent (bounded: `stored_call`)."""
    call = {"name": name, "arguments": arguments, "outcome": outcome, "error_code": code}
    return stored_call({**call, "result": result})


TOO_COMPLEX = (
    f"Tool arguments must be a JSON object at most {STORED_DEPTH_MAX} levels deep and "
    f"{ARGUMENTS_MAX_CHARS} characters long, with finite numbers and text without NUL or "
    "lone surrogates"
)


def read_arguments(raw: str) -> dict[str, Any] | InvalidRequest | None:
    """The model's arguments: an object the tool may validate, `InvalidRequest` for an object it
    cannot use (too deep, too large, odd values), or None for no JSON object (a 502)."""
    try:
        arguments = json.loads(raw or "{}")
    except RecursionError:
        # Deeper than the parser goes: an object whose brackets close is one too deep.
        return InvalidRequest(TOO_COMPLEX) if _closed_object(raw) else None
    except ValueError:  # not JSON (a number too long for int() too)
        return None
    if not isinstance(arguments, dict):
        return None
    if not storable(arguments, ARGUMENTS_MAX_CHARS):
        return InvalidRequest(TOO_COMPLEX)
    return arguments


def _closed_object(text: str) -> bool:
    """Whether `text` has a JSON object's brackets (outside strings), checked without recursion."""
    text = text.strip()
    return text.startswith("{") and _brackets(text) == len(text) - 1


def _brackets(text: str) -> int:
    """Where the first bracket's match closes, outside strings (-1: never, or too soon)."""
    depth, in_string, escaped = 0, False, False
    for index, char in enumerate(text):
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
        elif char in "]}":
            depth -= 1
            if depth <= 0:
                return index if depth == 0 else -1
    return -1
