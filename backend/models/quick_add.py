"""Quick add (specs/api-contract.md, "Quick add"): a line a person types, read into a task by
the server (`backend/quickadd/`), previewed (`POST /api/tasks/parse`) or created (`POST
/api/tasks/quick`) from the same body."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal, Self

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    PrivateAttr,
    StringConstraints,
    model_validator,
)

from backend.models.common import JsonInt, UtcDatetime
from backend.models.references import LISTS, Action, Reference
from backend.models.task_list import ListId
from backend.models.text import SingleLineText
from backend.models.types import Priority, TimeZone

QUICK_ADD_MAX_LENGTH = 1000
IGNORED_MAX_COUNT = 50

QuickAddText = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=QUICK_ADD_MAX_LENGTH),
    SingleLineText,
]
TokenKind = Literal["due", "recurrence", "list", "tag", "priority", "assignee"]


class QuickAddRequest(BaseModel):
    """What the person typed, and how to read it."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"text": "Buy milk tomorrow 5pm @errands !high", "time_zone": "UTC"}]
        },
    )

    text: QuickAddText = Field(
        description=(
            f"The line as typed, 1-{QUICK_ADD_MAX_LENGTH} characters, one line (the text rule). "
            "Tokens: `#list`, `@tag`, `!high`/`!1`, `+member`, dates, times and `every ...` "
            "(docs: Quick add); a double-quoted span is literal text."
        ),
        examples=["Buy milk tomorrow 5pm @errands !high"],
    )
    time_zone: TimeZone | None = Field(
        default=None,
        description=(
            "The zone dates and times are read in, and the task's `time_zone`. Omitted: the "
            "`time_zone` of your notification settings, else UTC."
        ),
        examples=["Europe/Berlin"],
    )
    now: AwareDatetime | None = Field(
        default=None,
        description=(
            "When the text was typed (ISO 8601 with an offset): what `today` and `tomorrow` "
            "are read from. Omitted: the server's clock. A client that queued the text "
            "offline sends when it was typed."
        ),
        examples=["2026-11-28T09:30:00+01:00"],
    )
    list_id: Annotated[ListId, Reference(LISTS, Action.TASK_WRITE)] | None = Field(
        default=None,
        description="The list the task goes in when no `#list` is typed; omitted or null: no list "
        "(as `POST /api/tasks`).",
        examples=[None],
    )
    ignore: list[Annotated[JsonInt, Field(ge=0, le=QUICK_ADD_MAX_LENGTH)]] = Field(
        default_factory=list,
        max_length=IGNORED_MAX_COUNT,
        description="The `start` of each token the person rejected: those spans stay in the title, "
        "unread. A start that matches no token is ignored.",
        examples=[[]],
    )
    _sent: str = PrivateAttr(default="")

    @model_validator(mode="wrap")
    @classmethod
    def _keep_sent(cls, data: Any, handler: ModelWrapValidatorHandler[Self]) -> Self:
        """Keep `text` as sent: tokens' offsets are of it, not of its trimmed NFC form."""
        model = handler(data)
        sent = data.get("text") if isinstance(data, dict) else getattr(data, "sent", None)
        model._sent = sent if isinstance(sent, str) else model.text
        return model

    @property
    def sent(self) -> str:
        """`text` as the client sent it (`text` is it trimmed and in NFC: the title's form)."""
        return self._sent or self.text


class QuickAddToken(BaseModel):
    """One recognised token: `text[start:end] == text`, offsets in Unicode code points of the
    request's `text` as sent."""

    kind: TokenKind = Field(examples=["due"])
    start: int = Field(examples=[9])
    end: int = Field(examples=[22])
    text: str = Field(examples=["tomorrow 5pm"])
    value: UtcDatetime | date | int | str = Field(
        description="What it resolved to: the due day (`YYYY-MM-DD`) or instant, the RRULE, the "
        "list's id, the tag, the priority, the member's user id.",
        examples=["2026-11-29T17:00:00Z"],
    )


class QuickAddTask(BaseModel):
    """The task the text makes: what `POST /api/tasks/quick` creates."""

    title: str = Field(examples=["Buy milk"])
    due_date: UtcDatetime | date | None = Field(examples=["2026-11-29T17:00:00Z"])
    time_zone: str = Field(examples=["UTC"])
    priority: Priority = Field(examples=["high"])
    tags: list[str] = Field(examples=[["errands"]])
    list_id: int | None = Field(examples=[None])
    recurrence: str | None = Field(examples=[None])
    assignees: list[str] = Field(examples=[[]])


class QuickAddPreview(BaseModel):
    """The task and the tokens it was read from (chips a client draws)."""

    task: QuickAddTask
    tokens: list[QuickAddToken]


class QuickAddEnvelope(BaseModel):
    data: QuickAddPreview
