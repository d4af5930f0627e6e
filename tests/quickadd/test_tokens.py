"""Quick add's tokens and titles: lists, tags, priorities, assignees, traps that stay text,
offsets, quotes and `ignore`."""

from __future__ import annotations

from datetime import date, datetime

import pytest

from backend.quickadd import Names, QuickAddError, Token, names_in
from tests.quickadd.common import BERLIN, read_at, spans


def test_a_line_of_every_kind() -> None:
    text = "Buy milk tomorrow 5pm @errands #Home !high"
    reading = read_at(text)
    assert reading.title == "Buy milk"
    assert reading.due == datetime(2026, 11, 29, 17, 0, tzinfo=BERLIN)
    assert (reading.tags, reading.list_id, reading.priority) == (("errands",), 1, "high")
    assert spans(reading) == [
        ("due", "tomorrow 5pm"),
        ("tag", "@errands"),
        ("list", "#Home"),
        ("priority", "!high"),
    ]
    assert [token.value for token in reading.tokens[1:]] == ["errands", 1, "high"]


@pytest.mark.parametrize(
    "text",
    [
        "Read The 5th Wave",
        "Renovation - 2nd Floor Bath",
        "Call May",
        "fix monitor",
        "Mark",
        "Jane",
        "Decide",
        "paprika",
        "Julian",
        "C# book",
        "mail a@b.com",
        "a+b",
        "Feb 30",
        "The 9/11 Report",
        "Remark on Marching",
        "Sunday-ish plans",
        "every now and then",
        "Marathon training",
        "100M sprint",
        "Do you have a car",
        "a",
        "!!! urgent ???",
        "x #nowhere +nobody @",
        "x #! +?",
    ],
)
def test_traps_stay_in_the_title(text: str) -> None:
    reading = read_at(text)
    assert reading.title == text
    assert reading.tokens == () and reading.due is None


def test_lists_the_last_known_one_wins_and_all_leave() -> None:
    reading = read_at("x #work #nowhere #home", default_list=2)
    assert reading.title == "x #nowhere"
    assert reading.list_id == 1
    assert spans(reading) == [("list", "#work"), ("list", "#home")]
    assert read_at("x", default_list=2).list_id == 2
    assert read_at('x #"Two  Words"').list_id == 3
    assert read_at('x #"two words", then').title == "x, then"


def test_tags_keep_their_spelling_once_each() -> None:
    reading = read_at('x @Errands @errands @"big shop" @a@b')
    assert reading.title == "x"
    assert reading.tags == ("Errands", "big shop", "a@b")
    assert [token.value for token in reading.tokens] == ["Errands", "errands", "big shop", "a@b"]


@pytest.mark.parametrize(
    ("text", "priority"),
    [
        ("!high", "high"),
        ("!MEDIUM", "medium"),
        ("!low", "low"),
        ("!none", "none"),
        ("!1", "high"),
        ("!2", "medium"),
        ("!3", "low"),
        ("!low !1", "high"),
    ],
)
def test_priorities_the_last_wins(text: str, priority: str) -> None:
    reading = read_at(f"x {text}")
    assert (reading.title, reading.priority) == ("x", priority)


@pytest.mark.parametrize("text", ["x !4", "x !urgent", "x!high", "x !!high", "x !"])
def test_not_a_priority(text: str) -> None:
    assert read_at(text).title == text and read_at(text).priority is None


def test_assignees_are_members_of_the_tasks_final_list() -> None:
    reading = read_at("x +Bob +ann +me #home")
    assert reading.title == "x +ann +me"
    assert (reading.list_id, reading.assignees) == (1, ("user-bob",))
    assert spans(reading) == [("assignee", "+Bob"), ("list", "#home")]
    assert read_at("x +me +me").assignees == ("user-me",)  # no list: the caller's own
    assert read_at("x +ann", default_list=2).assignees == ("user-ann",)
    assert read_at("x +bob", default_list=99).title == "x +bob"


def test_a_token_needs_a_word_start_and_a_word_end() -> None:
    assert read_at("x (tomorrow)").due == date(2026, 11, 29)
    assert read_at("x [#home]").list_id == 1
    reading = read_at("Call mom tomorrow.")
    assert (reading.title, reading.due) == ("Call mom.", date(2026, 11, 29))
    reading = read_at("Call tomorrow, then shop")
    assert reading.title == "Call, then shop"
    assert read_at("x tomorrow5pm").title == "x tomorrow5pm"
    assert read_at("x tomorrow, 5pm").tokens[0].text == "tomorrow"  # apart: two tokens


