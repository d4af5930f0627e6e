"""What the server tells the app about a message besides its result: the notices our SQL
functions raise (migrations 0014-0016, 0020), read by an exact grammar.

A notice is one line `<SEVERITY>:  task_api_<kind> <body>`; each kind's body has a grammar
of its own (two integers, a code and a detail word, or one JSON value), matched whole. The
caller's text can appear only inside a JSON string (escaped: no line break, no unquoted
text), never at a notice's start, so no column value can pass for a count or a refusal.
Any other notice is not ours and is ignored; one of ours that breaks its grammar, or comes
twice in one message, is a programming error.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

_NOTICE = re.compile(r"[^\s:]+:  task_api_(?P<kind>[a-z_]+) (?P<body>[^\n]*)\n")
_COUNT = re.compile(r"(?P<hits>\d{1,10}) (?P<reset>\d{1,10})")
_REFUSAL = re.compile(
    r"(?P<code>TA208|TA401|TA422|TA429|TS400)"
    r"(?: (?P<index>\d{1,4}))?(?: (?P<reason>[a-z_]{1,40}))?"
)


class NoticeError(RuntimeError):
    """A notice of ours that breaks its grammar: the SQL and the app disagree."""


@dataclass(frozen=True)
class ServerRefusal:
    """The server refused the request (`task_api_refuse`): TA429 over the write limit, TA401
    an account gone or a token revoked (`reason`), TA208 an Idempotency-Key's replay, TA422
    its mismatch, TS400 a bulk step (`index`) that wrote nothing (`reason`: why, `missing`)."""

    code: str
    index: int | None = None
    reason: str | None = None


@dataclass(frozen=True)
class Notices:
    """One message's notices of ours, each at most once."""

    count: tuple[int, int] | None = None  # a write's (hits, seconds to the window's reset)
    refusal: ServerRefusal | None = None
    rows: list[dict[str, Any]] | None = None  # `task_api_return`'s rows
    replay: dict[str, Any] | None = None  # an Idempotency-Key's recorded response


NONE = Notices()


def read_notices(notices: list[str]) -> Notices:
    """The notices of ours among `notices` (psycopg2's strings, one per notice)."""
    found: dict[str, Any] = {}
    for notice in notices:
        match = _NOTICE.fullmatch(notice)
        if match is None:
            continue
        kind, body = match["kind"], match["body"]
        if kind in found:
            raise NoticeError(f"task_api_{kind} twice in one message")
        found[kind] = _parse(kind, body)
    if not found:
        return NONE
    return Notices(
        count=found.get("rate_limit"),
        refusal=found.get("refused"),
        rows=found.get("rows"),
        replay=found.get("replay"),
    )


def _parse(kind: str, body: str) -> Any:
    if kind == "rate_limit":
        count = _COUNT.fullmatch(body)
        if count is not None:
            return int(count["hits"]), int(count["reset"])
    elif kind == "refused":
        refusal = _REFUSAL.fullmatch(body)
        if refusal is not None:
            index = refusal["index"]
            return ServerRefusal(
                refusal["code"], None if index is None else int(index), refusal["reason"]
            )
    elif kind in ("rows", "replay"):
        try:
            value = json.loads(body)
        except ValueError:
            value = None
        if isinstance(value, list if kind == "rows" else dict):
            return value
    raise NoticeError(f"task_api_{kind} does not match its grammar")
