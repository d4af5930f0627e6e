"""A real uvicorn server for the error-log tests: the app, configured from the environment
exactly as `serve` configures it, plus one route that fails unexpectedly.

Run as `python -m tests.observability.crashing_server PORT`.
"""

from __future__ import annotations

import sys

import uvicorn

from backend.config import Settings
from backend.main import create_app
from backend.observability.logging import logging_config

SECRET_DETAIL = "secret detail: SELECT password_hash FROM users"


def main(port: int) -> None:
    settings = Settings()
    app = create_app(settings)

    @app.get("/boom/{item_id}")
    def boom(item_id: int) -> None:
        raise RuntimeError(SECRET_DETAIL)

    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        log_config=logging_config(settings),
        access_log=False,
    )


if __name__ == "__main__":
    main(int(sys.argv[1]))
