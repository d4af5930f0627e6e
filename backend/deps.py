"""Request dependencies, as `Annotated` aliases routers can use directly."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer, OAuth2PasswordBearer
from sqlmodel import Session

from backend.config import Settings
from backend.db import session_scope
from backend.errors import ServiceUnavailable, Unauthorized
from backend.jwks import JwksCache
from backend.models import User
from backend.security import InvalidToken, JwksUnavailable, TokenClaims, decode_token
from backend.services import TaskService, UserService

TOKEN_URL = "/api/auth/token"  # noqa: S105 (a path, not a secret)


def get_settings_dep(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_session(request: Request) -> Iterator[Session]:
    yield from session_scope(request.app.state.engine)


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
# scope="function": the commit happens before the response is sent, so a 2xx always
# means the write is durable.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]

# Two ways to authenticate in Swagger UI: the password flow (built-in accounts) or pasting a
# token from any trusted issuer. Both read the same `Authorization: Bearer` header.
_oauth2 = OAuth2PasswordBearer(tokenUrl=TOKEN_URL, auto_error=False)
_bearer = HTTPBearer(auto_error=False, description="A JWT from this API or a trusted issuer.")


def get_jwks(request: Request) -> JwksCache | None:
    jwks: JwksCache | None = request.app.state.jwks
    return jwks


def get_token_claims(
    settings: SettingsDep,
    jwks: Annotated[JwksCache | None, Depends(get_jwks)],
    token: Annotated[str | None, Depends(_oauth2)],
    _: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> TokenClaims:
    if token is None:
        raise Unauthorized("Missing bearer token")
    try:
        return decode_token(token, settings, jwks)
    except InvalidToken:
        raise Unauthorized("Invalid or expired token") from None
    except JwksUnavailable:
        raise ServiceUnavailable(
            "The token issuer's keys cannot be fetched; retry shortly"
        ) from None


TokenClaimsDep = Annotated[TokenClaims, Depends(get_token_claims)]


def get_current_user(session: SessionDep, claims: TokenClaimsDep) -> User:
    return UserService(session).resolve(claims)


CurrentUser = Annotated[User, Depends(get_current_user)]


def get_current_user_id(user: CurrentUser) -> str:
    return user.id


CurrentUserId = Annotated[str, Depends(get_current_user_id)]


def get_task_service(session: SessionDep, user_id: CurrentUserId) -> TaskService:
    return TaskService(session, user_id)


TaskServiceDep = Annotated[TaskService, Depends(get_task_service)]


def get_user_service(session: SessionDep) -> UserService:
    return UserService(session)


UserServiceDep = Annotated[UserService, Depends(get_user_service)]
