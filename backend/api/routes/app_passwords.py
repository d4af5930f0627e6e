"""`/api/app-passwords` (specs/api-contract.md, "App passwords"): passwords for CalDAV clients,
each shown in its create's answer only; no MCP or chat tool makes one (never in a model's context).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request, Response, status

from backend.api.deps import Door, DoorRoute, uses
from backend.api.responses import VALIDATION, ErrorExample, errors, ok, rate_limited
from backend.models.app_password import (
    APP_PASSWORD_ID_MAX,
    AppPassword,
    AppPasswordCreate,
    AppPasswordCreated,
    AppPasswordPublic,
    dav_url,
    dav_username,
)
from backend.models.common import DecimalDigits
from backend.models.envelopes import AppPasswordCreatedEnvelope, AppPasswordsEnvelope, CountMeta
from backend.models.references import Reference
from backend.services.accounts.app_passwords import ROWS, AppPasswordService

router = APIRouter(prefix="/api/app-passwords", tags=["app-passwords"], route_class=DoorRoute)
TAGS = {
    "app-passwords": "Passwords for CalDAV clients (Apple Reminders, Thunderbird, DAVx5, "
    "todoman): HTTP Basic with the answer's `username` and one app password, at its "
    "`dav_url`. A bearer token or the account's password never works there. Each password is "
    "shown once, stored as a hash, and can be revoked on its own; signing out everywhere and "
    "deleting the account end them all. At most 50 per account; names unique per account."
}

NOT_FOUND = ErrorExample.of("app_password_not_found", "No such app password", ROWS.not_found())
TAKEN = ErrorExample.of(
    "app_password_name_taken", "Name taken", ROWS.name_taken("iPhone Reminders")
)
FULL = ErrorExample.of("too_many_app_passwords", "The most", ROWS.too_many(ROWS.limit))

AppPasswordId = Annotated[
    int,
    Path(ge=1, le=APP_PASSWORD_ID_MAX, description="The app password's id.", examples=[3]),
    DecimalDigits,
    Reference(AppPassword.__tablename__, None),  # the caller's own
]


def _base(door: Door, request: Request) -> str:
    public = door.settings.public_url
    return str(public) if public else str(request.base_url)


def _public(row: Any, door: Door, base: str) -> dict[str, Any]:
    """A row's answer: its columns, the account's DAV username and the DAV root's address."""
    return {**row._mapping, "username": dav_username(door.caller_id), "dav_url": dav_url(base)}


@router.post(
    "",
    operation_id="createAppPassword",
    status_code=status.HTTP_201_CREATED,
    response_model=AppPasswordCreatedEnvelope,
    summary="Create an app password (for a CalDAV client)",
    description="The answer's `password` is shown only here: give it and `username` to one "
    "CalDAV client, with `dav_url` as the server's address. `scope: read` makes a read-only "
    "client. At most 50 per account; names are unique among yours, ignoring case.",
    responses=rate_limited(201, "Created, with its password; `Location` is its path.", "Location")
    | errors(400, 401, 409, 413, 422, 429, 503, examples=(TAKEN, VALIDATION, FULL)),
)
def create_app_password(
    door: Door,
    app_passwords: Annotated[AppPasswordService, uses(AppPasswordService)],
    request: Request,
    response: Response,
    data: AppPasswordCreate,
) -> AppPasswordCreatedEnvelope:
    new = app_passwords.create(data)
    public = _public(new.row, door, _base(door, request))
    root = request.scope.get("root_path", "")
    response.headers["Location"] = f"{root}/api/app-passwords/{public['id']}"
    return AppPasswordCreatedEnvelope(data=AppPasswordCreated(**public, password=new.password))


@router.get(
    "",
    operation_id="listAppPasswords",
    response_model=AppPasswordsEnvelope,
    summary="List your app passwords",
    description="By name, with when each was last used; never a password.",
    responses=ok(200, "Your app passwords.") | errors(401, 503),
)
def list_app_passwords(
    door: Door,
    app_passwords: Annotated[AppPasswordService, uses(AppPasswordService)],
    request: Request,
) -> AppPasswordsEnvelope:
    base = _base(door, request)
    rows = app_passwords.mine()
    data = [AppPasswordPublic(**_public(row, door, base)) for row in rows]
    return AppPasswordsEnvelope(data=data, meta=CountMeta(count=len(data)))


@router.delete(
    "/{app_password_id}",
    operation_id="revokeAppPassword",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Revoke an app password",
    description="A CalDAV client signing in with it is refused (401) from the next request on.",
    responses=rate_limited(204, "Revoked.")
    | errors(401, 404, 422, 429, 503, examples=(NOT_FOUND,)),
)
def revoke_app_password(
    app_passwords: Annotated[AppPasswordService, uses(AppPasswordService)],
    app_password_id: AppPasswordId,
) -> None:
    app_passwords.revoke(app_password_id)
