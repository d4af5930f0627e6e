"""HTTP Basic for DAV: the account's DAV username and one of its app passwords.

A request's check is one message (`AppPasswordCheck`: the password's row by its hash, its
`last_used_at` written when a minute old, and the failure counts of the client's address and
of the username from that address read beside it: never of the username alone, which every
co-member sees). Past either failure limit every attempt is 429 until its window
ends, a right password too (else a guess would still learn it was right); a failed attempt is
counted in a transaction of its own and answered 401, the same 401 for every reason (no such
username, a wrong, revoked or malformed password, a bearer token). Then the request enters as
the password's account, as a signed-in REST request does (`task_api_enter`: the account's
token version, so signing out everywhere between the check and the route is a 401 too).

A password this process verified within the last minute skips the check's message
(backend/auth/password_cache.py): the request enters at once, and its entry, in the route's
first message, refuses it unless the password's row is still there (revoked since: the same
401). Such a request pays no failure-limit check: only a password verified as right, sent
under the same username, hits, and any failure of that username or address in this process
drops its entries.

The credential is read from the header here and passed on only as its hash: no log line, no
event and no error carries it (`tests/chat/test_credentials.py`).
"""

from __future__ import annotations

import re
from base64 import b64decode
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import Connection
from starlette.requests import Request
from starlette.responses import Response

from backend.api.deps import READ_METHODS
from backend.auth.password_cache import VerifiedPassword, VerifiedPasswords
from backend.auth.tokens import TokenClaims
from backend.db.sender import Entry, Outcome
from backend.errors import Forbidden, Taken, Unauthorized
from backend.models.app_password import PASSWORD_PATTERN, AppPasswordScope, dav_username
from backend.services.accounts.app_passwords import AppPasswordCheck
from backend.services.rate_limits import (
    RateLimiter,
    Usage,
    dav_failure_checks,
    limit_key,
    settle_usages,
)
from backend.services.statements.tokens import token_hash
from backend.services.unit_of_work import UnitOfWork

REALM = "Task API CalDAV"
CHALLENGE = {"WWW-Authenticate": f'Basic realm="{REALM}", charset="UTF-8"'}
SIGN_IN_REFUSED = "Sign in with your DAV username and an app password"
READ_ONLY = "This app password may only read"
_TAKEN = "TA412"  # a write by href refused by its own message (`DavWork`)
# After the entry of a request signed in with an app password this process verified moments
# ago: refused as a revoked token's is unless the password's row is still the caller's, with
# the scope it was verified with (revoked, or signed out everywhere, since).
_CREDENTIAL_LIVE = (
    "SELECT task_api_refuse('TA401', 'revoked') WHERE NOT EXISTS (SELECT FROM app_passwords "
    "AS a WHERE a.token_hash = %(a_hash)s AND a.user_id = %(e_subject)s "
    "AND a.scope = %(a_scope)s); "
)
_MAX_CREDENTIALS = 1024  # a longer header is no credential of ours
_PASSWORD_LENGTH = len("tapw_") + 43
_SHAPE = re.compile(PASSWORD_PATTERN)


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str


def refused(headers: dict[str, str] | None = None) -> Unauthorized:
    """The one 401 of every refused sign-in, with Basic's challenge (and any counts' headers)."""
    return Unauthorized(SIGN_IN_REFUSED, extra_headers={**(headers or {}), **CHALLENGE})


def basic_credentials(header: str | None) -> Credentials | None:
    """The username and password of an `Authorization: Basic` header (None: none, another
    scheme, or not one: bad base64, no `:`, not UTF-8, too long)."""
    if not header or len(header) > _MAX_CREDENTIALS:
        return None
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic" or not encoded.strip():
        return None
    try:
        decoded = b64decode(encoded.strip(), validate=True).decode("utf-8")
    except ValueError:  # bad base64 (binascii.Error), non-ASCII, not UTF-8 (UnicodeDecodeError)
        return None
    username, colon, password = decoded.partition(":")
    if not colon or not username:
        return None
    return Credentials(username, password)


def _looks_like_a_password(password: str) -> bool:
    """Whether `password` has an app password's shape (anything else is refused unsent)."""
    return len(password) == _PASSWORD_LENGTH and _SHAPE.fullmatch(password) is not None


