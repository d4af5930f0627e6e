"""Request dependencies, as `Annotated` aliases routers can use directly."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

from fastapi import Depends, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer, OAuth2PasswordBearer
from sqlalchemy import Engine
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from backend.auth.jwks import JwksCache
from backend.auth.token_cache import VerifiedTokens
from backend.auth.tokens import InvalidToken, JwksUnavailable, TokenClaims, decode_token
from backend.config import Settings
from backend.db.engine import session_scope
from backend.errors import RateLimited, ServiceUnavailable, Unauthorized
from backend.models import User
from backend.services import TaskService, UserService
from backend.services.rate_limits import Policy, RateLimiter

TOKEN_URL = "/api/auth/token"  # noqa: S105 (a path, not a secret)

# Dependencies that touch neither the database nor the network are `async def`: FastAPI runs a
# sync dependency in the thread pool, and each such hop (a thread hand-off and back) cost more
# than the work itself. Only the ones doing blocking I/O stay sync.


async def get_settings_dep(request: Request) -> Settings:
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


async def get_jwks(request: Request) -> JwksCache | None:
    jwks: JwksCache | None = request.app.state.jwks
    return jwks


async def get_token_claims(
    request: Request,
    settings: SettingsDep,
    jwks: Annotated[JwksCache | None, Depends(get_jwks)],
    token: Annotated[str | None, Depends(_oauth2)],
    _: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> TokenClaims:
    if token is None:
        raise Unauthorized("Missing bearer token")
    claims = await _verified_claims(request, settings, jwks, token)
    # For the access log: the verified subject (the user id), never the token itself.
    request.state.user_id = claims.subject
    return claims


async def _verified_claims(
    request: Request, settings: Settings, jwks: JwksCache | None, token: str
) -> TokenClaims:
    if jwks is not None:
        # A JWKS token may need the key set fetched (blocking I/O, so in a thread) and is
        # verified every time, so a key the issuer withdraws stops working exactly when the
        # key set's cache says.
        try:
            return await run_in_threadpool(decode_token, token, settings, jwks)
        except InvalidToken:
            raise Unauthorized("Invalid or expired token") from None
        except JwksUnavailable:
            raise ServiceUnavailable(
                "The token issuer's keys cannot be fetched; retry shortly"
            ) from None
    # Shared-secret (HS256) tokens only: CPU work, cheaper on the event loop than a thread
    # hop, and cached briefly (backend/token_cache.py).
    verified: VerifiedTokens = request.app.state.verified_tokens
    claims = verified.get(token)
    if claims is not None:
        return claims
    try:
        claims = decode_token(token, settings)
    except InvalidToken:
        raise Unauthorized("Invalid or expired token") from None
    verified.put(token, claims)
    return claims


TokenClaimsDep = Annotated[TokenClaims, Depends(get_token_claims)]


def get_current_user(session: SessionDep, claims: TokenClaimsDep) -> User:
    return UserService(session).resolve(claims)


CurrentUser = Annotated[User, Depends(get_current_user)]


async def get_current_user_id(user: CurrentUser) -> str:
    return user.id


CurrentUserId = Annotated[str, Depends(get_current_user_id)]


# `session_scope` as a context manager, wrapped once rather than on every request.
_session = contextmanager(session_scope)


class TaskAccess:
    """What a task route gets: the caller's verified token and the request's engine.
    `transaction()` is the route's one blocking step."""

    def __init__(self, engine: Engine, claims: TokenClaims) -> None:
        self.engine = engine
        self.claims = claims

    @contextmanager
    def transaction(self) -> Iterator[TaskService]:
        """The caller's task service on the request's session. The account is resolved first
        (a revoked token or a deleted account is a 401; an external identity is
        provisioned). Leaving the block commits, an error rolls back; routes leave it before
        returning, so a 2xx means the write is durable.

        It runs inside the sync route, in the route's own thread-pool hop: as dependencies,
        opening the session with the account lookup and the commit were two more hops per
        request (specs/benchmark.md)."""
        with _session(self.engine) as session:
            yield TaskService(session, UserService(session).resolve_id(self.claims))


async def get_task_access(request: Request, claims: TokenClaimsDep) -> TaskAccess:
    return TaskAccess(request.app.state.engine, claims)


# Task routes that only read take `tasks: TaskAccessDep` and do their work in
# `with tasks.transaction() as service:`.
TaskAccessDep = Annotated[TaskAccess, Depends(get_task_access)]


async def get_user_service(session: SessionDep) -> UserService:
    return UserService(session)


UserServiceDep = Annotated[UserService, Depends(get_user_service)]


class RateLimits:
    """The rate-limit policies, bound to this request's client and response.

    Every checked request gets `RateLimit` / `RateLimit-Policy` headers; one over a limit
    gets 429 `RATE_LIMITED` with `Retry-After`.
    """

    def __init__(
        self, limiter: RateLimiter, settings: Settings, client_ip: str, response: Response
    ) -> None:
        self.limiter = limiter
        self.settings = settings
        self.client_ip = client_ip
        self.response = response

    def sign_in(self, email: str) -> None:
        s = self.settings
        window = s.rate_limit_auth_window_seconds
        self._enforce(
            (Policy("sign-in-ip", s.rate_limit_sign_in_per_ip, window), self.client_ip),
            (Policy("sign-in-account", s.rate_limit_sign_in_per_account, window), _norm(email)),
        )

    def sign_up(self, email: str) -> None:
        s = self.settings
        window = s.rate_limit_auth_window_seconds
        self._enforce(
            (Policy("sign-up-ip", s.rate_limit_sign_up_per_ip, window), self.client_ip),
            (Policy("sign-up-account", s.rate_limit_sign_up_per_account, window), _norm(email)),
        )

    def task_write(self, user_id: str) -> None:
        s = self.settings
        policy = Policy(
            "task-writes", s.rate_limit_task_writes_per_user, s.rate_limit_task_window_seconds
        )
        self._enforce((policy, user_id))

    def _enforce(self, *checks: tuple[Policy, str]) -> None:
        outcome = self.limiter.hit(checks)
        headers = outcome.headers()
        if not outcome.allowed:
            raise RateLimited(extra_headers=headers)
        self.response.headers.update(headers)


def _norm(email: str) -> str:
    return email.strip().lower()


async def get_rate_limits(
    request: Request, response: Response, settings: SettingsDep
) -> RateLimits:
    # Behind a proxy, uvicorn's --forwarded-allow-ips makes this the real client address.
    client_ip = request.client.host if request.client else "unknown"
    return RateLimits(request.app.state.rate_limiter, settings, client_ip, response)


RateLimitsDep = Annotated[RateLimits, Depends(get_rate_limits)]


def get_task_writer(request: Request, claims: TokenClaimsDep, limits: RateLimitsDep) -> TaskAccess:
    """`TaskAccessDep` for routes that write, after counting the write against the caller's
    per-user limit. A dependency (one thread-pool hop), so the write is counted before input
    validation, as the contract says: an invalid write still counts."""
    # Keyed on the token's subject, and on its own connection, committed and returned
    # before the route's transaction checks one out: no request holds one connection while
    # waiting for another.
    limits.task_write(claims.subject)
    return TaskAccess(request.app.state.engine, claims)


# Task routes that write take `tasks: TaskWriterDep` (not TaskAccessDep): rate-limited.
TaskWriterDep = Annotated[TaskAccess, Depends(get_task_writer)]
