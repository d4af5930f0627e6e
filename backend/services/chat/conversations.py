"""Conversations with the task agent, scoped to one user. A turn comes twice, with the model's
answer in between (no transaction spans it; specs/chat.md): `begin_turn`, then `answer`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    DateTime,
    Text,
    and_,
    bindparam,
    delete,
    func,
    insert,
    literal,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import insert as pg_insert

from backend.db.scope import OWNER, Scoped, owned
from backend.errors import IdempotencyKeyInUse, IdempotencyKeyMismatch, NotFound
from backend.models.conversation import (
    ANSWER_MAX_CHARS,
    Conversation,
    Message,
    clean_text,
    stored_call,
)
from backend.services.statements.rules import Rule, fires

CONVERSATION_NOT_FOUND = "Conversation not found"

_C = Conversation.__table__.c  # type: ignore[attr-defined]
_M = Message.__table__.c  # type: ignore[attr-defined]
_MESSAGE_COLUMNS = tuple(Message.__table__.columns)  # type: ignore[attr-defined]
_CID = bindparam("conversation_id", type_=BigInteger)


def _conversations(statement: Any) -> Any:
    return owned(statement, _C.user_id)


def _messages(statement: Any) -> Any:
    return owned(statement, _M.user_id)


# Continue a conversation (the caller's): its activity is now; a second turn waits here.
_TOUCH = _conversations(
    update(Conversation).where(_C.id == _CID).values(updated_at=func.now()).returning(_C.id)
)
_START = insert(Conversation).values(user_id=bindparam(OWNER)).returning(_C.id)
_ADD_MESSAGE = (
    insert(Message)
    .values(
        user_id=bindparam(OWNER),
        conversation_id=_CID,
        role="user",
        content=bindparam("content", type_=Text),
        idempotency_key=bindparam("key", type_=Text),
    )
    .returning(_M.id, _M.created_at)
)
# A turn's answer from the moment its message is stored: `UNFINISHED` with the calls that committed,
# until replaced; so a dead turn names what committed and a retry resumes from it. `created_at`: the
# attempt's token; `heartbeat_at`: its lease's start.
UNFINISHED = "CHAT_TURN_UNFINISHED"
_MID = bindparam("message_id", type_=BigInteger)
_PROVISIONAL = insert(Message).values(
    user_id=bindparam(OWNER),
    conversation_id=_CID,
    role="assistant",
    content="",
    tool_calls=func.jsonb_build_array(),
    reply_to=_MID,
    error_code=UNFINISHED,
    # The user message's own time, which the attempt read as its token (`TurnStart.held`).
    created_at=select(_M.created_at)
    .where(_M.user_id == bindparam(OWNER), _M.id == _MID)
    .scalar_subquery(),
    # Held by an attempt that beats (the same transaction's time as the message's).
    heartbeat_at=func.now(),
)
# The same for a turn stored before turns kept a record from the start: once.
_PROVISIONAL_ONCE = (
    pg_insert(Message)
    .from_select(
        [
            "user_id",
            "conversation_id",
            "role",
            "content",
            "tool_calls",
            "reply_to",
            "error_code",
            "heartbeat_at",
        ],
        select(
            bindparam(OWNER),
            _CID,
            literal("assistant"),
            literal(""),
            func.jsonb_build_array(),
            _MID,
            literal(UNFINISHED),
            func.now(),
        ),
    )
    .on_conflict_do_nothing()
    .returning(_M.created_at)
)
_RECORD_CALL = _messages(
    update(Message)
    .where(_M.reply_to == _MID)
    .values(
        tool_calls=func.coalesce(_M.tool_calls, func.jsonb_build_array()).op("||")(
            func.jsonb_build_array(bindparam("call", type_=JSONB))
        )
    )
)
# Another attempt takes the turn only from an ended or expired one, and only once.
_CLAIM = _messages(
    update(Message)
    .where(
        _M.reply_to == _MID,
        _M.created_at == bindparam("seen"),
        or_(
            _M.error_code != UNFINISHED,
            _M.heartbeat_at < func.now() - bindparam("lease"),
            and_(
                _M.heartbeat_at.is_(None), _M.created_at < func.now() - bindparam("unbeaten_lease")
            ),
        ),
    )
    .values(error_code=UNFINISHED, created_at=func.now(), heartbeat_at=func.now())
    .returning(_M.created_at, _M.tool_calls)
)
# The running attempt renews its claim: only over its own record (its token, unfinished).
_BEAT = _messages(
    update(Message)
    .where(
        _M.reply_to == _MID,
        _M.error_code == UNFINISHED,
        _M.created_at == bindparam("held", type_=DateTime(timezone=True)),
    )
    .values(heartbeat_at=func.now())
    .returning(_M.id)
)
_BY_KEY = _messages(select(*_MESSAGE_COLUMNS).where(_M.idempotency_key == bindparam("key")))
_REPLY = _messages(select(*_MESSAGE_COLUMNS).where(_M.reply_to == bindparam("reply_to")))
_HISTORY = _messages(
    select(*_MESSAGE_COLUMNS)
    .where(_M.conversation_id == _CID, _M.id < bindparam("before", type_=BigInteger))
    .order_by(_M.id.desc())
    .limit(bindparam("limit"))
)
_EXISTS = _conversations(select(_C.id).where(_C.id == _CID))
_DELETE = _conversations(delete(Conversation).where(_C.id == _CID).returning(_C.id))


def _held_by(held: datetime | None) -> tuple[Any, ...]:
    """The stored answer's condition: still the record of the attempt that took the turn."""
    if held is None:
        return ()
    return (_M.error_code == UNFINISHED, _M.created_at == literal(held, DateTime(timezone=True)))


