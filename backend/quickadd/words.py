"""The line cut into words, in one linear pass, so that no phrase ever takes part of a word.

A word starts at the start of the text, after whitespace or after opening brackets; its core
ends before trailing punctuation (`,.;:!?` and closing brackets), which stays in the title.
A double-quoted span opening a word is literal: one word no phrase can use, whose quote marks
the title drops. `#"two words"` and `@"two words"` are one word each (a quoted name).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

OPENING = frozenset("([{")
TRAILING = frozenset(",.;:!?)]}")
QUOTE = '"'
_CHUNK = re.compile(r"\S+")  # a run of non-space: linear, nothing to backtrack


@dataclass(frozen=True, slots=True)
class Word:
    start: int  # the core: text[start:end], brackets and trailing punctuation outside it
    end: int
    key: str  # the core lowercased, what the grammar's words are matched against
    opens: bool = False  # an opening bracket before it: it may start a phrase, not continue one
    stops: bool = False  # punctuation after it: no phrase continues past it
    comma: bool = False  # that punctuation is exactly ",": a list of weekdays continues
    literal: bool = False  # quoted text (or what follows its closing quote): never parsed
    quoted: bool = False  # `#"..."` / `@"..."`: a quoted name


@dataclass(frozen=True, slots=True)
class Split:
    words: tuple[Word, ...]
    dropped: tuple[int, ...]  # offsets of the quote marks of literal spans, left out of titles


def split(text: str) -> Split:
    words: list[Word] = []
    dropped: list[int] = []
    last_quote = text.rfind(QUOTE)
    size = len(text)
    chunk = _CHUNK.search(text)
    while chunk is not None:
        start, end = chunk.span()
        i = start
        while i < end and text[i] in OPENING:
            i += 1
        if i == end:
            chunk = _CHUNK.search(text, end)
            continue
        opens = i > start
        head = text[i]
        if head == QUOTE and last_quote > i:
            close = text.index(QUOTE, i + 1)
            words.append(Word(i, close + 1, "", opens=opens, literal=True))
            dropped += (i, close)
            rest = _CHUNK.match(text, close + 1)  # what follows the closing quote: text
            if rest is not None:
                words.append(Word(close + 1, rest.end(), "", literal=True))
            chunk = _CHUNK.search(text, close + 1 if rest is None else rest.end())
            continue
        if head in "#@" and i + 2 < size and text[i + 1] == QUOTE and last_quote > i + 2:
            close = text.index(QUOTE, i + 2)
            after = close + 1
            while after < size and text[after] in TRAILING:
                after += 1
            if close > i + 2 and (after == size or text[after].isspace()):
                tail = text[close + 1 : after]
                key = text[i : close + 1].lower()
                words.append(Word(i, close + 1, key, opens, bool(tail), tail == ",", quoted=True))
                chunk = _CHUNK.search(text, after)
                continue
        core = end
        while core > i and text[core - 1] in TRAILING:
            core -= 1
        if core > i:
            tail = text[core:end]
            words.append(Word(i, core, text[i:core].lower(), opens, bool(tail), tail == ","))
        chunk = _CHUNK.search(text, end)
    return Split(tuple(words), tuple(dropped))


def joins(before: Word, after: Word, *, comma: bool = False) -> bool:
    """Whether `after` may continue a phrase that `before` is part of."""
    if before.literal or after.literal or after.opens:
        return False
    return not before.stops or (comma and before.comma)


def chains(words: tuple[Word, ...], *, comma: bool = False) -> list[int]:
    """For each word, the index one past the last word its phrase could reach."""
    ends = [0] * len(words)
    reach = len(words)
    for index in range(len(words) - 1, -1, -1):
        if index + 1 < len(words) and not joins(words[index], words[index + 1], comma=comma):
            reach = index + 1
        ends[index] = reach
    return ends
