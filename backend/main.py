"""The application factory: `create_app()` builds the app (uvicorn: `backend.main:create_app`
with `--factory`). Nothing is built at import."""

from __future__ import annotations

import itertools
import re
import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import anyio.to_thread
from asgi_correlation_id import CorrelationIdMiddleware
from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

from backend.api import openapi
from backend.api.deps import document_security
from backend.api.errors import install_error_handlers
from backend.api.middleware import EdgeMiddleware, bounded
from backend.api.routes import api_router, tag_descriptions
from backend.api.routes.attachments import UPLOAD_PATH, upload_body_limit
from backend.api.routes.imports import IMPORTS_PATH
from backend.api.routes.imports import body_limit as import_body_limit
from backend.auth.bearer import TokenVerifier
from backend.auth.password_cache import VerifiedPasswords
from backend.auth.passwords import dummy_hash
from backend.chat.stack import Preload
from backend.config import Settings, get_settings
from backend.dav.routes import DAV_PATHS, own_bodies
from backend.dav.routes import router as dav_router
from backend.db.engine import create_db_engine, resolve_database_url
from backend.db.migrations import migrate_up, migration_ids
from backend.db.sender import transaction_locals
from backend.mcp.mount import install_mcp
from backend.observability.metrics import install_metrics
from backend.services.live import LiveFeeds
from backend.transfer.runner import RunnerThread

DESCRIPTION = """
A multi-user task API. Every `/api/tasks` route needs `Authorization: Bearer <JWT>`;
each user sees and changes only their own tasks.

**Try it here:** register with `POST /api/auth/register`, then press **Authorize** and sign in
with the password flow (username = your email).

Success bodies are `{"data": ...}` (lists add `"meta"`); errors are
`{"error": {"code", "message", "details"}}`. Every response carries `X-Request-ID`.
"""

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_UPLOAD = re.compile(UPLOAD_PATH)
_IMPORTS = re.compile(IMPORTS_PATH)


def _request_id_generator() -> Callable[[], str]:
    """32 hex characters: a per-process random prefix and a counter (unique, not secret: no
    `os.urandom` system call per request, as uuid4 makes)."""
    prefix = secrets.token_hex(8)
    counter = itertools.count(1)
    return lambda: f"{prefix}{next(counter):016x}"


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.chat_configured:
            app.state.chat_stack = Preload()
        url = await anyio.to_thread.run_sync(resolve_database_url, settings)
        if settings.should_auto_migrate:
            # Neon: migrations take the direct URL; the pooled one is for requests.
            direct = settings.database_migration_url
            await anyio.to_thread.run_sync(migrate_up, direct.get_secret_value() if direct else url)
        engine = create_db_engine(url, settings)
        # So the first sign-in with an unknown email costs no more than any other.
        await anyio.to_thread.run_sync(dummy_hash)
        # A request keeps its connection between thread-pool hops: with no more threads than
        # connections, waiters could take every thread the holders need (deadlock, not 503).
        limiter = anyio.to_thread.current_default_thread_limiter()
        limiter.total_tokens = max(40, 4 * (settings.db_pool_size + settings.db_max_overflow))
        app.state.engine = engine
        app.state.live = LiveFeeds(engine, settings, app.state.transaction_locals)
        if metrics is not None:
            metrics.watch_pool(engine, settings.db_pool_size, settings.db_max_overflow)
        # Imports run off the request: in development a runner here too, so `serve --dev` alone
        # imports (the worker runs one as well; they share the work through leases).
        imports = RunnerThread(engine, settings) if settings.runs_imports_in_api else None
        if imports is not None:
            imports.start()
        try:
            async with mcp.run():
                yield
        finally:
            if imports is not None:
                await anyio.to_thread.run_sync(imports.stop)
            engine.dispose()
            if metrics is not None:
                metrics.close()

    app = FastAPIOffline(
        title="Task API",
        version="0.1.0",
        description=DESCRIPTION,
        openapi_tags=openapi.tags(tag_descriptions),
        license_info=openapi.LICENSE,
        contact=openapi.CONTACT,
        lifespan=lifespan,
        redirect_slashes=False,
        swagger_ui_parameters={"persistAuthorization": True, "displayRequestDuration": True},
    )
    app.state.settings = settings
    app.state.transaction_locals = transaction_locals(
        settings.db_statement_timeout_ms, settings.effective_db_response_timeout_ms
    )
    app.state.token_verifier = TokenVerifier(settings)
    app.state.dav_passwords = VerifiedPasswords()
    app.state.migration_ids = migration_ids()
    # Chat's stack (loading), its model (built on first use) and its running turns (held: a
    # disconnected client's turn finishes).
    app.state.chat_stack = None
    app.state.chat_model = None
    app.state.chat_turns = set()
    install_error_handlers(app)
    app.include_router(api_router)
    app.include_router(dav_router)
    document_security(app)
    openapi.install(app)
    mcp = app.state.mcp = install_mcp(app, settings)
    metrics = install_metrics(app, settings)

    # The edge inside the request id: even a 500 or a refused preflight carries X-Request-ID.
    app.add_middleware(
        EdgeMiddleware,
        metrics=metrics,
        hsts_max_age=settings.hsts_max_age_seconds,
        max_body_size=settings.max_body_bytes,
        mounts=[
            ("POST", _UPLOAD, bounded(upload_body_limit(settings.attachments_max_file_bytes))),
            ("POST", _IMPORTS, bounded(import_body_limit(settings.import_max_bytes))),
            ("*", DAV_PATHS, own_bodies),
        ],
        cors_origins=settings.cors_origins,
        cors_allow_headers=[
            "Authorization",
            "Content-Type",
            "X-Request-ID",
            "Idempotency-Key",
            "If-Match",
            "If-None-Match",
            "Mcp-Protocol-Version",  # MCP clients in a browser (stateless: no session id)
        ],
        cors_expose_headers=[
            "X-Request-ID",
            "Location",
            "Link",
            "Retry-After",
            "RateLimit",
            "RateLimit-Policy",
            "ETag",
            "Idempotent-Replayed",
        ],
    )
    app.add_middleware(
        CorrelationIdMiddleware,
        header_name="X-Request-ID",
        validator=lambda value: bool(_REQUEST_ID.match(value)),
        generator=_request_id_generator(),
    )
    return app
