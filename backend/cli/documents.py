"""`python -m backend openapi|mcp-tools`: the committed snapshots (specs/openapi.json,
specs/mcp-tools.json), printed without a database."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

from backend.cli.common import load_settings

if TYPE_CHECKING:
    from backend.cli.common import Subcommands


def cmd_openapi(args: argparse.Namespace) -> int:
    settings = load_settings(dev=True)  # before the import: backend.main builds an app from env
    from backend.main import create_app

    document = create_app(settings).openapi()
    print(json.dumps(document, indent=2, sort_keys=True))
    return 0


def cmd_mcp_tools(args: argparse.Namespace) -> int:
    from backend.mcp.tools import tools_document

    print(json.dumps(tools_document(), indent=2, sort_keys=True, ensure_ascii=False))
    return 0


def add_openapi(sub: Subcommands) -> None:
    openapi = sub.add_parser(
        "openapi",
        help="print the OpenAPI document as JSON",
        description="Print the OpenAPI document without starting the server or touching a "
        "database: python -m backend openapi > specs/openapi.json",
    )
    openapi.set_defaults(func=cmd_openapi)


def add_mcp_tools(sub: Subcommands) -> None:
    mcp_tools = sub.add_parser(
        "mcp-tools",
        help="print the MCP tool list as JSON",
        description="Print every MCP tool with its input and output schema and annotations, "
        "as tools/list returns them, without a database: "
        "python -m backend mcp-tools > specs/mcp-tools.json",
    )
    mcp_tools.set_defaults(func=cmd_mcp_tools)
