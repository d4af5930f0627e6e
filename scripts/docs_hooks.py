"""MkDocs hooks for the documentation site (mkdocs.yml `hooks:`).

The OpenAPI reference page renders specs/openapi.json with Swagger UI. Its files are the ones
the API itself serves at /docs (the fastapi-offline package, already a dependency): they are
added to the site here, so the page loads nothing from another host and shows the same
version of Swagger UI as the running API.

The route table of reference/routes.md ("Routes at a glance") is generated from
specs/openapi.json where the page says `<!-- routes -->`: every route (but the
`/api/{user_id}/...` twins) under its tag, with its summary, so a new resource's routes are
listed with no edit to the page.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import fastapi_offline
from mkdocs.structure.files import File, Files
from mkdocs.structure.pages import Page

SWAGGER_UI = Path(fastapi_offline.__file__).parent / "static"
SWAGGER_FILES = ("swagger-ui-bundle.js", "swagger-ui.css")


def on_files(files: Files, config: Any) -> Files:
    for name in SWAGGER_FILES:
        files.append(
            File.generated(config, f"assets/swagger-ui/{name}", abs_src_path=str(SWAGGER_UI / name))
        )
    return files


ROUTES_MARKER = "<!-- routes -->"


def route_table(document: dict[str, Any]) -> str:
    """Markdown: per tag (in the document's order), its description and a row per route."""
    rows: dict[str, list[str]] = {tag["name"]: [] for tag in document.get("tags", [])}
    for path, operations in document["paths"].items():
        if path.startswith("/api/{user_id}/"):
            continue
        for method, operation in operations.items():
            tag = (operation.get("tags") or ["other"])[0]
            rows.setdefault(tag, []).append(
                f"| `{method.upper()} {path}` | {operation.get('summary', '')} |"
            )
    described = {tag["name"]: tag.get("description", "") for tag in document.get("tags", [])}
    parts = []
    for tag, lines in rows.items():
        if lines:
            head = f"## {tag}\n\n{described.get(tag, '')}\n\n| route | what it does |\n|---|---|"
            parts.append("\n".join([head, *lines]))
    return "\n\n".join(parts)


def on_page_markdown(markdown: str, page: Page, config: Any, files: Files) -> str:
    if ROUTES_MARKER not in markdown:
        return markdown
    document = json.loads((Path(config["docs_dir"]) / "specs" / "openapi.json").read_text())
    return markdown.replace(ROUTES_MARKER, route_table(document))
