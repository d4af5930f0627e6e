"""ChatKit's view of a user's conversations (specs/chat.md, "ChatKit"): a thread is a conversation,
its items its messages and `chatkit_items`, named by `public_id`. The turn is
`ConversationService`'s; this only reads messages and writes titles and items."""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    Text,
    bindparam,
    delete,
    func,
    literal,
    null,
    select,
    tuple_,
    union_all,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import insert as pg_insert

from backend.db.scope import OWNER, Scoped, owned
from backend.errors import NotFound
from backend.models.chatkit_item import ChatKitItem
from backend.models.conversation import Conversation, Message
from backend.services.chat.conversations import CONVERSATION_NOT_FOUND

ITEM_NOT_FOUND = "Item not found"

_C = Conversation.__table__.c  # type: ignore[attr-defined]
_M = Message.__table__.c  # type: ignore[attr-defined]
_I = ChatKitItem.__table__.c  # type: ignore[attr-defined]
_THREAD = bindparam("thread", type_=Text)
_ITEM = bindparam("item", type_=Text)
_THREAD_COLUMNS = (_C.id, _C.public_id, _C.title, _C.created_at, _C.updated_at)


def _conversation_id() -> Any:
    """The caller's conversation named by `:thread` (a scalar subquery: one statement)."""
    return owned(select(_C.id).where(_C.public_id == _THREAD), _C.user_id).scalar_subquery()


_BY_ID = owned(select(*_THREAD_COLUMNS).where(_C.public_id == _THREAD), _C.user_id)
_RENAME = owned(
    update(Conversation)
    .where(_C.public_id == _THREAD)
    .values(title=bindparam("title", type_=Text))
    .returning(*_THREAD_COLUMNS),
    _C.user_id,
)
_DELETE = owned(delete(Conversation).where(_C.public_id == _THREAD).returning(_C.id), _C.user_id)


def _rows(order: str) -> Any:
    """A thread's messages and items as one sequence (`position`: the shared sequence)."""
    messages = owned(
        select(
            _M.id.label("position"),
            _M.public_id,
            _M.role.label("kind"),
            _M.content,
            _M.error_code,
            _M.idempotency_key,
            null().cast(JSONB).label("item"),
            _M.created_at,
        ).where(_M.conversation_id == _conversation_id()),
        _M.user_id,
    )
    items = owned(
        select(
            _I.id.label("position"),
            _I.public_id,
            literal("item", Text).label("kind"),
            null().cast(Text).label("content"),
            null().cast(Text).label("error_code"),
            null().cast(Text).label("idempotency_key"),
            _I.item,
            _I.created_at,
        ).where(_I.conversation_id == _conversation_id()),
        _I.user_id,
    )
    return union_all(messages, items).subquery("thread_items")


def _position() -> Any:
    """Where the item `:item` of the caller's thread `:thread` stands: (stored at, position)."""
    conversation = _conversation_id()
    of_message = owned(
        select(_M.created_at, _M.id).where(
            _M.public_id == _ITEM, _M.conversation_id == conversation
        ),
        _M.user_id,
    )
    of_item = owned(
        select(_I.created_at, _I.id).where(
            _I.public_id == _ITEM, _I.conversation_id == conversation
        ),
        _I.user_id,
    )
    return union_all(of_message, of_item).scalar_subquery()


def _page(order: str, after: bool) -> Any:
    """A page of a thread's items in the order they were stored: by when (an answer when it
    was stored, not when its turn began and recorded it as unfinished), ties by position."""
    rows = _rows(order)
    key = tuple_(rows.c.created_at, rows.c.position)
    statement = select(rows).limit(bindparam("limit", type_=BigInteger))
    if order == "desc":
        statement = statement.order_by(rows.c.created_at.desc(), rows.c.position.desc())
    else:
        statement = statement.order_by(rows.c.created_at, rows.c.position)
    if after:
        statement = statement.where(key < _position() if order == "desc" else key > _position())
    return statement


