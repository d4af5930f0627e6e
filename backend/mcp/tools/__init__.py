"""The MCP tools: names, arguments, results and annotations, and the service call each makes.

Each resource declares its own tools in a module of this package (`tasks`, `quick_add`,
`trash`, `lists`, `filters`, `calendar`, `children`: every declared task's child's, generated,
`attachments`, `activity`), on the shared record and argument bases of `common`; `TOOLS` is
them in the order `tools/list` shows them (specs/mcp-tools.json).

The five tools of the published contract (`add_task`, `list_tasks`, `complete_task`,
`delete_task`, `update_task`) keep its names, parameters and result shapes; the rest
(`get_task`, `reopen_task`, `task_stats`, and the optional arguments) let an agent do what the
REST API does. Arguments are validated with the REST schemas' own field types (`Title`,
`Description`, `Instant`, `Tags`, `Priority`) and with `backend.contracts` (the task and user
id bounds; `list_tasks` with the listing contract REST's query string uses), so the same input
gets the same answer on both. Every tool runs inside the caller's `UnitOfWork` and calls
`TaskService` (or its resource's service, `work.service(X)`), the service behind the REST routes.

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
from backend.mcp.tools.common import Arguments, Credential, OneTask, Tool
from backend.mcp.tools.tasks import ListTasksArguments

__all__ = [
    "TOOLS",
    "Arguments",
    "Credential",
    "ListTasksArguments",
    "OneTask",
    "Tool",
    "tools_document",
    "withheld_call",
]

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
    """A chat's tool call (as `ToolCallPublic` fields) as it is read: its result
    `Tool.withheld`, wherever a stored call is read (the model's history, a retry's earlier
    calls, the message listing, a replayed answer). A call stored before a chat withheld
    credentials (issue 61) then holds none either; one stored since is unchanged."""
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
