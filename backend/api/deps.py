"""The one door into a request that touches data.

A route takes each service it calls as a parameter (`uses`), and `door: Door` where it needs
the unit of work itself (`door.caller_id`, `door.hold_commit()`); FastAPI resolves a dependency
once per request, so both are the same unit of work, entered once. The door verifies the bearer
token on the event loop; `DoorRoute`, every router's route class, runs the sync route inside
that unit of work in one thread-pool hop (connection, write count, the caller's account: 401 if
revoked or deleted, the statements, commit) and serializes its result on the event loop.
"""

from __future__ import annotations

import functools
import inspect
import re
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request, Response, params
from fastapi.routing import APIRoute
from fastapi.security.utils import get_authorization_scheme_param
from starlette.concurrency import run_in_threadpool

from backend.auth.bearer import authenticate
from backend.auth.tokens import TokenClaims
from backend.config import Settings
from backend.errors import NotFound
from backend.models.calendar_feed import TOKEN_PATTERN
from backend.services.calendar.calendar_feeds import FEED_NOT_FOUND
from backend.services.rate_limits import RouteLimit
from backend.services.unit_of_work import UnitOfWork

TOKEN_URL = "/api/auth/token"  # noqa: S105 (a path, not a secret)
FEED_TOKEN = re.compile(TOKEN_PATTERN)
# The methods that only read (RFC 9110's safe methods; WebDAV's PROPFIND, REPORT and SEARCH):
# a request with any other changes data, REST's and CalDAV's alike: it counts against the
# caller's per-user write limit (and a read-only app password may not send it: dav/auth.py).
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PROPFIND", "REPORT", "SEARCH"})


# Swagger UI's two ways in (the password flow; a token from any trusted issuer), for the
# document only: the door reads the header itself, as FastAPI's security dependencies would
# cost two dependency resolutions per request (`DoorRoute` marks the operations).
SECURITY_SCHEMES: dict[str, Any] = {
    "OAuth2PasswordBearer": {
        "type": "oauth2",
        "flows": {"password": {"scopes": {}, "tokenUrl": TOKEN_URL}},
    },
    "HTTPBearer": {
        "type": "http",
        "scheme": "bearer",
        "description": "A JWT from this API or a trusted issuer.",
    },
}
_SECURITY: list[dict[str, list[str]]] = [{name: []} for name in SECURITY_SCHEMES]


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


SettingsDep = Annotated[Settings, Depends(get_settings)]


def _unit_of_work(
    request: Request,
    response: Response,
    claims: TokenClaims | None,
    feed_token: str | None = None,
) -> UnitOfWork:
    # Behind a proxy, uvicorn's --forwarded-allow-ips makes this the real client address.
    client_ip = request.client.host if request.client else "unknown"
    # A write by a task's id takes its space's change lock with the caller's on entry; an id
    # that is no BIGINT locks only the caller's (the route's validation refuses it).
    named = request.path_params.get("task_id", "")
    task_id = int(named) if named.isascii() and named.isdigit() and len(named) <= 18 else None
    work = UnitOfWork(
        request.app.state.engine,
        request.app.state.settings,
        claims=claims,
        counts_write=claims is not None and request.method not in READ_METHODS,
        client_ip=client_ip,
        response_headers=response.headers,
        transaction_locals=request.app.state.transaction_locals,
        task_id=task_id,
        feed_token=feed_token,
    )
    # For the validation-error handler: a refused write still counts (`count_refused_write`).
    request.state.unit_of_work = work
    return work


async def door(request: Request, response: Response) -> UnitOfWork:
    """A signed-in caller's unit of work: 401 for a missing or invalid token."""
    scheme, token = get_authorization_scheme_param(request.headers.get("authorization"))
    bearer = token if scheme.lower() == "bearer" and token else None
    claims = await authenticate(request.app.state.token_verifier, bearer)
    # For the access log: the verified subject (the user id), never the token itself.
    request.state.user_id = claims.subject
    return _unit_of_work(request, response, claims)


async def anonymous_door(request: Request, response: Response) -> UnitOfWork:
    return _unit_of_work(request, response, None)


