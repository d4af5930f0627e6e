"""UserService.resolve / resolve_id against the real database: the two lookups a request
uses to find its caller must accept and refuse exactly the same tokens."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import Connection, Engine, insert

from backend.auth.tokens import TokenClaims
from backend.db.sender import Sender
from backend.errors import Unauthorized
from backend.models import User
from backend.services import UserService

Resolver = Callable[[UserService, TokenClaims], str]
RESOLVERS: dict[str, Resolver] = {
    "resolve": lambda users, claims: users.resolve(claims).id,
    "resolve_id": lambda users, claims: users.resolve_id(claims),
}


@pytest.fixture
def session(db_engine: Engine) -> Iterator[Connection]:
    with db_engine.connect() as conn:
        conn.execute(
            insert(User).values(id="local-user", email="local@example.com", token_version=2)
        )
        conn.commit()
        yield Sender(conn, "")  # type: ignore[misc]


@pytest.fixture(params=sorted(RESOLVERS))
def resolve(request: pytest.FixtureRequest) -> Resolver:
    return RESOLVERS[request.param]


def test_current_local_token_gives_its_account(session: Connection, resolve: Resolver) -> None:
    claims = TokenClaims(subject="local-user", local=True, token_version=2)
    assert resolve(UserService(session), claims) == "local-user"


@pytest.mark.parametrize(
    ("subject", "version", "message"),
    [
        ("local-user", 1, "This token was revoked"),
        ("local-user", None, "This token was revoked"),
        ("deleted-user", 0, "The account for this token no longer exists"),
    ],
)
def test_revoked_or_orphaned_local_token_is_refused(
    session: Connection, resolve: Resolver, subject: str, version: int | None, message: str
) -> None:
    claims = TokenClaims(subject=subject, local=True, token_version=version)
    with pytest.raises(Unauthorized) as refused:
        resolve(UserService(session), claims)
    assert refused.value.message == message
    assert UserService(session).get("deleted-user") is None  # never provisioned


def test_external_token_gets_its_existing_account_whatever_the_version(
    session: Connection, resolve: Resolver
) -> None:
    claims = TokenClaims(subject="local-user", local=False)
    assert resolve(UserService(session), claims) == "local-user"


def test_external_token_provisions_a_first_seen_subject(
    session: Connection, resolve: Resolver
) -> None:
    claims = TokenClaims(subject="ext|42", local=False, email="ext@example.com", name="Ext")
    assert resolve(UserService(session), claims) == "ext|42"
    session.commit()
    created = UserService(session).get("ext|42")
    assert created is not None
    assert (created.email, created.name, created.password_hash) == ("ext@example.com", "Ext", None)
