"""The DAV routes: discovery (`/.well-known/caldav` -> the root), OPTIONS and PROPFIND on the
root, the principal, the calendar home and each collection.

Each route is async: it reads and parses its bounded body on the event loop, then signs in
and runs its services in one thread-pool hop (`_in_work`), as `DoorRoute` does for REST. An
error is a DAV error body (`D:error`, XML) with the error family's status and headers, never a
5xx for anything a client sends. None is in the OpenAPI document (its methods are not HTTP's
that OpenAPI describes); specs/api-contract.md, "CalDAV", is their contract.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import APIRouter, Request, Response
from fastapi.responses import RedirectResponse
from starlette.concurrency import run_in_threadpool

from backend.dav import resources
from backend.dav.auth import CHALLENGE, SIGN_IN_REFUSED, sign_in
from backend.dav.xml import (
    DAV,
    MAX_BODY_BYTES,
    MEDIA_TYPE,
    Found,
    PayloadTooLarge,
    PreconditionRefused,
    clark,
    error_body,
    multistatus,
    propfind_request,
)
from backend.errors import AppError, InvalidRequest, NotFound
from backend.models.app_password import DAV_ROOT, AppPasswordScope
from backend.services.registry import UnitOfWork

router = APIRouter(include_in_schema=False)

# What exists today: discovery and properties. `1, 3` (RFC 4918's classes, no locking) and
# `calendar-access` (RFC 4791: clients look for it to call a server CalDAV); `Allow` says
# which methods each resource answers, and grows as objects, REPORT and sync arrive.
DAV_HEADER = "1, 3, calendar-access"
ALLOW = "OPTIONS, PROPFIND"
NOT_FOUND = "Not found"  # every missing resource, another user's list included: one answer
BAD_DEPTH = "Depth is 0 or 1 here"


def _route(path: str) -> str:
    """A resource's route: its path without the trailing slash, which the edge strips from
    every request (backend/api/middleware.py); its href keeps it (a collection's does)."""
    return path.rstrip("/")


def _dav_headers() -> dict[str, str]:
    return {"DAV": DAV_HEADER, "Allow": ALLOW}


def _error(error: AppError) -> Response:
    headers = {**(error.headers or {}), **error.extra_headers}
    message = error.message
    if error.status_code == 401:
        # Every 401 here is one answer asking for Basic: an account refused at entry (signed
        # out everywhere since the check) too, not its bearer-token wording.
        headers.update(CHALLENGE)
        message = SIGN_IN_REFUSED
    condition = error.condition if isinstance(error, PreconditionRefused) else None
    return Response(
        error_body(error.code, message, condition),
        status_code=error.status_code,
        media_type=MEDIA_TYPE,
        headers=headers,
    )


async def _body(request: Request) -> bytes:
    """The request's body, at most `MAX_BODY_BYTES` (413 past it, before all is read)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise PayloadTooLarge()
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise PayloadTooLarge()
        chunks.append(chunk)
    return b"".join(chunks)


def _depth(request: Request, default: str = "0") -> int:
    """The request's `Depth`: 0 or 1 (absent: 0, what every client sends anyway)."""
    depth = request.headers.get("depth", default).strip().lower()
    if depth == "infinity":
        # Refused as RFC 4918 §9.1 lets a server: 403 naming `propfind-finite-depth`.
        raise PreconditionRefused(clark(DAV, "propfind-finite-depth"), BAD_DEPTH)
    if depth not in ("0", "1"):
        raise InvalidRequest(BAD_DEPTH)
    return int(depth)


async def _in_work(
    request: Request, response: Response, run: Callable[[UnitOfWork, bool], Response]
) -> Response:
    """Sign in and run `run(work, writes)` (`writes`: the password may write) in one
    thread-pool hop inside the caller's unit of work."""

    def hop() -> Response:
        work = sign_in(request, response)
        with work:
            return run(work, _writes(request))

    answer = await run_in_threadpool(hop)
    for name, value in response.headers.items():
        if name.lower().startswith("ratelimit"):
            answer.headers[name] = value
    return answer


def _writes(request: Request) -> bool:
    scope: AppPasswordScope = request.state.dav_scope
    return scope is AppPasswordScope.read_write


def dav_route(
    handler: Callable[[Request, Response], Awaitable[Response]],
) -> Callable[[Request, Response], Awaitable[Response]]:
    """A DAV route's handler with DAV's answers for errors: an `AppError` (the request's, the
    sign-in's) as a DAV error body with its status and headers."""

    async def answer(request: Request, response: Response) -> Response:
        try:
            return await handler(request, response)
        except AppError as error:
            return _error(error)

    answer.__name__ = handler.__name__
    answer.__doc__ = handler.__doc__
    return answer


def _multistatus(found: list[Found], body: bytes) -> Response:
    return Response(
        multistatus(found, propfind_request(body)),
        status_code=207,
        media_type=MEDIA_TYPE,
        headers=_dav_headers(),
    )


@router.api_route("/.well-known/caldav", methods=["GET", "HEAD", "PROPFIND", "OPTIONS"])
async def well_known_caldav(request: Request) -> Response:
    """RFC 6764 §5: the DAV root. Permanent, relative to the API's own address."""
    root = request.scope.get("root_path", "")
    return RedirectResponse(f"{root}{DAV_ROOT}", status_code=301)


async def _options(request: Request) -> Response:
    return Response(status_code=200, headers=_dav_headers())


async def _propfind(
    request: Request, response: Response, found: Callable[..., list[Found]]
) -> Response:
    body = await _body(request)
    propfind_request(body)  # a malformed body is 400 before anything else is done
    depth = _depth(request)
    return await _in_work(
        request, response, lambda work, writes: _multistatus(found(work, depth, writes), body)
    )


@router.api_route(_route(DAV_ROOT), methods=["OPTIONS", "PROPFIND"])
@dav_route
async def dav_root(request: Request, response: Response) -> Response:
    if request.method == "OPTIONS":
        return await _options(request)

    def found(work: UnitOfWork, depth: int, writes: bool) -> list[Found]:
        # The root's children are the principal and the home.
        return [resources.root()] + (
            [resources.principal(_display_name(work)), resources.home()] if depth else []
        )

    return await _propfind(request, response, found)


@router.api_route(_route(resources.PRINCIPAL), methods=["OPTIONS", "PROPFIND"])
@dav_route
async def dav_principal(request: Request, response: Response) -> Response:
    if request.method == "OPTIONS":
        return await _options(request)

    def found(work: UnitOfWork, depth: int, writes: bool) -> list[Found]:
        return [resources.principal(_display_name(work))]

    return await _propfind(request, response, found)


@router.api_route(_route(resources.HOME), methods=["OPTIONS", "PROPFIND"])
@dav_route
async def dav_home(request: Request, response: Response) -> Response:
    """The calendar home; Depth 1: every list the caller may read, and the tasks in no list."""
    if request.method == "OPTIONS":
        return await _options(request)

    def found(work: UnitOfWork, depth: int, writes: bool) -> list[Found]:
        here = [resources.home()]
        if depth:
            here.append(resources.collection(None, writes))
            here.extend(resources.collection(row, writes) for row in work.lists.all())
        return here

    return await _propfind(request, response, found)


@router.api_route(resources.HOME + "{segment}", methods=["OPTIONS", "PROPFIND"])
@dav_route
async def dav_collection(request: Request, response: Response) -> Response:
    """A collection: a list the caller may read (`ListService.get`: another user's list is
    the missing one's 404), or the tasks in no list. Depth 1 lists its objects once they
    exist (the VTODO part of issue 62); today the collection alone."""
    list_id = resources.list_of(request.path_params["segment"])
    if isinstance(list_id, str):
        raise NotFound(NOT_FOUND)
    if request.method == "OPTIONS":
        return await _options(request)

    def found(work: UnitOfWork, depth: int, writes: bool) -> list[Found]:
        if list_id is None:
            return [resources.collection(None, writes)]
        try:
            row = work.lists.get(list_id)
        except NotFound:
            raise NotFound(NOT_FOUND) from None
        return [resources.collection(row, writes)]

    return await _propfind(request, response, found)


@router.api_route(DAV_ROOT + "{rest:path}", methods=["OPTIONS", "PROPFIND", "GET", "HEAD"])
@dav_route
async def dav_unknown(request: Request, response: Response) -> Response:
    """Any other path under the root: the one 404."""
    raise NotFound(NOT_FOUND)


def _display_name(work: UnitOfWork) -> str:
    user = work.users.get(work.caller_id)
    if user is None:  # deleted since the check: the entry answers 401 first
        raise NotFound(NOT_FOUND)
    return str(getattr(user, "name", None) or user.email or "Tasks")
