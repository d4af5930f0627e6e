"""Every standing a caller can have towards a shared list, for the generated matrices
(test_role_matrix.py, test_named_row_matrix.py): the owner, a member with each role, and
those with no role, each made the way it happens (a member who left sends the leave route
itself; a pending invitee holds an invitation to its email it has not accepted)."""

from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from backend.models.sharing import Role
from tests.conftest import Account
from tests.sharing.conftest import SharedList

Grant = Callable[[SharedList, Account, str | None], None]

# Standings without a role in the list: each is answered as a missing resource is.
NO_ROLE = ("stranger", "removed", "left", "pending invitee", "expired invitation")
ROLES = tuple(role.value for role in Role)
STANDINGS = (*NO_ROLE, *ROLES)


def take(
    client: TestClient,
    shared: SharedList,
    bob: Account,
    grant: Grant,
    db_engine: Engine,
    standing: str,
) -> Account:
    """Give bob `standing` towards the list; the caller of that standing (the owner for
    `owner`). A removed member was an admin; one who left was an editor; an expired
    invitation's holder was invited as an editor, and its token, accepted too late, made it
    nothing."""
    if standing == "owner":
        return shared.owner
    grant(shared, bob, None)
    if standing == "removed":
        grant(shared, bob, "admin")
        grant(shared, bob, None)
    elif standing == "left":
        grant(shared, bob, "editor")
        path = f"/api/lists/{shared.list_id}/members/{bob.id}"
        left = client.delete(path, headers=bob.headers)
        assert left.status_code == 204, left.text
    elif standing in ("pending invitee", "expired invitation"):
        invited = client.post(
            f"/api/lists/{shared.list_id}/invitations",
            json={"role": "editor", "email": bob.email},
            headers=shared.owner.headers,
        )
        assert invited.status_code == 201, invited.text
        if standing == "expired invitation":
            with db_engine.begin() as conn:
                conn.execute(
                    text(
                        "UPDATE list_invitations SET expires_at = now() - interval '1 s' "
                        "WHERE id = :id"
                    ),
                    {"id": invited.json()["data"]["id"]},
                )
            token = invited.json()["data"]["token"]
            late = client.post(
                "/api/invitations/accept", json={"token": token}, headers=bob.headers
            )
            assert late.status_code == 404, late.text
    elif standing != "stranger":
        grant(shared, bob, standing)
    return bob
