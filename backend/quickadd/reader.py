"""Reading a line into a task: one left-to-right pass over its words, then the pieces found
resolved together (the final list for `+name`, the date and time into one due). The first
recurrence, date and time count; a later one is title text (TickTick's rule: "Prepare Monday
report for Friday" is due Monday).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time
from zoneinfo import ZoneInfo

from backend.quickadd import repeat, when
from backend.quickadd.days import local, passed, plus_days
from backend.quickadd.model import Directory, Names, NowOutOfRange, QuickAddError, Reading, Token
from backend.quickadd.words import TRAILING, Word, chains, split

PRIORITIES = {f"!{name}": name for name in ("high", "medium", "low", "none")}
PRIORITIES |= {"!1": "high", "!2": "medium", "!3": "low"}
_PHRASE_WORDS = 12  # the longest phrase is 9 words: "due on the 5th of may at 5:30 pm"
_LIST_WORDS = 32  # a list of weekdays: every mon, tue and wed ...
_STARTS = when.STARTS | {"every", *repeat.WORDS}
Value = str | int | date | datetime


@dataclass
class _Pieces:
    """What the pass found, before resolution: (kind, start, end, value) in text order."""

    found: list[tuple[str, int, int, object]] = field(default_factory=list)
    day: date | None = None
    at: time | None = None
    rule: str | None = None


def names_in(text: str, ignore: Collection[int] = ()) -> Names:
    """The list names (`#name`, `#"two words"`) and handles (`+name`) `text` types, casefolded,
    for the caller to look up before `read` (quoted text and ignored offsets excepted)."""
    lists: set[str] = set()
    people: set[str] = set()
    skipped = frozenset(ignore)
    for word in split(text).words:
        if word.literal or word.start in skipped:
            continue
        sign, name = _named(text, word)
        if sign == "#":
            lists.add(name.casefold())
        elif sign == "+" and not word.quoted:
            people.add(name.casefold())
    return Names(frozenset(lists), frozenset(people))


def read(
    text: str,
    *,
    now: datetime,
    zone: ZoneInfo,
    directory: Directory,
    default_list: int | None = None,
    ignore: Collection[int] = (),
) -> Reading:
    """`text` read as a task; `QuickAddError` when nothing is left for a title, `NowOutOfRange`
    when `now` in `zone` is outside years 1-9999."""
    if now.utcoffset() is None:
        raise ValueError("now must be an aware datetime")
    try:
        today = now.astimezone(zone).date()
    except OverflowError:
        raise NowOutOfRange("now, read in the time zone, falls outside years 1-9999") from None
    cut = split(text)
    pieces = _scan(text, cut.words, today, directory, frozenset(ignore))
    list_id = default_list
    for kind, _, _, named in pieces.found:
        if kind == "list" and isinstance(named, int):
            list_id = named
    due = _due(pieces, today, now, zone)
    members = directory.members.get(list_id, {})
    tokens: list[Token] = []
    for kind, start, end, raw in pieces.found:
        value: Value | None
        if kind == "assignee":
            value = members.get(str(raw))
        elif kind == "due":
            value = due
        elif kind == "recurrence" and due is None:
            value = None  # a rule with no occurrence in the years a task may have
        else:
            value = raw if isinstance(raw, str | int | date) else None
        if value is not None:
            tokens.append(Token(kind, start, end, text[start:end], value))
    title = _title(text, tokens, cut.dropped)
    if not title:
        raise QuickAddError("the text names only a date, list, tag or the like: no title is left")
    by_kind: dict[str, list[Value]] = {}
    for token in tokens:
        by_kind.setdefault(token.kind, []).append(token.value)
    priorities = by_kind.get("priority", [])
    return Reading(
        title=title,
        due=due,
        recurrence=pieces.rule if "recurrence" in by_kind else None,
        priority=str(priorities[-1]) if priorities else None,
        tags=_distinct(str(tag) for tag in by_kind.get("tag", [])),
        list_id=list_id,
        assignees=tuple(dict.fromkeys(str(user) for user in by_kind.get("assignee", []))),
        tokens=tuple(tokens),
    )


def _scan(
    text: str, words: tuple[Word, ...], today: date, directory: Directory, ignore: frozenset[int]
) -> _Pieces:
    pieces = _Pieces()
    plain = chains(words)
    listed = chains(words, comma=True)
    index = 0
    while index < len(words):
        word = words[index]
        if word.literal:
            index += 1
            continue
        taken, kind, value = 0, "", None
        if word.key in _STARTS or word.key[:1].isdigit():
            keys = tuple(w.key for w in words[index : min(plain[index], index + _PHRASE_WORDS)])
            taken, kind, value = _phrase(words, index, keys, listed[index], today, pieces)
        if not taken:
            taken, kind, value = _symbol(text, word, directory)
        if not taken:
            index += 1
            continue
        if kind and word.start not in ignore:
            end = words[index + taken - 1].end
            pieces.found.append((kind, word.start, end, value))
            if kind == "recurrence":
                pieces.rule = str(value)
            elif kind == "due" and isinstance(value, tuple):
                day, at = value
                pieces.day = day if day is not None else pieces.day
                pieces.at = at if at is not None else pieces.at
        index += taken
    return pieces


def _phrase(
    words: tuple[Word, ...], index: int, keys: when.Keys, reach: int, today: date, pieces: _Pieces
) -> tuple[int, str, object]:
    """A recurrence, date or time phrase at `index`: (words taken, kind or "" for title text,
    value); (0, "", None) when none starts here."""
    if keys[0] == "every" or keys[0] in repeat.WORDS:
        ends = min(reach, index + _LIST_WORDS)
        listed = tuple(w.key + ("," if w.comma else "") for w in words[index:ends])
        rule = repeat.match_rule(keys, listed)
        if rule is not None:
            return rule[0], ("" if pieces.rule else "recurrence"), rule[1]
    dated = when.match_date(keys, today)
    if dated is not None:
        taken, day, implied = dated
        if pieces.day is not None:
            return taken, "", None  # a later date: title text (its time is read on its own)
        at: time | None = None
        if pieces.at is None:
            timed = when.match_time(keys[taken:])
            if timed is not None:
                taken, at = taken + timed[0], timed[1]
            else:
                at = implied
        return taken, "due", (day, at)
    timed = when.match_time(keys)
    if timed is not None:
        taken, at = timed
        if pieces.at is not None:
            return taken, "", None
        on: date | None = None
        if pieces.day is None:
            dated = when.match_date(keys[taken:], today)
            if dated is not None:
                taken, on = taken + dated[0], dated[1]
        return taken, "due", (on, at)
    return 0, "", None


def _symbol(text: str, word: Word, directory: Directory) -> tuple[int, str, object]:
    """`#list` (known lists only), `@tag`, `!priority`, `+person` (resolved later)."""
    sign, name = _named(text, word)
    if sign == "#":
        found = directory.lists.get(name.casefold())
        return (1, "list", found) if found is not None else (0, "", None)
    if sign == "@":
        return 1, "tag", name
    if sign == "+" and not word.quoted:
        return 1, "assignee", name.casefold()
    if word.key in PRIORITIES:
        return 1, "priority", PRIORITIES[word.key]
    return 0, "", None


def _named(text: str, word: Word) -> tuple[str, str]:
    """A word's sign (`#`, `@`, `+`) and the name after it, or ("", "") when it names none
    (a name needs a letter or digit)."""
    sign = text[word.start]
    if sign not in "#@+":
        return "", ""
    if word.quoted:
        name = " ".join(text[word.start + 2 : word.end - 1].split())
    else:
        name = text[word.start + 1 : word.end]
    return (sign, name) if any(char.isalnum() for char in name) else ("", "")


def _due(pieces: _Pieces, today: date, now: datetime, zone: ZoneInfo) -> date | datetime | None:
    """The due: the typed date (a day), with the typed time an instant; a time alone is today,
    or tomorrow once it has passed; a rule without a date starts at its first occurrence."""
    if pieces.rule is not None and pieces.day is None:
        return repeat.first_due(pieces.rule, today, pieces.at, now, zone)
    if pieces.day is not None:
        return pieces.day if pieces.at is None else local(pieces.day, pieces.at, zone)
    if pieces.at is None:
        return None
    instant: datetime | None = local(today, pieces.at, zone)
    if instant is not None and passed(pieces.at, instant, now):
        tomorrow = plus_days(today, 1)
        instant = None if tomorrow is None else local(tomorrow, pieces.at, zone)
    return instant


def _title(text: str, tokens: list[Token], dropped: tuple[int, ...]) -> str:
    """The text without its tokens and its literal spans' quote marks, whitespace collapsed;
    punctuation right after a token closes up to the word before it."""
    spans = sorted([(t.start, t.end, True) for t in tokens] + [(d, d + 1, False) for d in dropped])
    out: list[str] = []
    position = 0
    for start, end, token in spans:
        out.append(text[position:start])
        position = end
        if token and end < len(text) and text[end] in TRAILING:
            while out:
                last = out[-1].rstrip()
                if last:
                    out[-1] = last
                    break
                out.pop()
    out.append(text[position:])
    return " ".join("".join(out).split())


def _distinct(tags: Iterable[str]) -> tuple[str, ...]:
    """Tags in order, the first spelling of each (compared casefolded)."""
    seen: dict[str, str] = {}
    for tag in tags:
        seen.setdefault(tag.casefold(), tag)
    return tuple(seen.values())