async def feed_door(request: Request, response: Response, token: str) -> UnitOfWork:
    """A calendar feed's fetch (`GET /api/calendar/{token}.ics`): no bearer header (calendar
    apps send none), the token in the path is the credential. A token that cannot be one
    (length, alphabet) is the unknown token's 404 before any connection is taken."""
    if not FEED_TOKEN.fullmatch(token):
        raise NotFound(FEED_NOT_FOUND)
    return _unit_of_work(request, response, None, feed_token=token)


# A signed-in caller's unit of work (`door.caller_id`, `door.hold_commit()`, ...).
Door = Annotated[UnitOfWork, Depends(door)]


def counted_against(limit: RouteLimit) -> Any:
    """A route's own per-user rate limit (`dependencies=[counted_against(...)]`), counted with
    the caller's entry; a dependency runs before the body is validated, so a 422 counts too."""

    async def declare(work: Door) -> None:
        work.route_limit = limit

    return Depends(declare)


# No caller (sign-up, sign-in).
AnonymousDoor = Annotated[UnitOfWork, Depends(anonymous_door)]
# No caller, a calendar feed's token.
FeedDoor = Annotated[UnitOfWork, Depends(feed_door)]


@dataclass(frozen=True)
class Uses(params.Depends):
    """A route's service (`uses`): the door's dependency, and the kind `_run` builds from it."""

    kind: type[Any] | None = None


def uses(kind: type[Any], through: Callable[..., Any] = door) -> Any:
    """A route's service, `kind` bound to the request's unit of work, written whole so a reader
    (and a static call graph) sees its class: `tasks: Annotated[TaskService, uses(TaskService)]`;
    `through`: the door it comes through (a signed-in caller's if none)."""
    return Uses(through, kind=kind)


class DoorRoute(APIRoute):
    """Runs a sync endpoint and its unit of work in one thread-pool hop (FastAPI would take a
    second to re-validate a returned model); the result is serialized on the event loop."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        if _takes_door(endpoint):
            kwargs["openapi_extra"] = {"security": _SECURITY, **(kwargs.get("openapi_extra") or {})}
        if not inspect.iscoroutinefunction(endpoint):
            endpoint = _in_one_hop(endpoint)
        super().__init__(path, endpoint, **kwargs)


def document_security(app: FastAPI) -> None:
    """Add the door's bearer schemes to the app's OpenAPI document."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        schema = build()
        components = schema.setdefault("components", {})
        components.setdefault("securitySchemes", {}).update(SECURITY_SCHEMES)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _takes_door(endpoint: Callable[..., Any]) -> bool:
    """Whether the endpoint enters as a signed-in caller (a `Door` parameter)."""
    try:
        hints = typing.get_type_hints(endpoint, include_extras=True)
    except NameError:  # an annotation FastAPI will report on its own
        return False
    return any(
        getattr(meta, "dependency", None) is door
        for hint in hints.values()
        for meta in getattr(hint, "__metadata__", ())
    )


def _in_one_hop(endpoint: Callable[..., Any]) -> Callable[..., Any]:
    services = _services(endpoint)

    @functools.wraps(endpoint)
    async def run(**values: Any) -> Any:
        return await run_in_threadpool(_run, endpoint, values, services)

    return run


def _services(endpoint: Callable[..., Any]) -> tuple[tuple[str, type[Any]], ...]:
    """The endpoint's parameters that are services (`uses`), with their kinds."""
    try:
        hints = typing.get_type_hints(endpoint, include_extras=True)
    except NameError:  # an annotation FastAPI will report on its own
        return ()
    return tuple(
        (name, meta.kind)
        for name, hint in hints.items()
        for meta in getattr(hint, "__metadata__", ())
        if isinstance(meta, Uses) and meta.kind is not None
    )


def _run(
    endpoint: Callable[..., Any],
    values: dict[str, Any],
    services: tuple[tuple[str, type[Any]], ...],
) -> Any:
    work = next((v for v in values.values() if isinstance(v, UnitOfWork)), None)
    if work is None:
        return endpoint(**values)
    with work:
        for name, kind in services:
            values[name] = work.service(kind)
        return endpoint(**values)