@dataclass(frozen=True)
class TurnStart:
    """What a chat turn starts from."""

    conversation_id: int
    message_id: int  # the user's message, this turn's
    # When this attempt took the turn (its record's `created_at`): its token.
    held: datetime
    # The newest messages before it, oldest first (at most the history budget's count).
    history: Sequence[Any]
    # A retry of a turn that already answered: that answer (replayed, nothing is run).
    answered: Any | None = None
    # A retry of a turn that failed: the tool calls that committed then (never run again).
    earlier_calls: list[dict[str, Any]] = field(default_factory=list)
    # `time.monotonic()` just before the claim was stored: the lease's start until a heartbeat.
    since: float = 0.0


@dataclass(frozen=True)
class Reply:
    """An assistant's message: the answer to one user message, or the error that ended it."""

    conversation_id: int
    reply_to: int
    content: str
    tool_calls: list[dict[str, Any]]
    input_tokens: int
    output_tokens: int
    error_code: str | None = None
    # The attempt's token (`TurnStart.held`): stored only while that attempt holds the turn.
    held: datetime | None = None


class ConversationService(Scoped):
    @fires(Rule.ANSWER_ID)
    def begin_turn(
        self,
        conversation_id: int | None,
        content: str,
        key: str | None,
        *,
        history_messages: int,
        running_for: timedelta,
        unbeaten_for: timedelta | None = None,
    ) -> TurnStart:
        """Store the user's message (a new conversation without `conversation_id`) and read the
        history before it; a used Idempotency-Key replays or resumes the first attempt."""
        if key is not None:
            earlier = self._read(_BY_KEY, key=key).first()
            if earlier is not None:
                leases = (running_for, unbeaten_for or running_for)
                return self._retry(earlier, conversation_id, content, history_messages, leases)
        if conversation_id is None:
            conversation_id = int(self._write(_START).scalar_one())
            history: Sequence[Any] = ()
        else:
            if self._write(_TOUCH, conversation_id=conversation_id).first() is None:
                raise NotFound(CONVERSATION_NOT_FOUND)
            history = self._history(conversation_id, 2**63 - 1, history_messages)
        added = self._write(
            _ADD_MESSAGE, conversation_id=conversation_id, content=content, key=key
        ).one()
        message_id, held = added.id, added.created_at
        # Answered from the start by the record the turn replaces, committing with the message.
        self._at_commit(_PROVISIONAL, conversation_id=conversation_id, message_id=message_id)
        return TurnStart(int(conversation_id), int(message_id), held, history)

    def _retry(
        self,
        earlier: Any,
        conversation_id: int | None,
        content: str,
        history_messages: int,
        leases: tuple[timedelta, timedelta],
    ) -> TurnStart:
        running_for, unbeaten_for = leases
        if earlier.content != content or conversation_id not in (None, earlier.conversation_id):
            raise IdempotencyKeyMismatch()
        reply = self._read(_REPLY, reply_to=earlier.id).first()
        conversation, message = int(earlier.conversation_id), int(earlier.id)
        history = self._history(earlier.conversation_id, earlier.id, history_messages)
        if reply is None:
            # Stored before turns kept a record: retried once, after the longest a turn may run.
            age = self._read(select(func.now())).scalar_one() - earlier.created_at
            if age < unbeaten_for:
                raise IdempotencyKeyInUse()
            held = self._write(
                _PROVISIONAL_ONCE, conversation_id=conversation, message_id=message
            ).scalar()
            if held is None:
                raise IdempotencyKeyInUse()
            return TurnStart(conversation, message, held, history)
        if reply.error_code is None:
            return TurnStart(conversation, message, reply.created_at, (), answered=reply)
        # Failed, or unfinished: while an attempt holds the turn (its lease), it is in use.
        claimed = self._write(
            _CLAIM,
            message_id=message,
            seen=reply.created_at,
            lease=running_for,
            unbeaten_lease=unbeaten_for,
        ).first()
        if claimed is None:
            raise IdempotencyKeyInUse()
        return TurnStart(
            conversation,
            message,
            claimed.created_at,
            history,
            earlier_calls=[c for c in claimed.tool_calls or [] if c["outcome"] == "ok"],
        )

    def beat(self, message_id: int, held: datetime) -> bool:
        """Renew attempt `held`'s claim on the turn: whether it still holds it."""
        return bool(self._write(_BEAT, message_id=message_id, held=held, last=True))

    def record_call(self, message_id: int, call: dict[str, Any]) -> None:
        """Keep a writing tool call with the answer, riding with its write's COMMIT."""
        self._at_commit(_RECORD_CALL, message_id=message_id, call=stored_call(call))

    def _history(self, conversation_id: int, before: int, limit: int) -> Sequence[Any]:
        if limit <= 0:
            return ()
        rows = self._read(
            _HISTORY, conversation_id=conversation_id, before=before, limit=limit
        ).all()
        return rows[::-1]

    @fires(Rule.ANSWER_ID)
    def answer(self, reply: Reply) -> Any:
        """Store the assistant's message and mark the conversation active, only over the record of
        the attempt holding the turn: a superseded attempt erases nothing."""
        # Bounded here, where it is stored: every stored message reads back (issue 38).
        values = {
            "content": clean_text(reply.content, ANSWER_MAX_CHARS),
            "tool_calls": [stored_call(call) for call in reply.tool_calls],
            "error_code": reply.error_code,
            "input_tokens": reply.input_tokens,
            "output_tokens": reply.output_tokens,
        }
        statement = pg_insert(Message).values(
            user_id=bindparam(OWNER),
            conversation_id=_CID,
            role="assistant",
            reply_to=reply.reply_to,
            **values,
        )
        upsert = statement.on_conflict_do_update(
            index_elements=[_M.user_id, _M.reply_to],
            set_={
                **{name: statement.excluded[name] for name in values},
                "created_at": func.now(),
                "heartbeat_at": None,  # finished: no attempt holds it
            },
            where=and_(_M.user_id == bindparam(OWNER), *_held_by(reply.held)),
        ).returning(*_MESSAGE_COLUMNS)
        # The conversation's activity in the same statement: one round trip, one transaction.
        touch = _TOUCH.cte("touched")
        row = self._write(upsert.add_cte(touch), conversation_id=reply.conversation_id).first()
        if row is None:
            raise IdempotencyKeyInUse()
        return row

    def page(self, limit: int, after: tuple[datetime, int] | None) -> tuple[list[Any], bool]:
        """A page of conversations, newest activity first; whether more follow."""
        statement = _conversations(
            select(Conversation).order_by(_C.updated_at.desc(), _C.id.desc()).limit(limit + 1)
        )
        if after is not None:
            statement = statement.where(tuple_(_C.updated_at, _C.id) < tuple_(*after))
        rows = list(self._read(statement).all())
        return rows[:limit], len(rows) > limit

    def messages(
        self, conversation_id: int, limit: int, after: int | None
    ) -> tuple[list[Any], bool]:
        """A page of a conversation's messages, oldest first (empty: does it exist?)."""
        statement = _messages(
            select(*_MESSAGE_COLUMNS)
            .where(_M.conversation_id == _CID)
            .order_by(_M.id)
            .limit(limit + 1)
        )
        if after is not None:
            statement = statement.where(_M.id > after)
        rows = list(self._read(statement, conversation_id=conversation_id).all())
        if not rows and self._read(_EXISTS, conversation_id=conversation_id).first() is None:
            raise NotFound(CONVERSATION_NOT_FOUND)
        return rows[:limit], len(rows) > limit

    def delete(self, conversation_id: int) -> None:
        """Delete a conversation and its messages."""
        if not self._write(_DELETE, conversation_id=conversation_id, last=True):
            raise NotFound(CONVERSATION_NOT_FOUND)
