"""`/api/auth`: the built-in issuer, for running standalone, Swagger's Authorize and curl."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, status
from fastapi.security import OAuth2PasswordRequestForm
from pydantic import ValidationError

from backend.api.door import AnonymousDoor, Door, DoorRoute, SettingsDep
from backend.api.responses import errors
from backend.auth.tokens import issue_token
from backend.config import Settings
from backend.errors import NotFound, Unauthorized
from backend.models import AuthSession, DataEnvelope, UserLogin, UserPublic, UserRegister, UserRow
from backend.services.users import INVALID_CREDENTIALS

router = APIRouter(
    prefix="/api/auth",
    tags=["auth"],
    responses=errors(400, 413, 422, 503),
    route_class=DoorRoute,
)


def _session(user: UserRow, settings: Settings) -> DataEnvelope[AuthSession]:
    return DataEnvelope[AuthSession](
        data=AuthSession(
            user=UserPublic.model_validate(user),
            access_token=issue_token(user.id, settings, token_version=user.token_version),
            expires_in=settings.access_token_expire_minutes * 60,
        )
    )


@router.post(
    "/register",
    status_code=status.HTTP_201_CREATED,
    response_model=DataEnvelope[AuthSession],
    summary="Create an account and get a token",
    responses=errors(409, 429),
)
def register(
    data: UserRegister, door: AnonymousDoor, settings: SettingsDep
) -> DataEnvelope[AuthSession]:
    door.limits.sign_up(data.email)
    return _session(door.users.register(data), settings)


@router.post(
    "/login",
    response_model=DataEnvelope[AuthSession],
    summary="Sign in with email and password (JSON)",
    responses=errors(401, 429),
)
def login(data: UserLogin, door: AnonymousDoor, settings: SettingsDep) -> DataEnvelope[AuthSession]:
    door.limits.sign_in(data.email)
    return _session(door.users.authenticate(data), settings)


@router.post(
    "/token",
    summary="OAuth2 password flow (form): what Swagger's Authorize button calls",
    description="`username` is the account's email. Answers the bare OAuth2 token response "
    "(no `data` envelope), as OAuth2 clients expect.",
    responses=errors(401, 429),
)
def token(
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
    door: AnonymousDoor,
    settings: SettingsDep,
) -> dict[str, Any]:
    door.limits.sign_in(form.username)
    try:
        credentials = UserLogin(email=form.username, password=form.password)
    except ValidationError:
        # A malformed email or an over-long password cannot be valid credentials.
        raise Unauthorized(INVALID_CREDENTIALS) from None
    user = door.users.authenticate(credentials)
    return {
        "access_token": issue_token(user.id, settings, token_version=user.token_version),
        "token_type": "bearer",
        "expires_in": settings.access_token_expire_minutes * 60,
    }


@router.get(
    "/me",
    response_model=DataEnvelope[UserPublic],
    summary="The signed-in account",
    responses=errors(401),
)
def me(door: Door) -> DataEnvelope[UserPublic]:
    user = door.users.get(door.caller_id)
    if user is None:  # only if deleted since the door resolved it, in this transaction
        raise NotFound("Account not found")
    return DataEnvelope[UserPublic](data=UserPublic.model_validate(user))


@router.post(
    "/logout-all",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Sign out everywhere: revoke every token this API issued for the account",
    description="Every built-in token issued so far (including the one sending this request) "
    "stops working immediately; sign in again for a new one. Tokens from an external issuer "
    "(Better Auth, JWKS) are revoked at that issuer.",
    responses=errors(401),
)
def logout_all(door: Door) -> None:
    door.users.revoke_tokens(door.caller_id)


@router.delete(
    "/me",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete the account and all its tasks",
    responses=errors(401),
)
def delete_me(door: Door) -> None:
    door.users.delete(door.caller_id)