# Built once per shape: (order, after or not).
_PAGES = {
    (order, after): _page(order, after) for order in ("asc", "desc") for after in (False, True)
}
_ONE = (lambda rows: select(rows).where(rows.c.public_id == _ITEM))(_rows("asc"))
_UPSERT_ITEM = (
    lambda statement: statement.on_conflict_do_update(
        index_elements=[_I.public_id],
        set_={"item": statement.excluded.item},
        where=_I.user_id == bindparam(OWNER),
    )
)(
    pg_insert(ChatKitItem).from_select(
        ["user_id", "conversation_id", "public_id", "item"],
        owned(
            select(
                bindparam(OWNER, type_=Text), _C.id, _ITEM, bindparam("body", type_=JSONB)
            ).where(_C.public_id == _THREAD),
            _C.user_id,
        ),
    )
)
_DELETE_ITEM = owned(
    delete(ChatKitItem).where(_I.public_id == _ITEM, _I.conversation_id == _conversation_id()),
    _I.user_id,
)


_STARTED = owned(
    update(Conversation)
    .where(_C.id == bindparam("conversation", type_=BigInteger))
    .values(title=func.coalesce(_C.title, bindparam("title", type_=Text)))
    .returning(
        *_THREAD_COLUMNS,
        owned(
            select(_M.public_id).where(_M.id == bindparam("message", type_=BigInteger)), _M.user_id
        )
        .scalar_subquery()
        .label("message_public_id"),
    ),
    _C.user_id,
)


class ChatKitService(Scoped):
    def started(self, conversation_id: int, message_id: int, title: str | None) -> Any:
        """A turn's thread (titled if untitled) and its message's ChatKit id, in one statement."""
        row = self._write(
            _STARTED, conversation=conversation_id, message=message_id, title=title
        ).first()
        if row is None:
            raise NotFound(CONVERSATION_NOT_FOUND)
        return row

    def thread(self, thread_id: str) -> Any:
        """The caller's thread `thread_id` (its conversation), or the 404 of a missing one."""
        row = self._read(_BY_ID, thread=thread_id).first()
        if row is None:
            raise NotFound(CONVERSATION_NOT_FOUND)
        return row

    def threads(self, limit: int, after: str | None, order: str) -> tuple[list[Any], bool]:
        """A page of the caller's threads by activity after `after`; whether more follow."""
        key = tuple_(_C.updated_at, _C.id)
        statement = owned(select(*_THREAD_COLUMNS), _C.user_id)
        statement = statement.order_by(
            *((_C.updated_at.desc(), _C.id.desc()) if order == "desc" else (_C.updated_at, _C.id))
        ).limit(limit + 1)
        if after is not None:
            # After a thread not the caller's (or none): an empty page, as for a missing one.
            anchor = owned(
                select(_C.updated_at, _C.id).where(_C.public_id == _THREAD), _C.user_id
            ).scalar_subquery()
            statement = statement.where(key < anchor if order == "desc" else key > anchor)
        rows = list(self._read(statement, thread=after).all())
        return rows[:limit], len(rows) > limit

    def rename(self, thread_id: str, title: str | None) -> Any:
        rows = self._write(_RENAME, thread=thread_id, title=title, last=True)
        if not rows:
            raise NotFound(CONVERSATION_NOT_FOUND)
        return rows[0]

    def delete(self, thread_id: str) -> None:
        """Delete a thread: its conversation, messages and items."""
        if not self._write(_DELETE, thread=thread_id, last=True):
            raise NotFound(CONVERSATION_NOT_FOUND)

    def items(
        self, thread_id: str, limit: int, after: str | None, order: str
    ) -> tuple[list[Any], bool]:
        """A page of a thread's items in `order`, after the item `after`; whether more follow."""
        statement = _PAGES[(order, after is not None)]
        rows = list(self._read(statement, thread=thread_id, item=after, limit=limit + 1).all())
        return rows[:limit], len(rows) > limit

    def item(self, thread_id: str, item_id: str) -> Any:
        """One item of the caller's thread, or `Item not found`."""
        row = self._read(_ONE, thread=thread_id, item=item_id).first()
        if row is None:
            raise NotFound(ITEM_NOT_FOUND)
        return row

    def save_item(self, thread_id: str, item_id: str, body: dict[str, Any]) -> None:
        """Store (or replace) an item that is not a message, in the caller's thread."""
        self._write(_UPSERT_ITEM, thread=thread_id, item=item_id, body=body)

    def delete_item(self, thread_id: str, item_id: str) -> None:
        """Delete an item that is not a message (messages stay: one history for both)."""
        self._write(_DELETE_ITEM, thread=thread_id, item=item_id)
