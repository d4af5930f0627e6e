"""Saved filters as REST and MCP accept and show them, and how a listing applies one
(`applied_query`). A filter's query is typed by the listing's own declaration (`SavedQuery`,
REST's names, JSON values), so it is validated by the rules `GET /api/tasks` applies and can
never fail later for a reason it could have been refused for; parameters sent beside it win.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    create_model,
    model_serializer,
)

from backend.contracts.task_listing import LISTING_PARAMS, JsonValues, listing_fields, listing_query
from backend.errors import AppError
from backend.models.common import NOT_SENT, NotNull, UtcDatetime
from backend.models.names import Name
from backend.models.saved_filter import NAME_DOC, QUERY_DOC
from backend.services.tasks.saved_filters import AppliedFilter, SavedFilterService
from backend.services.tasks.task_listing import FilterChanged, TaskListQuery
from backend.services.unit_of_work import UnitOfWork

# A listing may name its list by id (REST, MCP) or by name (MCP's `list`): one choice, so a
# list sent beside a filter replaces the filter's whichever way either names it.
_ONE_CHOICE = ({"list_id", "list_name"},)
R = TypeVar("R")
# Reads of a filter that changed while a page applied it, before giving up (503).
_FILTER_READS = 3
_QUERY_EXAMPLE: dict[str, Any] = {"status": "pending", "priority": ["high"], "sort": "due_date"}


class _SavedQuery(BaseModel):
    """A saved filter's query: the listing's parameters by REST's names (`extra="forbid"`:
    an unknown name, or `cursor`, is refused)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [_QUERY_EXAMPLE]})

    def given(self) -> dict[str, Any]:
        """The parameters given, as stored (JSON values)."""
        return self.model_dump(mode="json", exclude_unset=True)

    @model_serializer(mode="wrap")
    def _given_only(self, handler: SerializerFunctionWrapHandler):  # type: ignore[no-untyped-def]
        # Shown as stored: only the parameters given (no return annotation: the document
        # keeps the model's schema).
        shown: dict[str, Any] = handler(self)
        return {name: value for name, value in shown.items() if name in self.model_fields_set}


if TYPE_CHECKING:

    class SavedQuery(_SavedQuery): ...

else:
    SavedQuery = create_model(
        "SavedQuery",
        __base__=_SavedQuery,
        __module__=__name__,
        **listing_fields("rest", JsonValues()),
    )


class FilterCreate(BaseModel):
    """A new saved filter (PUT: its whole new state)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"name": "Due soon", "query": _QUERY_EXAMPLE}]},
    )

    name: Name = Field(description=NAME_DOC, examples=["Due soon"])
    query: SavedQuery = Field(default_factory=SavedQuery, description=QUERY_DOC)


class FilterUpdate(BaseModel):
    """PATCH body: only the fields sent change (a query sent replaces the whole query)."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"name": "Overdue at work"}]}
    )

    name: Annotated[Name, NotNull] = Field(description=NAME_DOC, **NOT_SENT)
    query: Annotated[SavedQuery, NotNull] = Field(description=QUERY_DOC, **NOT_SENT)


class FilterPublic(BaseModel):
    """A saved filter."""

    model_config = ConfigDict(from_attributes=True)

    id: int = Field(examples=[3])
    name: str = Field(description=NAME_DOC, examples=["Due soon"])
    query: SavedQuery = Field(description=QUERY_DOC)
    created_at: UtcDatetime = Field(examples=["2026-11-26T12:00:00Z"])
    updated_at: UtcDatetime = Field(examples=["2026-11-26T12:00:00Z"])


def filtered(
    work: UnitOfWork,
    filter_id: int | str,
    sent: BaseModel,
    transport: str,
    read: Callable[[TaskListQuery], R],
) -> R:
    """`read` (a listing's page) with the saved filter `filter_id` (or of that name) applied,
    as this process last read it: one round trip, the page saying whether the filter still
    held that query (else `FilterChanged`, as may a refusal); a stale filter is read again, and
    the page with it. Another user's or a missing filter: NotFound."""
    filters: SavedFilterService = work.service(SavedFilterService)
    applied, fresh = filters.applied(filter_id)
    for _ in range(_FILTER_READS):
        try:
            return read(applied_query(applied, sent, transport))
        except FilterChanged:
            pass
        except AppError:
            if fresh or filters.still_current(applied):
                raise
        applied, fresh = filters.applied(filter_id, fresh=True)
    raise FilterChanged()


def applied_query(applied: AppliedFilter, sent: BaseModel, transport: str) -> TaskListQuery:
    """The listing's query: the filter's parameters, then those `sent` gave (a transport's
    validated listing model: "rest" or "mcp"), which replace the filter's own; the query
    holds only while the filter still holds the query applied (`TaskFilters.saved`)."""
    stored = SavedQuery.model_validate(applied.query)
    chosen = _given(stored, "rest")
    overrides = _given(sent, transport)
    for group in _ONE_CHOICE:
        if group & overrides.keys():
            for keyword in group:
                chosen.pop(keyword, None)
    saved = (applied.id, applied.query, applied.name_key)
    return listing_query(**{**chosen, **overrides}, saved=saved)


def _given(model: BaseModel, transport: str) -> dict[str, Any]:
    """The listing keywords `model` was given (not defaulted), with their values."""
    return {
        p.keyword: getattr(model, p.attribute(transport))
        for p in LISTING_PARAMS
        if p.spelling(transport) is not None and p.attribute(transport) in model.model_fields_set
    }
