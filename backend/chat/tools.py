"""The MCP tools, as the chat agent's tools.

Each agent tool is an MCP `Tool` record: its name, description and input schema as
`tools/list` publishes them, and its call through `backend.mcp.server.run_tool`, which
validates the arguments, opens a unit of work for the caller (a write counted as on REST)
and refuses a `user_id` other than the caller's as "not found". The caller is the request's
verified token, never anything the model says.

Every call goes into the turn's `Ledger`, in order: what the answer reports and the
assistant's message keeps. A retry of a failed turn (same Idempotency-Key) hands the ledger
the calls that committed then: the same call again (same tool, same arguments) gets its
recorded result instead of running twice.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import anyio.to_thread
from agents import FunctionTool, RunContextWrapper

from backend.error_mapping import describe
from backend.errors import ChatProviderError
from backend.mcp.errors import envelope
from backend.mcp.server import Caller, run_tool
from backend.mcp.tools import TOOLS, Tool

# The tools the agent gets: the published contract's five, and the reads and the reopen that
# let it answer questions and undo a completion. Lists are managed elsewhere (REST, MCP): a
# chat that could delete a list would delete every task in it on a misunderstanding.
CHAT_TOOLS = (
    "add_task",
    "list_tasks",
    "complete_task",
    "delete_task",
    "update_task",
    "get_task",
    "reopen_task",
    "task_stats",
    "list_lists",
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

    def recorded(self, name: str, arguments: Any) -> dict[str, Any] | None:
        """A call that committed in an earlier attempt of this turn, with these arguments."""
        for call in self.earlier:
            if call["name"] == name and call["arguments"] == arguments and call["outcome"] == "ok":
                return call
        return None


def agent_tools(caller: Caller, ledger: Ledger, emit: Emit | None) -> list[FunctionTool]:
    by_name = {tool.name: tool for tool in TOOLS}
    return [_agent_tool(by_name[name], caller, ledger, emit) for name in CHAT_TOOLS]


def _agent_tool(tool: Tool[Any], caller: Caller, ledger: Ledger, emit: Emit | None) -> FunctionTool:
    definition = tool.definition()

    async def invoke(context: RunContextWrapper[Any], raw: str) -> str:
        try:
            arguments = json.loads(raw or "{}")
        except ValueError:
            arguments = None
        if not isinstance(arguments, dict):
            ledger.calls.append(_call(tool.name, raw, "error", ChatProviderError.code, None))
            raise MalformedArguments(tool.name)
        if emit is not None:
            emit("tool_call_start", {"name": tool.name, "arguments": arguments})
        call = ledger.recorded(tool.name, arguments)
        if call is not None:
            call = {**call}  # its first attempt's result: it is not run again
        else:
            call = await _run(tool, caller, arguments)
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


async def _run(tool: Tool[Any], caller: Caller, arguments: dict[str, Any]) -> dict[str, Any]:
    try:
        result = await anyio.to_thread.run_sync(run_tool, tool, caller, arguments)
    except Exception as exc:  # every failure is the tool's answer to the model, as on MCP
        parts = describe(exc)
        return _call(tool.name, arguments, "error", parts.code, envelope(parts))
    return _call(tool.name, arguments, "ok", None, result.structured_content)


def _call(name: str, arguments: Any, outcome: str, code: str | None, result: Any) -> dict[str, Any]:
    return {
        "name": name,
        "arguments": arguments,
        "outcome": outcome,
        "error_code": code,
        "result": result,
    }