def test_titles_collapse_whitespace() -> None:
    assert read_at("  Buy \t milk   tomorrow \n now ").title == "Buy milk now"


def test_only_tokens_is_no_task() -> None:
    with pytest.raises(QuickAddError, match="title"):
        read_at("tomorrow 5pm #home !high")
    with pytest.raises(QuickAddError):
        read_at("   ")
    with pytest.raises(QuickAddError):
        read_at('""')


def test_quoted_text_is_literal() -> None:
    reading = read_at('Watch "Tomorrow Never Dies" tomorrow')
    assert reading.title == "Watch Tomorrow Never Dies"
    assert reading.due == date(2026, 11, 29)
    assert spans(reading) == [("due", "tomorrow")]
    reading = read_at('"Meet Friday team #home !high"')
    assert reading.title == "Meet Friday team #home !high" and reading.tokens == ()
    assert read_at('Meet "Friday" team').title == "Meet Friday team"
    assert read_at('x "unclosed tomorrow').title == 'x "unclosed'


def test_offsets_are_code_points_even_after_emoji() -> None:
    text = "🎉🧑‍🤝‍🧑 Party 🧪 tomorrow 5pm #Home @fun 🚀 !1 +bob every day"
    reading = read_at(text)
    assert reading.title == "🎉🧑‍🤝‍🧑 Party 🧪 🚀"
    for token in reading.tokens:
        assert text[token.start : token.end] == token.text
    assert reading.tokens[0] == Token(
        "due",
        text.index("tomorrow"),
        text.index("tomorrow") + len("tomorrow 5pm"),
        "tomorrow 5pm",
        datetime(2026, 11, 29, 17, 0, tzinfo=BERLIN),
    )
    assert [token.kind for token in reading.tokens] == [
        "due",
        "list",
        "tag",
        "priority",
        "assignee",
        "recurrence",
    ]


def test_ignore_keeps_a_span_in_the_title() -> None:
    text = "Meet Friday team"
    friday = read_at(text).tokens[0]
    reading = read_at(text, ignore=[friday.start])
    assert (reading.title, reading.due, reading.tokens) == (text, None, ())


def test_an_ignored_span_joins_no_other_token() -> None:
    text = "Call tomorrow 5pm"
    token = read_at(text).tokens[0]
    reading = read_at(text, ignore=[token.start])
    assert (reading.title, reading.tokens) == (text, ())


def test_ignoring_the_first_date_makes_the_next_one_the_due() -> None:
    text = "Prepare Monday report for Friday"
    reading = read_at(text, ignore=[text.index("Monday")])
    assert reading.title == "Prepare Monday report for"
    assert reading.due == date(2026, 12, 4)


def test_ignoring_a_time_leaves_the_date_a_day() -> None:
    text = "Dinner tomorrow with Bob at 7pm"
    reading = read_at(text, ignore=[text.index("at 7pm")])
    assert (reading.title, reading.due) == ("Dinner with Bob at 7pm", date(2026, 11, 29))


def test_ignoring_symbols() -> None:
    text = "x #home @tag !high +bob"
    reading = read_at(text, ignore=[2, 8, 13])
    assert reading.title == text  # +bob: with #home ignored, no list has bob
    assert (reading.list_id, reading.tags, reading.priority, reading.tokens) == (None, (), None, ())
    assert read_at(text, ignore=[2]).title == "x #home +bob"


def test_a_stale_ignore_is_harmless() -> None:
    text = "Buy milk tomorrow 5pm @errands"
    assert read_at(text, ignore=[1, 3, 999, -5]) == read_at(text)


def test_names_in_what_a_line_types() -> None:
    text = 'x #Home #"Two  Words" +Bob #home "#quoted +quoted" a#b c+d #! @tag +ann'
    assert names_in(text) == Names(
        lists=frozenset({"home", "two words"}), people=frozenset({"bob", "ann"})
    )
    assert names_in(text, ignore=[text.index("+ann"), 2]) == Names(
        lists=frozenset({"home", "two words"}), people=frozenset({"bob"})
    )
    assert names_in("") == Names(frozenset(), frozenset())
