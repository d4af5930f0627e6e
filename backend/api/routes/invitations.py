"""Invitations to a shared list (specs/api-contract.md, "Shared lists"): create, list and
revoke under `/api/lists/{list_id}/invitations` (admin+), accept by token at
`/api/invitations/accept`. A create counts against the caller's own invitation limit in its
first message (`counted_against`), so one refused for its body (422) counts too."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response, status

from backend.api.actions import acts
from backend.api.deps import DoorRoute, counted_against, uses
from backend.api.responses import (
    FORBIDDEN,
    INVITATION_NOT_FOUND,
    LIST_NOT_FOUND,
    MEMBERS_FULL,
    ONLY_OWNER_ADMINS,
    VALIDATION,
    errors,
    rate_limited,
)
from backend.api.routes.lists import ListId, one_list
from backend.models.common import DecimalDigits
from backend.models.envelopes import (
    InvitationCreatedEnvelope,
    InvitationsEnvelope,
    SingleListEnvelope,
)
from backend.models.references import INVITATIONS, Action, Reference
from backend.models.sharing import INVITATION_DAYS, InvitationAccept, InvitationCreate
from backend.models.types import TASK_ID_MAX
from backend.services.rate_limits import invitation_limit
from backend.services.sharing.invitations import InvitationService

router = APIRouter(
    prefix="/api", tags=["invitations"], responses=errors(401, 422, 503), route_class=DoorRoute
)

InvitationId = Annotated[
    int,
    Path(ge=1, le=TASK_ID_MAX, description="The invitation's id.", examples=[3]),
    DecimalDigits,
    Reference(INVITATIONS, Action.INVITE),
]
# What an admin's route may refuse: a member below admin, an admin's invitation, no such list.
_ADMIN = (FORBIDDEN, ONLY_OWNER_ADMINS, LIST_NOT_FOUND)


@router.post(
    "/invitations/accept",
    operation_id="acceptInvitation",
    response_model=SingleListEnvelope,
    summary="Accept an invitation",
    description="Join the invitation's list with its role (a member keeps a higher role it "
    "has). A token is used once. An unknown, expired, revoked or used token, one addressed "
    "to another email, or the list's owner's own: the same 404 whatever the reason.",
    responses=rate_limited(200, "The list as you now see it, with your role.", "ETag")
    | errors(400, 404, 413, 429, examples=(INVITATION_NOT_FOUND, VALIDATION)),
)
def accept_invitation(
    invitations: Annotated[InvitationService, uses(InvitationService)],
    data: InvitationAccept,
    response: Response,
) -> SingleListEnvelope:
    return one_list(invitations.accept(data.token), response)


@router.post(
    "/lists/{list_id}/invitations",
    openapi_extra=acts(Action.INVITE),
    operation_id="createInvitation",
    status_code=status.HTTP_201_CREATED,
    response_model=InvitationCreatedEnvelope,
    summary="Invite someone to a list",
    dependencies=[counted_against(invitation_limit)],
    description=f"Admins and the owner invite (an `admin` invitation: the owner only). The "
    f"answer carries the token, shown only here: send it to the invitee. It expires in "
    f"{INVITATION_DAYS} days; an invitation to an email replaces a pending one to the same "
    "email. The answer is the same whether or not the email has an account. A list has at "
    "most 100 members and pending invitations together. Invitations have their own rate "
    "limit (`RATE_LIMIT_INVITATIONS_PER_HOUR`).",
    responses=rate_limited(201, "Created, with its token.")
    | errors(400, 403, 404, 413, 429, examples=(*_ADMIN, VALIDATION, MEMBERS_FULL)),
)
def create_invitation(
    invitations: Annotated[InvitationService, uses(InvitationService)],
    list_id: ListId,
    data: InvitationCreate,
) -> InvitationCreatedEnvelope:
    return InvitationCreatedEnvelope(data=invitations.create(list_id, data))


@router.get(
    "/lists/{list_id}/invitations",
    openapi_extra=acts(Action.INVITE),
    operation_id="listInvitations",
    response_model=InvitationsEnvelope,
    summary="List a list's pending invitations",
    description="Admins and the owner: the unexpired invitations, oldest first, never a token.",
    responses=errors(403, 404, examples=(FORBIDDEN, LIST_NOT_FOUND)),
)
def list_invitations(
    invitations: Annotated[InvitationService, uses(InvitationService)], list_id: ListId
) -> InvitationsEnvelope:
    return InvitationsEnvelope(data=list(invitations.pending(list_id)))


@router.delete(
    "/lists/{list_id}/invitations/{invitation_id}",
    openapi_extra=acts(Action.INVITE),
    operation_id="revokeInvitation",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Revoke an invitation",
    description="Admins and the owner (an `admin` invitation: the owner only). Its token "
    "no longer works.",
    responses=rate_limited(204, "Revoked.")
    | errors(403, 404, 429, examples=(*_ADMIN, INVITATION_NOT_FOUND)),
)
def revoke_invitation(
    invitations: Annotated[InvitationService, uses(InvitationService)],
    list_id: ListId,
    invitation_id: InvitationId,
) -> None:
    invitations.revoke(list_id, invitation_id)
