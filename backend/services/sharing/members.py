"""A shared list's members (specs/api-contract.md, "Shared lists"), one statement a request; a write
that matched nothing reads why (`_STANDING`). A transfer makes the new owner's membership the old
owner's (`admin`) and sets the list's `user_id` (`rules.OWNER_CHANGES`); its rows follow by `ON
UPDATE CASCADE`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import (
    BigInteger,
    Text,
    and_,
    bindparam,
    case,
    delete,
    false,
    func,
    literal,
    select,
    union_all,
    update,
)
from sqlalchemy.dialects.postgresql import array

from backend.db.scope import OWNER, Scoped, owned, space_locked, spaces_locked
from backend.db.scope_check import changes_owner
from backend.errors import Conflict, LimitReached, NotFound
from backend.models import ListMember, Task, User
from backend.models.sharing import MemberPublic, Role
from backend.models.task_list import LISTS_PER_USER, POSITION_GAP, ListRow, TaskList
from backend.services.statements.access import (
    Action,
    denied,
    may,
    may_manage,
    needed_for,
    owns,
    require,
    role_in,
)
from backend.services.statements.rules import Rule, fires

_LISTS = TaskList.__table__  # type: ignore[attr-defined]
_L = _LISTS.c
_MEMBERS = ListMember.__table__  # type: ignore[attr-defined]
_USERS = User.__table__  # type: ignore[attr-defined]
_U = _USERS.c
_T = Task.__table__.c  # type: ignore[attr-defined]
_LIST_COLUMNS = tuple(_LISTS.columns)

# (Not named after a column: SQLAlchemy reserves those names in an UPDATE.)
_LIST_ID = bindparam("in_list", type_=BigInteger)
_TARGET = bindparam("target", type_=Text)

LIST_NOT_FOUND = "List not found"
MEMBER_NOT_FOUND = "Member not found"
_ADMIN = Role.admin.value
ONLY_OWNER_ADMINS = "Only the list's owner may make, demote or remove an admin"


_CALLER_ROLE = role_in(_LISTS).label("caller_role")
_target = _MEMBERS.alias("target")
# The target's role in the list (None: it is neither the owner nor a member).
_TARGET_ROLE = case(
    (_L.user_id == _TARGET, literal("owner")),
    else_=select(_target.c.role)
    .where(
        _target.c.list_id == _L.id, _target.c.member_id == _TARGET, may(_target, Action.LIST_READ)
    )
    .scalar_subquery(),
).label("target_role")
_VISIBLE = and_(_L.id == _LIST_ID, may(_LISTS, Action.LIST_READ))
# Why a write matched nothing: the caller's role and the target's (no row: no list it may see).
_STANDING = select(_CALLER_ROLE, _TARGET_ROLE).where(_VISIBLE)
# The caller's and the owner's change locks taken together (`spaces_locked`), else a deadlock.
_LOCK_LIST = spaces_locked(select(_L.user_id).where(_VISIBLE).scalar_subquery())

# The members: the owner (joined when the list was made), then the members in the order they joined.
_member = _MEMBERS.alias("member")
_owner_user = _USERS.alias("owner_user")
_member_user = _USERS.alias("member_user")
_OWNER_ROW = (
    select(
        _L.user_id.label("user_id"),
        literal("owner").label("role"),
        _owner_user.c.name,
        _owner_user.c.email,
        _L.created_at.label("joined_at"),
        literal(0).label("rank"),
    )
    .select_from(_LISTS.join(_owner_user, _owner_user.c.id == _L.user_id))
    .where(_VISIBLE)
)
_MEMBER_ROWS = (
    select(
        _member.c.member_id.label("user_id"),
        _member.c.role,
        _member_user.c.name,
        _member_user.c.email,
        _member.c.joined_at,
        literal(1).label("rank"),
    )
    .select_from(_member.join(_member_user, _member_user.c.id == _member.c.member_id))
    .where(_member.c.list_id == _LIST_ID, may(_member, Action.LIST_READ))
)
_both = union_all(_OWNER_ROW, _MEMBER_ROWS).subquery("members")
_ALL = select(
    _both.c.user_id, _both.c.role, _both.c.name, _both.c.email, _both.c.joined_at
).order_by(_both.c.rank, _both.c.joined_at, _both.c.user_id)


def _change(*, admin: bool) -> Any:
    """Give `target` the role `:role`: admin+ below admin, the owner alone for an admin. (The
    owner's statement names the table: `owned` would leave it unscoped aliased.)"""
    if admin:
        t: Any = _MEMBERS
        statement = owned(update(t), t.c.user_id)
    else:
        t = _member
        statement = update(t).where(may_manage(t, Action.MEMBER_MANAGE), space_locked(t))
    return (
        statement.where(t.c.list_id == _LIST_ID, t.c.member_id == _TARGET, _U.id == t.c.member_id)
        .values(role=bindparam("new_role", type_=Text))
        .returning(t.c.member_id.label("user_id"), t.c.role, _U.name, _U.email, t.c.joined_at)
    )


_CHANGE = _change(admin=False)
_CHANGE_ADMIN = _change(admin=True)
# Remove the member `target`: admin+ for members below admin, the owner for an admin.
_REMOVE = (
    delete(_member)
    .where(
        _member.c.list_id == _LIST_ID,
        _member.c.member_id == _TARGET,
        may_manage(_member, Action.MEMBER_MANAGE),
        space_locked(_member),
    )
    .returning(_member.c.member_id)
)
# The caller leaves the list (its own membership; the owner has none).
_LEAVE = (
    delete(_MEMBERS)
    .where(
        _MEMBERS.c.list_id == _LIST_ID,
        _MEMBERS.c.member_id == bindparam(OWNER),
        space_locked(_MEMBERS),
    )
    .returning(_MEMBERS.c.member_id)
)


def _transfer() -> Any:
    """The list becomes member `:target`'s (the caller its admin), where the new owner has room."""
    heir = _MEMBERS.alias("heir")
    the_heir = owned(select(heir.c.member_id), heir.c.user_id).where(
        heir.c.list_id == _LIST_ID, heir.c.member_id == _TARGET
    )
    theirs = _LISTS.alias("theirs")
    this = _LISTS.alias("this")
    name_key = owned(select(this.c.name_key), this.c.user_id).where(this.c.id == _LIST_ID)
    room = (
        select(
            func.count().label("lists"),
            func.coalesce(func.max(theirs.c.position), 0).label("last"),
            func.coalesce(
                func.bool_or(theirs.c.name_key == name_key.scalar_subquery()), false()
            ).label("taken"),
        )
        .where(theirs.c.user_id == the_heir.scalar_subquery())
        .cte("room")
    )
    fits = select(and_(room.c.lists < LISTS_PER_USER, room.c.taken.is_(False))).scalar_subquery()
    # Never both owner and member (`ck_list_members_not_owner`), nothing inserted elsewhere.
    m = _MEMBERS.c
    handed = (
        owned(update(_MEMBERS), m.user_id)
        .where(m.list_id == _LIST_ID, m.member_id == _TARGET, fits)
        .values(user_id=_TARGET, member_id=bindparam(OWNER), role=_ADMIN, joined_at=func.now())
        .returning(m.list_id)
        .cte("handed")
    )
    # The counts as they were (the cascade moves the tasks after this statement).
    tasks = owned(select(func.count()), _T.user_id).where(_T.list_id == _L.id)
    view = (
        *_LIST_COLUMNS,
        tasks.correlate(_LISTS).scalar_subquery().label("task_count"),
        tasks.where(_T.completed == false())
        .correlate(_LISTS)
        .scalar_subquery()
        .label("open_task_count"),
        literal(_ADMIN).label("role"),
    )
    last = select(room.c.last).scalar_subquery()
    return (
        owned(update(TaskList), _L.user_id)
        .where(_L.id == _LIST_ID, _L.id.in_(select(handed.c.list_id)))
        .values(
            user_id=_TARGET,
            position=last + POSITION_GAP,
            version=_L.version + 1,
            updated_at=func.now(),
        )
        .returning(*view)
    ), room


_TRANSFER, _ROOM = _transfer()
# It sets `user_id` (the list's, the membership's): named in rules.py `OWNER_CHANGES`.
_TRANSFER = changes_owner(_TRANSFER)
# Both spaces' change locks before the transfer's first row lock, so no write deadlocks with it.
_LOCK_SPACES = select(func.task_api_lock_spaces(array([bindparam(OWNER), _TARGET])))
# Why a transfer did not happen: the caller's role, the target's, and the new owner's room.
_TRANSFER_REFUSAL = select(
    _CALLER_ROLE,
    _TARGET_ROLE,
    select(_ROOM.c.lists).scalar_subquery().label("lists"),
    select(_ROOM.c.taken).scalar_subquery().label("taken"),
    _L.name,
).where(_VISIBLE)


@dataclass(frozen=True)
class Standing:
    """The caller's role in a list and the target's (None: not a member)."""

    caller: str | None
    target: str | None


class MemberService(Scoped):
    def all(self, list_id: int) -> Sequence[MemberPublic]:
        """The list's owner and members (viewer+): no row is a list the caller may not see."""
        rows = self._read(_ALL, in_list=list_id).all()
        if not rows:
            raise NotFound(LIST_NOT_FOUND)
        return [MemberPublic.model_validate(row) for row in rows]

    def change_role(self, list_id: int, user_id: str, role: Role) -> MemberPublic:
        """Give member `user_id` the role `role` (admin+; the owner for `admin`)."""
        granted = needed_for(role, Action.MEMBER_MANAGE)
        statement = _CHANGE_ADMIN if granted is Action.ADMIN_MANAGE else _CHANGE
        self._lock_spaces(_LOCK_LIST, in_list=list_id)
        rows = self._write(
            statement, in_list=list_id, target=user_id, new_role=role.value, last=True
        )
        if rows:
            return MemberPublic.model_validate(rows[0])
        standing = self._standing(list_id, user_id)
        raise self._refusal(standing, granted)

    @fires(Rule.UNASSIGN, Rule.FORGET_REMINDERS, Rule.REMINDERS)
    def remove(self, list_id: int, user_id: str) -> None:
        """Remove member `user_id` (admin+; an admin: the owner), or leave (not the owner)."""
        leaving = user_id == self.user_id
        statement = _LEAVE if leaving else _REMOVE
        self._lock_spaces(_LOCK_LIST, in_list=list_id)
        if self._write(statement, in_list=list_id, target=user_id, last=True):
            return
        standing = self._standing(list_id, user_id)
        if standing.caller is None:
            raise NotFound(LIST_NOT_FOUND)
        if leaving:
            if owns(standing.caller):
                raise Conflict(
                    "The owner cannot leave the list; transfer it to a member first "
                    "(POST /api/lists/{list_id}/transfer)"
                )
            raise Conflict("The membership changed while it was being removed; retry")
        raise self._refusal(standing, Action.MEMBER_MANAGE)

    @fires(Rule.EXCHANGE_REMINDERS, Rule.TRASH_STAYS)
    def transfer(self, list_id: int, user_id: str) -> ListRow:
        """Make the member `user_id` the list's owner and the caller (its owner) an admin."""
        self._lock_spaces(_LOCK_SPACES, target=user_id)
        rows = self._write(_TRANSFER, in_list=list_id, target=user_id, last=True)
        if rows:
            return cast(ListRow, rows[0])
        found = self._read(_TRANSFER_REFUSAL, in_list=list_id, target=user_id).first()
        if found is None:
            raise NotFound(LIST_NOT_FOUND)
        caller, target, lists, taken, name = tuple(found)
        require(caller, Action.LIST_TRANSFER, NotFound(LIST_NOT_FOUND))
        if owns(target):
            raise Conflict.at("body.user_id", "You own this list already")
        if target is None:
            raise NotFound.at("body.user_id", MEMBER_NOT_FOUND)
        if taken:
            raise Conflict.at(
                "body.user_id",
                f'The new owner has a list named "{name}" already (names ignore case); '
                "it must rename or delete it first",
            )
        if lists is not None and lists >= LISTS_PER_USER:
            raise LimitReached.at(
                "body.user_id",
                f"The new owner has {lists} lists, the most there can be ({LISTS_PER_USER})",
            )
        raise Conflict("The list changed while it was being transferred; retry")

    def _standing(self, list_id: int, target: str) -> Standing:
        found = self._read(_STANDING, in_list=list_id, target=target).first()
        if found is None:
            return Standing(None, None)
        return Standing(found.caller_role, found.target_role)

    @staticmethod
    def _refusal(standing: Standing, granted: Action) -> Exception:
        """Why a member's change or removal matched nothing, in the contract's order: no member 404,
        below `member.manage` 403, no such member 404, the owner 409, an admin 403."""
        missing = NotFound(LIST_NOT_FOUND)
        refused = denied(standing.caller, Action.MEMBER_MANAGE, missing)
        if refused is not None:
            return refused
        if standing.target is None:
            return NotFound(MEMBER_NOT_FOUND)
        if owns(standing.target):
            return Conflict(
                "The owner's role cannot be changed, nor the owner removed; the owner "
                "transfers the list (POST /api/lists/{list_id}/transfer)"
            )
        for action in (granted, needed_for(standing.target, Action.MEMBER_MANAGE)):
            refused = denied(standing.caller, action, missing, forbidden=ONLY_OWNER_ADMINS)
            if refused is not None:
                return refused
        return Conflict("The membership changed while it was being written; retry")
