"""The MCP server: the SDK's low-level `Server` with our tools, for any transport. A call runs in
a worker thread inside the caller's `UnitOfWork`, as a REST route runs; every failure is a tool
error whose text is the REST error envelope. The caller is the transport's (`Identify`), never a
tool's `user_id` argument."""

from __future__ import annotations

import importlib.metadata
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import anyio.to_thread
import mcp_types
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel import Server
from mcp.shared.exceptions import MCPError
from pydantic import ValidationError

from backend.errors import NotFound, Unauthorized, describe, envelope
from backend.mcp.caller import Caller
from backend.mcp.tools import BY_NAME, TOOLS
from backend.mcp.tools.common import Tool
from backend.services.unit_of_work import UnitOfWork

logger = logging.getLogger(__name__)

SERVER_NAME = "task-api"
INSTRUCTIONS = (
    "Manage the signed-in user's tasks (a todo list). The user is the one the bearer token "
    "names: tools never touch anyone else's tasks, and user_id arguments are optional. "
    "Task ids come from add_task and list_tasks. Failed calls return a tool error whose text "
    'is {"error": {"code", "message", "details"}}; VALIDATION_ERROR details name the '
    "argument at fault."
)


# The transport's answer to "who is calling?" for one request; raises an AppError if nobody.
Identify = Callable[[ServerRequestContext[Any, Any]], Awaitable[Caller]]


def _version() -> str:
    try:
        return importlib.metadata.version("task-api")
    except importlib.metadata.PackageNotFoundError:  # run from a source tree, not installed
        return ""


def build_server(identify: Identify) -> Server[Any]:
    listing = mcp_types.ListToolsResult(tools=[tool.definition() for tool in TOOLS])

    async def list_tools(
        ctx: ServerRequestContext[Any, Any], params: mcp_types.PaginatedRequestParams | None
    ) -> mcp_types.ListToolsResult:
        return listing

    async def call_tool(
        ctx: ServerRequestContext[Any, Any], params: mcp_types.CallToolRequestParams
    ) -> mcp_types.CallToolResult:
        tool = BY_NAME.get(params.name)
        if tool is None:
            raise MCPError(code=mcp_types.INVALID_PARAMS, message=f"Unknown tool: {params.name}")
        try:
            caller = await identify(ctx)
        except Exception as exc:  # every failure is a tool error, never a protocol error
            return tool_error(exc)[0]
        try:
            result = await anyio.to_thread.run_sync(run_tool, tool, caller, params.arguments or {})
            status = 200
        except Exception as exc:
            if isinstance(exc, Unauthorized) and caller.refused is not None:
                caller.refused(exc)
            result, status = tool_error(exc)
        if caller.observed is not None:
            caller.observed(tool.name, status)
        return result

    return Server(
        SERVER_NAME,
        version=_version(),
        title="Task API",
        instructions=INSTRUCTIONS,
        on_list_tools=list_tools,
        on_call_tool=call_tool,
    )


def run_tool(
    tool: Tool[Any],
    caller: Caller,
    arguments: dict[str, Any],
    record: Callable[[UnitOfWork, mcp_types.CallToolResult], None] | None = None,
) -> mcp_types.CallToolResult:
    """Validate and run one call in the caller's unit of work (in a worker thread). `record` (a
    chat turn's): called with a write's result before its commit, to commit a record with it."""
    # A task's space's change lock with the caller's (an id validation will refuse: none).
    named = arguments.get("task_id")
    task_id = named if type(named) is int and 0 < named < 2**63 else None
    work = caller.work(counts_write=tool.writes, task_id=task_id)
    try:
        parsed = tool.arguments.model_validate(arguments)
    except ValidationError:
        # As on REST: a write refused for its input still counts (over the limit: 429).
        work.count_refused_write()
        raise
    with work:
        if parsed.user_id is not None and parsed.user_id != work.caller_id:
            # Someone else's id: answered as a missing row of theirs, nothing done.
            raise NotFound(tool.not_found)
        recorded = record is not None and tool.writes
        if recorded:
            work.hold_commit()  # the record rides with the write's COMMIT
        answer = tool.result_of(tool.run(work, parsed))
        if record is not None and recorded:
            record(work, answer)
    return answer


def tool_error(exc: Exception) -> tuple[mcp_types.CallToolResult, int]:
    """The tool error for `exc` (`describe` logs an unexpected one) and its envelope's status."""
    parts = describe(exc)
    result = mcp_types.CallToolResult(
        content=[mcp_types.TextContent(type="text", text=json.dumps(envelope(parts)))],
        is_error=True,
    )
    return result, parts.status
