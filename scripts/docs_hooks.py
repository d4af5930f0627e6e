"""MkDocs hooks for the documentation site (mkdocs.yml `hooks:`).

The OpenAPI reference page renders specs/openapi.json with Swagger UI. Its files are the ones
the API itself serves at /docs (the fastapi-offline package, already a dependency): they are
added to the site here, so the page loads nothing from another host and shows the same
version of Swagger UI as the running API.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import fastapi_offline
from mkdocs.structure.files import File, Files

SWAGGER_UI = Path(fastapi_offline.__file__).parent / "static"
SWAGGER_FILES = ("swagger-ui-bundle.js", "swagger-ui.css")


def on_files(files: Files, config: Any) -> Files:
    for name in SWAGGER_FILES:
        files.append(
            File.generated(config, f"assets/swagger-ui/{name}", abs_src_path=str(SWAGGER_UI / name))
        )
    return files
