"""The DAV routes (their contract: specs/api-contract.md, "CalDAV"; none is in the OpenAPI
document). Each signs in first (`dav_route`), before its path is looked at or its body read, so
a stranger learns nothing, not even whether a path exists; then it reads its bounded body on
the event loop and runs its services in one thread-pool hop inside the caller's unit of work
(`_in_work`), as `DoorRoute` does for REST. An error is a DAV error body, never a 5xx.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import RedirectResponse
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect
from starlette.routing import Match
from starlette.types import ASGIApp

from backend.api.actions import acts_by_method
from backend.dav import lists, object_writes, objects, reports, resources, sync
from backend.dav.answer import stored_tag
from backend.dav.auth import CHALLENGE, SIGN_IN_REFUSED, sign_in
from backend.dav.xml import (
    CALDAV,
    DAV,
    MAX_BODY_BYTES,
    MEDIA_TYPE,
    Found,
    MethodRefused,
    PayloadTooLarge,
    PreconditionRefused,
    clark,
    error_body,
    make_collection_request,
    multistatus,
    propfind_request,
    proppatch_request,
    propstats,
    report_request,
)
from backend.errors import (
    AppError,
    BodyIncomplete,
    InvalidRequest,
    NotFound,
    PreconditionFailed,
)
from backend.models.app_password import DAV_ROOT, AppPasswordScope
from backend.models.references import Action
from backend.models.task_calendar import CalendarObjectRefused
from backend.services.accounts.users import UserService
from backend.services.sharing.lists import ListService
from backend.services.unit_of_work import UnitOfWork

logger = logging.getLogger(__name__)
router = APIRouter(include_in_schema=False)
# Every path these routes answer, mounted with their own body step (`own_bodies`).
DAV_PATHS = re.compile(rf"{re.escape(DAV_ROOT.rstrip('/'))}(/|$)")


def own_bodies(app: ASGIApp) -> ASGIApp:
    """DAV's steps 6-7 of the edge (backend/api/middleware.py): none. Each route reads its
    body itself, bounded, after its sign-in (`_body`), and answers every error itself."""
    return app


# `1, 3` (RFC 4918's classes, no locking), `calendar-access` (RFC 4791: clients look for it
# to call a server CalDAV) and `extended-mkcol` (RFC 5689: an MKCOL with properties makes a
# calendar); `Allow` says which methods each resource answers.
DAV_HEADER = "1, 3, calendar-access, extended-mkcol"
ALLOW = "OPTIONS, PROPFIND"
ALLOW_COLLECTION = "OPTIONS, PROPFIND, REPORT, PROPPATCH, DELETE"
ALLOW_OBJECT = "OPTIONS, PROPFIND, GET, HEAD, PUT, DELETE"
NOT_FOUND = "Not found"  # every missing resource, another user's list included: one answer
BAD_DEPTH = "Depth is 0 or 1 here"
NO_COLLECTION_TAG = "A collection has no ETag to match"


def _route(path: str) -> str:
    """A resource's route: its path without the trailing slash, which the edge strips from
    every request (backend/api/middleware.py); its href keeps it (a collection's does)."""
    return path.rstrip("/")


def _dav_headers(allow: str = ALLOW) -> dict[str, str]:
    return {"DAV": DAV_HEADER, "Allow": allow}


def _error(error: AppError) -> Response:
    headers = {**(error.headers or {}), **error.extra_headers}
    message = error.message
    if error.status_code == 401:
        # Every 401 here is one answer asking for Basic: an account refused at entry (signed
        # out everywhere since the check) too, not its bearer-token wording.
        headers.update(CHALLENGE)
        message = SIGN_IN_REFUSED
    condition = error.condition if isinstance(error, PreconditionRefused) else None
    if isinstance(error, CalendarObjectRefused):
        condition = clark(CALDAV, error.precondition)
    return Response(
        error_body(error.code, message, condition),
        status_code=error.status_code,
        media_type=MEDIA_TYPE,
        headers=headers,
    )


async def _body(request: Request) -> bytes:
    """The request's body, at most `MAX_BODY_BYTES` (413 past it, before all is read); one its
    client cut short is `BodyIncomplete`, the client's abort (INFO), never a 500."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise PayloadTooLarge()
    chunks, size = [], 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                raise PayloadTooLarge()
            chunks.append(chunk)
    except ClientDisconnect:
        logger.info("A CalDAV request's connection ended before its body did (the client's abort)")
        raise BodyIncomplete() from None
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
    """`run(work, the password may write)` in one thread-pool hop, in `dav_route`'s work."""

    def hop() -> Response:
        work: UnitOfWork = request.state.dav_work
        with work:
            return run(work, request.state.dav_scope is AppPasswordScope.read_write)

    answer = await run_in_threadpool(hop)
    for name, value in response.headers.items():
        if name.lower().startswith("ratelimit"):
            answer.headers[name] = value
    return answer


def dav_route(
    handler: Callable[[Request, Response], Awaitable[Response]],
) -> Callable[[Request, Response], Awaitable[Response]]:
    """A DAV route's handler, signed in first (its unit of work, not entered yet, on
    `request.state.dav_work`), with DAV's answers for errors: an `AppError` (the sign-in's,
    the request's) as a DAV error body with its status and headers."""

    async def answer(request: Request, response: Response) -> Response:
        try:
            request.state.dav_work = await run_in_threadpool(sign_in, request, response)
            return await handler(request, response)
        except AppError as error:
            forget = getattr(request.state, "dav_forget", None)
            if error.status_code == 401 and forget is not None:
                forget()  # a cached password its entry refused: checked afresh next time
            return _error(error)

    answer.__name__ = handler.__name__
    answer.__doc__ = handler.__doc__
    return answer


def _multistatus(body: bytes, allow: str = ALLOW) -> Response:
    return Response(body, 207, media_type=MEDIA_TYPE, headers=_dav_headers(allow))


@router.api_route("/.well-known/caldav", methods=["GET", "HEAD", "PROPFIND", "OPTIONS"])
async def well_known_caldav(request: Request) -> Response:
    """RFC 6764 §5: the DAV root. Permanent, relative to the API's own address."""
    root = request.scope.get("root_path", "")
    return RedirectResponse(f"{root}{DAV_ROOT}", status_code=301)


def _options(allow: str = ALLOW) -> Response:
    return Response(status_code=200, headers=_dav_headers(allow))


async def _propfind(
    request: Request,
    response: Response,
    found: Callable[..., list[Found]],
    allow: str = ALLOW,
) -> Response:
    """OPTIONS, or a PROPFIND answered from `found(work, depth, writes)`."""
    if request.method == "OPTIONS":
        return _options(allow)
    asked = propfind_request(await _body(request))  # malformed: 400 before anything is done
    depth = _depth(request)
    request.state.dav_wants_token = resources.wants_token(asked.names)
    return await _in_work(
        request,
        response,
        lambda work, writes: _multistatus(multistatus(found(work, depth, writes), asked), allow),
    )


def _token_of(
    request: Request, work: UnitOfWork, list_ids: list[int | None]
) -> Callable[[int | None], str | None]:
    """The collections' sync tokens when the PROPFIND names them (one statement for all)."""
    if not request.state.dav_wants_token:
        return lambda list_id: None
    positions = sync.heads(work, list_ids)
    return lambda list_id: sync.token(list_id, positions[list_id])


@router.api_route(_route(DAV_ROOT), methods=["OPTIONS", "PROPFIND"])
@dav_route
async def dav_root(request: Request, response: Response) -> Response:
    def found(work: UnitOfWork, depth: int, writes: bool) -> list[Found]:
        # The root's children are the principal and the home.
        return [resources.root()] + (
            [resources.principal(_display_name(work)), resources.home()] if depth else []
        )

    return await _propfind(request, response, found)


@router.api_route(_route(resources.PRINCIPAL), methods=["OPTIONS", "PROPFIND"])
@dav_route
async def dav_principal(request: Request, response: Response) -> Response:
    def found(work: UnitOfWork, depth: int, writes: bool) -> list[Found]:
        return [resources.principal(_display_name(work))]

    return await _propfind(request, response, found)


@router.api_route(_route(resources.HOME), methods=["OPTIONS", "PROPFIND"])
@dav_route
async def dav_home(request: Request, response: Response) -> Response:
    """The calendar home; Depth 1: every list the caller may read, and the tasks in no list."""

    def found(work: UnitOfWork, depth: int, writes: bool) -> list[Found]:
        here = [resources.home()]
        if depth:
            listing: ListService = work.service(ListService)
            lists = listing.all()
            token = _token_of(request, work, [None, *(row.id for row in lists)])
            here.append(resources.collection(None, writes, token(None)))
            here.extend(resources.collection(row, writes, token(row.id)) for row in lists)
        return here

    return await _propfind(request, response, found)


# What each method does to the list a collection or an object names: the role matrix
# (tests/sharing/test_role_matrix.py) generates its DAV cases from these declarations.
_COLLECTION_ACTIONS = dict.fromkeys(("PROPFIND", "REPORT"), Action.LIST_READ)
_COLLECTION_ACTIONS |= {"PROPPATCH": Action.LIST_RENAME, "DELETE": Action.LIST_DELETE}
_OBJECT_ACTIONS = dict.fromkeys(("PROPFIND", "GET", "HEAD"), Action.LIST_READ)
_OBJECT_ACTIONS |= dict.fromkeys(("PUT", "DELETE"), Action.TASK_WRITE)


@router.api_route(
    resources.HOME + "{segment}",
    methods=["OPTIONS", "PROPFIND", "REPORT", "PROPPATCH", "DELETE"],
    openapi_extra=acts_by_method(_COLLECTION_ACTIONS),
)
@dav_route
async def dav_collection(request: Request, response: Response) -> Response:
    """A collection: a list the caller may read (another user's is the missing one's 404), or
    the tasks in no list; REPORT: reports.py and sync.py; PROPPATCH and DELETE: lists.py."""
    list_id = _collection_of(request)
    if request.method == "OPTIONS":
        return _options(ALLOW_COLLECTION)
    if request.method == "PROPPATCH":
        update = proppatch_request(await _body(request))

        def patched(work: UnitOfWork, writes: bool) -> Response:
            with _the_collection():
                statuses = lists.proppatch(work, list_id, update)
            body = propstats(resources.collection_path(list_id), statuses)
            return _multistatus(body)

        return await _in_work(request, response, patched)
    if request.method == "DELETE":
        if request.headers.get("if-match") not in (None, "*"):
            raise PreconditionFailed(NO_COLLECTION_TAG)  # a collection serves no ETag

        def deleted(work: UnitOfWork, writes: bool) -> Response:
            with _the_collection():
                lists.delete(work, list_id)
            return Response(status_code=204, headers=_dav_headers())

        return await _in_work(request, response, deleted)
    if request.method == "REPORT":
        asked = report_request(await _body(request))

        def reported(work: UnitOfWork, writes: bool) -> Response:
            body = (sync.answer if asked.kind == "sync" else reports.answer)(work, list_id, asked)
            return _multistatus(body)

        return await _in_work(request, response, reported)

    def found(work: UnitOfWork, depth: int, writes: bool) -> list[Found]:
        if list_id is not None and request.state.dav_wants_token:
            # The list, its objects and the caller's position in one statement.
            the_list, members, position = objects.collection(work, list_id, depth)
            here = [resources.collection(the_list, writes, sync.token(list_id, position))]
            return here + [reports.listed(served, list_id) for served in members]
        token = _token_of(request, work, [list_id])
        if not depth:
            return [resources.collection(_list_row(work, list_id), writes, token(list_id))]
        # The list and its objects in one statement (the tasks in no list need no list).
        row, listed = objects.listed(work, list_id)
        here = [resources.collection(row, writes, token(list_id))]
        here.extend(reports.listed(served, list_id) for served in listed)
        return here

    return await _propfind(request, response, found, ALLOW_COLLECTION)


# The root element of each way of making a collection's body.
_MADE_BY = {"MKCALENDAR": clark(CALDAV, "mkcalendar"), "MKCOL": clark(DAV, "mkcol")}


@router.api_route(resources.HOME + "{segment}", methods=list(_MADE_BY))
@dav_route
async def dav_make_collection(request: Request, response: Response) -> Response:
    """MKCALENDAR (RFC 4791 5.3.1) or extended MKCOL (RFC 5689): a new list (`lists.create`),
    `201` with its collection's URL in `Location`. A segment of the server's own (a list id,
    `no-list`) exists: `405`, whether or not the caller may read that list."""
    segment = request.path_params["segment"]
    if not isinstance(resources.list_of(segment), str):
        raise MethodRefused(ALLOW_COLLECTION)
    asked = make_collection_request(await _body(request), _MADE_BY[request.method])

    def made(work: UnitOfWork, writes: bool) -> Response:
        row = lists.create(work, segment, asked, mkcol=request.method == "MKCOL")
        root = request.scope.get("root_path", "")
        headers = {"Location": root + resources.collection_path(row.id), **_dav_headers()}
        return Response(status_code=201, headers=headers)

    return await _in_work(request, response, made)


def _collection_of(request: Request) -> int | None:
    list_id = resources.list_of(request.path_params["segment"])
    if isinstance(list_id, str):
        raise NotFound(NOT_FOUND)
    return list_id


@contextmanager
def _the_collection() -> Iterator[None]:
    """A list's write through `ListService`: its missing list is DAV's one 404."""
    try:
        yield
    except NotFound:
        raise NotFound(NOT_FOUND) from None


def _list_row(work: UnitOfWork, list_id: int | None) -> Any:
    """The collection's list (None: the tasks in no list); another user's is the 404."""
    if list_id is None:
        return None
    with _the_collection():
        lists: ListService = work.service(ListService)
        return lists.get(list_id)


@router.api_route(
    resources.HOME + "{segment}/{name:path}",
    methods=["OPTIONS", "PROPFIND", "GET", "HEAD", "PUT", "DELETE"],
    openapi_extra=acts_by_method(_OBJECT_ACTIONS),
)
@dav_route
async def dav_object(request: Request, response: Response) -> Response:
    """One object: a task as the VTODO the caller gets (objects.py), written by href
    (object_writes.py); a task the caller cannot read is the missing one's 404."""
    list_id = _collection_of(request)
    name = request.path_params["name"]
    if not name or "/" in name or any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise NotFound(NOT_FOUND)  # no object has such a name (nor could: NUL is no text)
    method = request.method
    if method == "OPTIONS":
        return _options(ALLOW_OBJECT)
    if_match = request.headers.get("if-match")
    if method == "PUT":
        body = await _body(request)
        if_none = request.headers.get("if-none-match")

        def written(work: UnitOfWork, writes: bool) -> Response:
            created, stored = object_writes.put(work, list_id, name, body, if_match, if_none)
            tag = stored_tag(stored, body)
            headers = _dav_headers() if tag is None else {"ETag": tag, **_dav_headers()}
            return Response(status_code=201 if created else 204, headers=headers)

        return await _in_work(request, response, written)
    if method == "DELETE":

        def deleted(work: UnitOfWork, writes: bool) -> Response:
            object_writes.delete(work, list_id, name, if_match)
            return Response(status_code=204, headers=_dav_headers())

        return await _in_work(request, response, deleted)
    if method == "PROPFIND":
        asked = propfind_request(await _body(request))
        _depth(request)

        def one(work: UnitOfWork, writes: bool) -> Response:
            found = [reports.listed(objects.get(work, list_id, name), list_id)]
            return _multistatus(multistatus(found, asked), ALLOW_OBJECT)

        return await _in_work(request, response, one)

    def read(work: UnitOfWork, writes: bool) -> Response:
        served = objects.get(work, list_id, name)
        content = served.body()
        headers = {"ETag": served.tag, **_dav_headers(ALLOW_OBJECT)}
        if method == "HEAD":
            headers["Content-Length"] = str(len(content))
            content = b""
        return Response(content, status_code=200, headers=headers, media_type=objects.CONTENT_TYPE)

    return await _in_work(request, response, read)


# Every method a DAV client sends. A path under the root no route has, or a method its
# route does not answer, ends here, signed in first like every other (a stranger cannot
# tell which paths exist): the one 404, or 405 where a route has the path but not the method.
_EVERY_METHOD = [
    "OPTIONS", "PROPFIND", "PROPPATCH", "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE",
    "REPORT", "MKCOL", "MKCALENDAR", "MOVE", "COPY", "LOCK", "UNLOCK", "ACL", "SEARCH",
]  # fmt: skip


@router.api_route(_route(DAV_ROOT), methods=_EVERY_METHOD)
@router.api_route(DAV_ROOT + "{rest:path}", methods=_EVERY_METHOD)
@dav_route
async def dav_unknown(request: Request, response: Response) -> Response:
    """Any other path under the root: the one 404; a method its resource lacks: 405."""
    for route in router.routes:
        if getattr(route, "endpoint", None) is dav_unknown or not isinstance(route, APIRoute):
            continue
        matched, _ = route.matches(request.scope)
        if matched is not Match.NONE:
            raise MethodRefused(", ".join(m for m in _EVERY_METHOD if m in (route.methods or ())))
    raise NotFound(NOT_FOUND)


def _display_name(work: UnitOfWork) -> str:
    users: UserService = work.service(UserService)
    user = users.get(work.caller_id)
    if user is None:  # deleted since the check: the entry answers 401 first
        raise NotFound(NOT_FOUND)
    return str(getattr(user, "name", None) or user.email or "Tasks")
