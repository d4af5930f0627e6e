"""`/api/lists/{list_id}/members` and `/transfer` (specs/api-contract.md, "Shared lists").
Anyone who is not a member of the list gets the 404 a missing list gets; a member below the
role an action needs, 403 `FORBIDDEN`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response, status

from backend.api.actions import acts
from backend.api.deps import DoorRoute, uses
from backend.api.responses import (
    FORBIDDEN,
    HEIR_NAME_TAKEN,
    HEIR_TOO_MANY_LISTS,
    LIST_NOT_FOUND,
    MEMBER_NOT_FOUND,
    ONLY_OWNER_ADMINS,
    OWNER_CANNOT_LEAVE,
    OWNER_FIXED,
    VALIDATION,
    errors,
    rate_limited,
)
from backend.api.routes.lists import ListId, one_list
from backend.models.common import StorableText
from backend.models.envelopes import MemberEnvelope, MembersEnvelope, SingleListEnvelope
from backend.models.references import MEMBERS, Action, Reference
from backend.models.sharing import MemberUpdate, Transfer
from backend.models.user import USER_ID_MAX_LENGTH
from backend.services.sharing.members import MemberService

router = APIRouter(
    prefix="/api/lists", tags=["members"], responses=errors(401, 422, 503), route_class=DoorRoute
)

MemberId = Annotated[
    str,
    Path(
        min_length=1,
        max_length=USER_ID_MAX_LENGTH,
        description="The member's user id (yours, to leave the list).",
        examples=["5f0c6e8e-3d5c-4d7e-9a53-0c1b2f6f1e9a"],
    ),
    StorableText,
    Reference(MEMBERS, Action.MEMBER_MANAGE),
]
# What a change of a member may refuse; a transfer to a member who cannot take the list.
_MANAGED = (FORBIDDEN, ONLY_OWNER_ADMINS, LIST_NOT_FOUND, MEMBER_NOT_FOUND, OWNER_FIXED)
_HEIR = (FORBIDDEN, LIST_NOT_FOUND, MEMBER_NOT_FOUND, HEIR_NAME_TAKEN, HEIR_TOO_MANY_LISTS)


@router.get(
    "/{list_id}/members",
    openapi_extra=acts(Action.LIST_READ),
    operation_id="listMembers",
    response_model=MembersEnvelope,
    summary="List a list's members",
    description="The owner first (role `owner`, joined when the list was created), then the "
    "members in the order they joined. Any member may read them (viewer+).",
    responses=errors(404, examples=(LIST_NOT_FOUND,)),
)
def list_members(
    members: Annotated[MemberService, uses(MemberService)], list_id: ListId
) -> MembersEnvelope:
    return MembersEnvelope(data=list(members.all(list_id)))


@router.patch(
    "/{list_id}/members/{user_id}",
    openapi_extra=acts(Action.MEMBER_MANAGE),
    operation_id="updateMember",
    response_model=MemberEnvelope,
    summary="Change a member's role",
    description="Admins change the roles of members below admin to a role below admin; "
    "the owner also makes and demotes admins. The owner's role is not changed this way "
    "(a transfer makes another member the owner).",
    responses=rate_limited(200, "The member, with its new role.")
    | errors(400, 403, 404, 409, 413, 429, examples=(*_MANAGED, VALIDATION)),
)
def update_member(
    members: Annotated[MemberService, uses(MemberService)],
    list_id: ListId,
    user_id: MemberId,
    data: MemberUpdate,
) -> MemberEnvelope:
    return MemberEnvelope(data=members.change_role(list_id, user_id, data.role))


@router.delete(
    "/{list_id}/members/{user_id}",
    openapi_extra=acts(Action.MEMBER_MANAGE),
    operation_id="removeMember",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Remove a member, or leave a list",
    description="Admins remove members below admin, the owner any member; any member "
    "removes itself (leaves). The owner cannot leave: it transfers the list first.",
    responses=rate_limited(204, "Removed (or left).")
    | errors(403, 404, 409, 429, examples=(*_MANAGED, OWNER_CANNOT_LEAVE)),
)
def remove_member(
    members: Annotated[MemberService, uses(MemberService)], list_id: ListId, user_id: MemberId
) -> None:
    members.remove(list_id, user_id)


@router.post(
    "/{list_id}/transfer",
    openapi_extra=acts(Action.LIST_TRANSFER),
    operation_id="transferList",
    response_model=SingleListEnvelope,
    summary="Make a member the list's owner",
    description="The owner only. The member becomes the owner (the list, its tasks, "
    "memberships, invitations and comments move to its space; the list goes last among its "
    "lists) and you become an admin. The new owner must have room for the list: fewer lists "
    "than the limit, none by its name.",
    responses=rate_limited(200, "The list as you now see it (your role: `admin`).", "ETag")
    | errors(400, 403, 404, 409, 413, 429, examples=(*_HEIR, VALIDATION)),
)
def transfer_list(
    members: Annotated[MemberService, uses(MemberService)],
    list_id: ListId,
    data: Transfer,
    response: Response,
) -> SingleListEnvelope:
    return one_list(members.transfer(list_id, data.user_id), response)
