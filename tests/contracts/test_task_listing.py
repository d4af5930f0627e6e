"""REST's listing query string and MCP's `list_tasks` arguments go through one contract
(`backend.contracts.task_listing`): the same values give the same service query, and the same
bounds refuse the same values."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from backend.api.routes.tasks import ListParams
from backend.contracts.saved_filters import SavedQuery
from backend.contracts.task_listing import (
    LISTING_PARAMS,
    MAX_FILTER_VALUES,
    MAX_LIMIT,
    SEARCH_MAX_LENGTH,
    QueryString,
)
from backend.mcp.tools.tasks import ListTasksArguments
from backend.models import Priority, SortOrder, TaskSort, TaskStatus


def test_the_same_values_give_the_same_query() -> None:
    shared: dict[str, Any] = {
        "status": "pending",
        "priority": ["high", "low", "high"],
        "tag": [" Work ", "home", "work"],
        "due_before": "2026-12-01",
        "due_after": "2026-11-22T01:00:00+01:00",
        "overdue": False,
        "recurring": True,
        "sort": "due_date",
        "order": "desc",
        "limit": 7,
    }
    rest = ListParams.model_validate({**shared, "q": "  Cafe\u0301 "}).query()
    mcp = ListTasksArguments.model_validate({**shared, "search": "  Cafe\u0301 "}).query()
    assert rest == mcp
    filters = rest.filters
    assert filters.status is TaskStatus.pending
    # Repeated values count once; tags are normalized as stored ones; search is trimmed NFC.
    assert filters.priorities == (Priority.high, Priority.low)
    assert filters.tags == ("work", "home")
    assert filters.q == "Café"
    assert filters.due_before == datetime(2026, 12, 1, tzinfo=UTC)
    assert filters.due_after == datetime(2026, 11, 22, tzinfo=UTC)
    assert (rest.sort, rest.order, rest.limit) == (TaskSort.due_date, SortOrder.desc, 7)


def test_defaults_are_the_same() -> None:
    assert ListParams().query() == ListTasksArguments().query()


def _refused(model: type[BaseModel], arguments: dict[str, Any]) -> list[tuple[Any, ...]]:
    with pytest.raises(ValidationError) as refused:
        model.model_validate(arguments)
    return [error["loc"] for error in refused.value.errors()]


@pytest.mark.parametrize(
    ("rest", "mcp"),
    [
        ({"priority": ["high"] * (MAX_FILTER_VALUES + 1)}, None),
        ({"tag": [f"t{n}" for n in range(MAX_FILTER_VALUES + 1)]}, None),
        ({"tag": [""]}, None),
        ({"limit": MAX_LIMIT + 1}, None),
        ({"limit": 0}, None),
        ({"q": "x" * (SEARCH_MAX_LENGTH + 1)}, {"search": "x" * (SEARCH_MAX_LENGTH + 1)}),
        ({"q": "a\x00b"}, {"search": "a\x00b"}),
        ({"due_before": "soon"}, None),
    ],
)
def test_the_same_bounds_refuse_the_same_values(
    rest: dict[str, Any], mcp: dict[str, Any] | None
) -> None:
    mcp = rest if mcp is None else mcp
    assert _refused(ListParams, rest)[0][0] == next(iter(rest))
    assert _refused(ListTasksArguments, mcp)[0][0] == next(iter(mcp))


# A value a lax boolean would take as true, which a JSON flag refuses.
_NOT_A_BOOLEAN = ("yes", "on", "true", 1, 0)


def _flags(transport: str) -> list[str]:
    """Every listing parameter that is a flag, by its name on `transport`."""
    return [
        param.attribute(transport)
        for param in LISTING_PARAMS
        if param.spelling(transport) is not None and "bool" in repr(param.type(QueryString()))
    ]


@pytest.mark.parametrize("value", _NOT_A_BOOLEAN, ids=repr)
@pytest.mark.parametrize("flag", _flags("rest"))
def test_every_flag_of_a_saved_query_is_a_strict_boolean(flag: str, value: Any) -> None:
    """A saved filter's query holds JSON values: each flag `true` or `false`, never text or a
    number (issue 61, item 8: `include_total` took them, typed without its transport's)."""
    assert SavedQuery.model_validate({flag: True}).model_dump()[flag] is True
    assert _refused(SavedQuery, {flag: value}) == [(flag,)]


@pytest.mark.parametrize("value", _NOT_A_BOOLEAN, ids=repr)
@pytest.mark.parametrize("flag", _flags("mcp"))
def test_every_flag_of_the_tool_is_a_strict_boolean(flag: str, value: Any) -> None:
    assert _refused(ListTasksArguments, {flag: value}) == [(flag,)]
