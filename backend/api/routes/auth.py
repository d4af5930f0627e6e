"""`/api/auth`: the built-in issuer, for running standalone, Swagger's Authorize and curl."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Form, Request, status
from pydantic import ValidationError

from backend.api.deps import Door, DoorRoute, SettingsDep, anonymous_door, uses
from backend.api.responses import BAD_CREDENTIALS, EMAIL_TAKEN, errors, rate_limited
from backend.auth.tokens import issue_token
from backend.config import Settings
from backend.errors import NotFound
from backend.models import AuthSession, UserLogin, UserPublic, UserRegister, UserRow
from backend.models.envelopes import AuthSessionEnvelope, UserEnvelope
from backend.models.oauth import TokenRequest, TokenResponse
from backend.services.accounts.app_passwords import AppPasswordService
from backend.services.accounts.users import UserService
from backend.services.calendar.calendar_feeds import CalendarFeedService
from backend.services.rate_limits import RateLimiter
from backend.services.tasks.attachments import AttachmentService
from backend.storage.app import delete_objects

router = APIRouter(
    prefix="/api/auth", tags=["auth"], responses=errors(400, 413, 422, 503), route_class=DoorRoute
)


def _session(user: UserRow, settings: Settings) -> AuthSessionEnvelope:
    return AuthSessionEnvelope(
        data=AuthSession(
            user=UserPublic.model_validate(user),
            access_token=issue_token(user.id, settings, token_version=user.token_version),
            expires_in=settings.access_token_expire_minutes * 60,
        )
    )


@router.post(
    "/register",
    operation_id="register",
    status_code=status.HTTP_201_CREATED,
    response_model=AuthSessionEnvelope,
    summary="Create an account and get a token",
    responses=rate_limited(201, "The new account and a bearer token for it.")
    | errors(409, 429, examples=(EMAIL_TAKEN,)),
)
def register(
    data: UserRegister,
    limits: Annotated[RateLimiter, uses(RateLimiter, anonymous_door)],
    users: Annotated[UserService, uses(UserService, anonymous_door)],
    settings: SettingsDep,
) -> AuthSessionEnvelope:
    limits.sign_up(data.email)
    return _session(users.register(data), settings)


@router.post(
    "/login",
    operation_id="login",
    response_model=AuthSessionEnvelope,
    summary="Sign in with email and password (JSON)",
    responses=rate_limited(200, "The account and a bearer token for it.")
    | errors(401, 429, examples=(BAD_CREDENTIALS,)),
)
def login(
    data: UserLogin,
    limits: Annotated[RateLimiter, uses(RateLimiter, anonymous_door)],
    users: Annotated[UserService, uses(UserService, anonymous_door)],
    settings: SettingsDep,
) -> AuthSessionEnvelope:
    limits.sign_in(data.email)
    return _session(users.authenticate(data), settings)


@router.post(
    "/token",
    operation_id="token",
    response_model=TokenResponse,
    summary="OAuth2 password flow (form): what Swagger's Authorize button calls",
    description="`username` is the account's email. Answers the bare OAuth2 token response "
    "(no `data` envelope), as OAuth2 clients expect.",
    responses=rate_limited(200, "A bearer token (the bare OAuth2 token response).")
    | errors(401, 429, examples=(BAD_CREDENTIALS,)),
)
def token(
    form: Annotated[TokenRequest, Form()],
    limits: Annotated[RateLimiter, uses(RateLimiter, anonymous_door)],
    users: Annotated[UserService, uses(UserService, anonymous_door)],
    settings: SettingsDep,
) -> TokenResponse:
    limits.sign_in(form.username)
    try:
        credentials = UserLogin(email=form.username, password=form.password)
    except ValidationError:
        # A malformed email, or a password empty or outside 8-128 characters, cannot be valid
        # credentials: refused like a wrong password, in comparable time.
        users.refuse()
    user = users.authenticate(credentials)
    return TokenResponse(
        access_token=issue_token(user.id, settings, token_version=user.token_version),
        token_type="bearer",  # noqa: S106 (the OAuth2 token type, not a secret)
        expires_in=settings.access_token_expire_minutes * 60,
    )


@router.get(
    "/me",
    operation_id="getMe",
    response_model=UserEnvelope,
    summary="The signed-in account",
    responses=errors(401),
)
def me(door: Door, users: Annotated[UserService, uses(UserService)]) -> UserEnvelope:
    user = users.get(door.caller_id)
    if user is None:  # only if deleted since the door resolved it, in this transaction
        raise NotFound("Account not found")
    return UserEnvelope(data=UserPublic.model_validate(user))


@router.post(
    "/logout-all",
    operation_id="logoutAll",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Sign out everywhere: revoke every token this API issued for the account",
    description="Every built-in token issued so far (including the one sending this request) "
    "stops working immediately; sign in again for a new one. Every calendar feed of the "
    "account is revoked too (its URL answers 404; make a new one), and every app password "
    "(CalDAV clients are refused until given a new one). Tokens from an external "
    "issuer (Better Auth, JWKS) are revoked at that issuer.",
    responses=rate_limited(204, "Signed out everywhere.") | errors(401, 429),
)
def logout_all(
    door: Door,
    calendar_feeds: Annotated[CalendarFeedService, uses(CalendarFeedService)],
    app_passwords: Annotated[AppPasswordService, uses(AppPasswordService)],
    users: Annotated[UserService, uses(UserService)],
) -> None:
    calendar_feeds.end_all()  # in the message of the token version's write
    app_passwords.end_all()  # and every app password (CalDAV) too
    users.revoke_tokens(door.caller_id)


@router.delete(
    "/me",
    operation_id="deleteMe",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete the account and all its tasks",
    responses=rate_limited(204, "Deleted, with all its tasks.") | errors(401, 429),
)
def delete_me(
    door: Door,
    users: Annotated[UserService, uses(UserService)],
    attachments: Annotated[AttachmentService, uses(AttachmentService)],
    request: Request,
    later: BackgroundTasks,
) -> None:
    held = users.delete(door.caller_id)
    # The files' bytes after the response, so after the commit (`DoorRoute`), as a purge's:
    # those no row names any more (a list handed over keeps its own).
    gone = attachments.forgotten(held)
    later.add_task(delete_objects, request.app, gone)
