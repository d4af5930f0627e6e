"""The MCP tools: names, arguments, results and annotations, and the service call each makes.

Each resource declares its own tools in a module of this package, on the shared record and
argument bases of `common`; `TOOLS` is them in the order `tools/list` shows them
(specs/mcp-tools.json). The contract's five tools and the rule that both transports validate
alike: `tasks`' docstring.

`user_id` is accepted because agents written for the contract send it. It never selects whose
tasks are touched: `backend.mcp.server` refuses a `user_id` other than the caller's with the
answer a missing task gets.
"""

from __future__ import annotations

from typing import Any

from backend.mcp.tools import (
    activity,
    attachments,
    calendar,
    children,
    filters,
    lists,
    quick_add,
    tasks,
    trash,
)
from backend.mcp.tools.common import Tool
from backend.mcp.tools.tasks import ListTasksArguments

__all__ = ["TOOLS", "ListTasksArguments", "Tool", "tools_document", "withheld_call"]

TOOLS: tuple[Tool[Any], ...] = (
    tasks.ADD_TASK,
    *quick_add.TOOLS,
    *tasks.TOOLS,
    *trash.TOOLS,
    *lists.TOOLS,
    *filters.TOOLS,
    *calendar.TOOLS,
    *children.TOOLS,
    *attachments.TOOLS,
    *activity.TOOLS,
    tasks.TASK_STATS,
)

_BY_NAME = {tool.name: tool for tool in TOOLS}


def withheld_call(call: dict[str, Any]) -> dict[str, Any]:
    """A chat's tool call (as `ToolCallPublic` fields) as it is read, wherever a stored call is
    read: its result `Tool.withheld` (a call stored before chats withheld credentials too)."""
    tool = _BY_NAME.get(call.get("name"))  # type: ignore[arg-type]
    result = call.get("result")
    if tool is None or call.get("outcome") != "ok" or not isinstance(result, dict):
        return call
    kept = tool.withheld(result)
    return call if kept == result else {**call, "result": kept}


def tools_document() -> dict[str, Any]:
    """Every tool as `tools/list` returns it: the committed snapshot, specs/mcp-tools.json."""
    return {
        "tools": [
            tool.definition().model_dump(mode="json", by_alias=True, exclude_none=True)
            for tool in TOOLS
        ]
    }
