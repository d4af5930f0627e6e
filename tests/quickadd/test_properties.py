"""Quick add on any text: offsets that slice the text, tokens that never overlap, the same
reading for the same input; and adversarial 1,000-character lines read correctly (no test
here measures time: a linear pass is what keeps them fast)."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backend.quickadd import QuickAddError, Reading, names_in
from backend.quickadd.sent import offsets
from tests.quickadd.common import read_at

VOCABULARY = [
    "every", "other", "day", "week", "month", "monday", "mon,", "thu", "and", "on", "the",
    "15th", "at", "5", "pm", "5pm", "17:00", "noon", "today", "tomorrow", "tonight", "next",
    "in", "3", "days", "Dec", "5th", "2026-12-05", "end", "of", "by", "due", "#home", "#a",
    '#"two words"', "@tag", '@"big shop"', "!high", "!1", "+bob", "+me", '"', '"quoted',
    "(", ")", ",", ".", "🎉", "x", "Mark", "May", "daily",
]  # fmt: skip
SEPARATORS = st.sampled_from([" ", "  ", ", ", "\t", "\n", "", "(", '"'])


@st.composite
def lines(draw: st.DrawFn) -> str:
    parts = draw(st.lists(st.one_of(st.sampled_from(VOCABULARY), st.text(max_size=4)), max_size=25))
    return "".join(part + draw(SEPARATORS) for part in parts)


def attempt(text: str, ignore: tuple[int, ...] = ()) -> Reading | str:
    try:
        return read_at(text, ignore=ignore)
    except QuickAddError as error:
        return str(error)


@settings(max_examples=400, deadline=None)
@given(lines(), st.lists(st.integers(-2, 120), max_size=3))
def test_any_text_reads_consistently(text: str, ignore: list[int]) -> None:
    reading = attempt(text, tuple(ignore))
    assert reading == attempt(text, tuple(ignore))
    if isinstance(reading, str):
        return
    end = 0
    for token in reading.tokens:
        assert text[token.start : token.end] == token.text
        assert token.start >= end and token.end > token.start
        assert token.start not in ignore
        end = token.end
    assert reading.title and reading.title == reading.title.strip()
    listed = names_in(text, ignore)
    typed = {token.text[1:].strip('"') for token in reading.tokens if token.kind == "list"}
    assert {" ".join(name.split()).casefold() for name in typed} <= listed.lists


def words(word: str, size: int = 1000) -> str:
    return (word + " ") * (size // (len(word) + 1))


@pytest.mark.parametrize(
    "text",
    [
        words("every"),
        "!" * 1000,
        "1" * 1000,
        "1" * 500 + ":" + "0" * 499,
        words("in"),
        words("on the"),
        words("#nowhere"),
        words('#"a'),
        "a" * 1000,
        words("end of"),
        words("Dec"),
        words("+nobody"),
        words("the 5th of"),
        "(" * 1000,
        words("every other"),
    ],
)
def test_adversarial_text_is_its_own_title(text: str) -> None:
    reading = read_at(text)
    assert reading.title == " ".join(text.split()) and reading.tokens == ()


def test_adversarial_tokens() -> None:
    reading = read_at(words("#a") + "task")
    assert (reading.title, reading.list_id, len(reading.tokens)) == ("task", 4, 333)
    reading = read_at(words("@a") + "x")
    assert (reading.title, reading.tags, len(reading.tokens)) == ("x", ("a",), 333)
    reading = read_at(words("!1") + "x")
    assert (reading.title, reading.priority) == ("x", "high")
    reading = read_at(words("tomorrow 5pm"))  # the first is the due, the rest text
    assert reading.tokens[0].text == "tomorrow 5pm" and len(reading.tokens) == 1
    reading = read_at(words("every mon and"))
    assert (reading.recurrence, len(reading.tokens)) == ("FREQ=WEEKLY;BYDAY=MO", 1)
    reading = read_at("every " + words("mon and", 990) + "mon")
    assert reading.recurrence == "FREQ=WEEKLY;BYDAY=MO" and reading.tokens[0].end > 100
    reading = read_at('"' * 1000)  # an empty literal, then quote marks as text
    assert reading.title == '"' * 998
    reading = read_at('x "' + "tomorrow " * 110 + '"')
    assert reading.tokens == () and reading.title.startswith("x tomorrow tomorrow")


MARKS = ["\u0301", "\u0308", "\u0323", "\u1161", "\u11a8", "\u212b", "\u0344", " ", "  "]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.one_of(st.sampled_from([*VOCABULARY, *MARKS, "e", "\u1100"])), max_size=20))
def test_offsets_of_the_normalized_text_map_to_the_text_as_sent(parts: list[str]) -> None:
    sent = " ".join(parts)
    normalized = unicodedata.normalize("NFC", sent.strip())
    where = offsets(sent, normalized)
    assert where.sent == sent
    # Every span between whitespace-separated words is the NFC of the span sent it maps to.
    edges = [0, len(normalized)] + [i for i, c in enumerate(normalized) if c.isspace()]
    edges += [i + 1 for i, c in enumerate(normalized) if c.isspace()]
    for start in edges:
        for end in edges:
            if start > end:
                continue
            first, last = where.span(start, end)
            read = unicodedata.normalize("NFC", sent[first:last])
            if where.starts[start] == where.ends[start] and where.starts[end] == where.ends[end]:
                assert read == normalized[start:end]  # at pieces' edges: exactly
                assert start in where.normalized({first})
            else:  # inside a piece NFC changed: the whole piece
                assert normalized[start:end] in read
