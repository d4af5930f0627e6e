"""The MCP tools, each resource's in its module; `TOOLS` in `tools/list`'s order
(specs/mcp-tools.json). `user_id` is accepted because agents written for the contract send it;
it never selects whose tasks are touched (`backend.mcp.server`)."""

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

BY_NAME = {tool.name: tool for tool in TOOLS}


def withheld_call(call: dict[str, Any]) -> dict[str, Any]:
    """A stored chat tool call as read: its result `Tool.withheld` (one stored before chats
    withheld credentials too)."""
    tool = BY_NAME.get(call.get("name"))  # type: ignore[arg-type]
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