def sign_in(request: Request, response: Response) -> UnitOfWork:
    """The request's unit of work as the app password's account (not entered yet). Sync: call
    it in the thread pool. `Unauthorized` (401 + Basic challenge), `RateLimited` (429) or
    `Forbidden` (a `read` password's write)."""
    credentials = basic_credentials(request.headers.get("authorization"))
    if credentials is None:
        raise refused()
    app = request.app
    settings, engine = app.state.settings, app.state.engine
    client_ip = _client_ip(request)
    verified = _verified_passwords(app)
    shaped = _looks_like_a_password(credentials.password)
    password_hash = token_hash(credentials.password) if shaped else ""
    hit = None
    if shaped:
        hit = verified.get(credentials.username, credentials.password, password_hash)
    if hit is not None:
        # Refused by its entry (revoked since): the route's 401 drops it (`dav_route`).
        request.state.dav_forget = lambda: verified.forget(
            credentials.username, credentials.password, password_hash
        )
        return _entering(request, response, hit)
    checks = dav_failure_checks(settings, client_ip, credentials.username)
    checked = None
    if shaped:
        with _CheckWork(engine, settings, client_ip=client_ip) as work:
            passwords: AppPasswordCheck = work.service(AppPasswordCheck)
            checked = passwords.check(
                credentials.password, limit_key(*checks[0]), limit_key(*checks[1])
            )
        if settings.rate_limit_enabled:
            # Already past a failure limit: refused, whatever the password (Retry-After).
            failures = (checked.ip_failures, checked.user_failures)
            over = [
                Usage(policy, counted[0] + 1, counted[1])
                for (policy, _), counted in zip(checks, failures, strict=True)
                if counted is not None and 0 < policy.limit <= counted[0]
            ]
            settle_usages(over, {})
    user_id = None if checked is None else checked.user_id
    if checked is None or user_id is None or dav_username(user_id) != credentials.username:
        verified.failed(credentials.username, client_ip)
        headers: dict[str, str] = {}
        with UnitOfWork(engine, settings, client_ip=client_ip, response_headers=headers) as work:
            limits: RateLimiter = work.service(RateLimiter)
            limits.dav_failure(credentials.username)
        raise refused(headers)
    found = VerifiedPassword(
        user_id=user_id,
        scope=(checked.scope or AppPasswordScope.read).value,  # a found password has one
        token_version=checked.token_version,
        password_hash=password_hash,
        username=credentials.username,
        client_ip=client_ip,
    )
    verified.put(credentials.password, found)
    return _entering(request, response, found, checked_now=True)


def _verified_passwords(app: Any) -> VerifiedPasswords:
    """The app's cache of verified app passwords (one per app: per process)."""
    cache = getattr(app.state, "dav_passwords", None)
    if cache is None:
        cache = app.state.dav_passwords = VerifiedPasswords()
    return cache


class _CheckWork(UnitOfWork):
    """A DAV request's password check (`AppPasswordCheck`): no caller yet, a check that
    writes (its failures, `last_used_at`), committing in one message of its own with nothing
    riding with it."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self._autocommit = True

    def _anonymous_entry(self, conn: Connection) -> Entry:
        return Entry("", {}, {}, True, self._settle)


class DavWork(UnitOfWork):
    """A signed-in DAV request's unit of work. Signed in with an app password this process
    verified earlier (`password`: its hash and scope; backend/auth/password_cache.py), its
    entry also checks that the password's row is still the caller's, with that scope
    (`_CREDENTIAL_LIVE`). A write by href that its own message refused for a name or a UID
    held, a tag or a guess that did not hold (`TA412`, with its reason: `DavObjectService`'s
    claim, vouch and naming statements) is `Taken`, nothing written."""

    def __init__(self, *args: Any, password: tuple[str, str] | None = None, **kw: Any) -> None:
        super().__init__(*args, **kw)
        if password is not None:
            # With the caller's entry, in each transaction it enters (`begin_again`); with no
            # entry to carry it, the cached password would go unchecked: fail closed.
            if self.claims is None:
                raise RuntimeError("A DAV request signed in by a cached password has no entry")
            self._checks = (_CREDENTIAL_LIVE, {"a_hash": password[0], "a_scope": password[1]})

    def _settle(self, outcome: Outcome) -> None:
        if outcome.refused != _TAKEN:
            super()._settle(outcome)
            return
        super()._settle(replace(outcome, refused=None, reason=None))
        raise Taken(outcome.reason or "name", tuple(outcome.read or ()))  # `dav_statements.LOOKED`


def _entering(
    request: Request, response: Response, found: VerifiedPassword, *, checked_now: bool = False
) -> UnitOfWork:
    """The request's unit of work as `found`'s account: `Forbidden` for a `read` password's
    write. A password not `checked_now` (cached) is checked again by the entry."""
    scope = AppPasswordScope(found.scope)
    request.state.dav_scope = scope
    if scope is AppPasswordScope.read and request.method not in READ_METHODS:
        raise Forbidden(READ_ONLY)
    app = request.app
    # The account's current token version: the entry refuses the request if it changed
    # since (signing out everywhere, which also deleted the password).
    claims = TokenClaims(subject=found.user_id, local=True, token_version=found.token_version)
    work = DavWork(
        app.state.engine,
        app.state.settings,
        claims=claims,
        counts_write=request.method not in READ_METHODS,
        client_ip=_client_ip(request),
        response_headers=response.headers,
        transaction_locals=app.state.transaction_locals,
        password=None if checked_now else (found.password_hash, found.scope),
    )
    # For the access log: the account, never the credential.
    request.state.user_id = found.user_id
    return work


def _client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"
