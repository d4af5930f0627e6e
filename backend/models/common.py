"""Shared pieces: the naming convention, safe string types and the response envelopes."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Generic, TypeVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    Strict,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, PydanticCustomError, core_schema
from sqlmodel import SQLModel

# Constraint names follow one convention, the same one the SQL migrations use.
SQLModel.metadata.naming_convention = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def storable_text(value: str) -> str:
    """PostgreSQL text cannot hold NUL, and UTF-8 cannot hold lone surrogates: reject both
    here (422) instead of letting the driver fail on them (500)."""
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode text") from None
    return value


# No NUL (lone surrogates cannot be written in a JSON Schema pattern; a 422 all the same).
NO_NUL_PATTERN = "^[^\\u0000]*$"
# Unicode White_Space, what `strip_whitespace` trims, spelled out: `\s` differs per engine.
WHITESPACE_CLASS = "\\t-\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000"
# No NUL, and a character that is not whitespace (`min_length=1` after `strip_whitespace`).
NOT_BLANK_PATTERN = f"^[^\\u0000]*[^\\u0000{WHITESPACE_CLASS}][^\\u0000]*$"


def counted_as_sent(constrained: CoreSchema, validated: CoreSchema) -> CoreSchema:
    """`validated` with `constrained`'s `max_length` held by the value as sent too: pydantic
    trims before it counts, the OpenAPI `maxLength` counts what is sent."""
    max_length = constrained.get("max_length")
    if not isinstance(max_length, int):
        return validated

    def as_sent(value: Any) -> Any:
        if isinstance(value, str) and len(value) > max_length:
            raise PydanticCustomError(
                "string_too_long",
                "String should have at most {max_length} characters",
                {"max_length": max_length},
            )
        return value

    return core_schema.no_info_before_validator_function(as_sent, validated)


class _StorableText:
    """`storable_text` as an after-validator, and a `pattern` saying so (or one implying it)."""

    def __init__(self, pattern: str = NO_NUL_PATTERN, json_format: str | None = None) -> None:
        self.pattern = pattern
        self.json_format = json_format

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        inner = handler(source)
        return counted_as_sent(
            inner, core_schema.no_info_after_validator_function(storable_text, inner)
        )

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        json_schema = handler(schema)
        json_schema.setdefault("pattern", self.pattern)
        if self.json_format is not None:
            json_schema["format"] = self.json_format
        return json_schema


# Use as `Annotated[str, StringConstraints(...), StorableText]` on every client-supplied string.
StorableText = _StorableText()
# The same for a trimmed string that must keep a character (the schema says so too).
NotBlankText = _StorableText(NOT_BLANK_PATTERN)


# `StorableText` with a pattern of its own (which must exclude NUL) and an optional `format`.
text_pattern = _StorableText


def decimal_digits(value: Any) -> Any:
    """Only ASCII digits are a path or query integer (pydantic would read `5_0`, `+5`, `5.0`)."""
    if isinstance(value, str) and not (value.isascii() and value.isdigit()):
        raise ValueError("must be a whole number written with the digits 0-9 only")
    return value


# `Annotated[int, Path(ge=..., le=...), DecimalDigits]`: after Path()/Query(), or their bounds
# reach the OpenAPI as `ge`/`le` instead of `minimum`/`maximum`.
DecimalDigits = BeforeValidator(decimal_digits)
# An integer in a JSON body: a JSON integer only (not `true`, `"261"` or `261.0`).
JsonInt = Annotated[int, Strict()]

# Every transaction's zone is UTC: no converting serializer (a tenth of a listing's time).
UtcDatetime = datetime

T = TypeVar("T")


class ErrorDetail(BaseModel):
    field: str | None = Field(
        default=None,
        description="Where the problem is, e.g. `body.title`.",
        examples=["body.title"],
    )
    message: str = Field(examples=["String should have at least 1 character"])
    type: str | None = Field(default=None, examples=["string_too_short"])


class ErrorInfo(BaseModel):
    code: str = Field(
        description="Stable machine-readable code.",
        examples=["VALIDATION_ERROR", "NOT_FOUND", "UNAUTHORIZED"],
    )
    message: str = Field(description="Human-readable summary.", examples=["Task not found"])
    details: list[ErrorDetail] = Field(default_factory=list)


class ErrorEnvelope(BaseModel):
    """Every error response has this shape."""

    error: ErrorInfo


class DataEnvelope(BaseModel, Generic[T]):
    """Every single-object success response has this shape."""

    data: T


class ListMeta(BaseModel):
    count: int = Field(description="Number of items in `data`.", examples=[2])
    limit: int = Field(description="The page size that was applied.", examples=[100])
    has_more: bool = Field(
        description="True when more items matched than `limit` allowed.", examples=[False]
    )
    next_cursor: str | None = Field(
        default=None,
        description="Pass as `cursor` to get the next page; null on the last page.",
        examples=[None],
    )
    total: int | None = Field(
        default=None,
        description="Number of matching items; only computed with `include_total=true`.",
        examples=[None],
    )


class ListEnvelope(BaseModel, Generic[T]):
    """Every list response has this shape."""

    data: list[T]
    meta: ListMeta


def _refuse_null(value: Any) -> Any:
    if value is None:
        raise PydanticCustomError(
            "null_not_allowed", "This field cannot be null: send a value, or leave it out"
        )
    return value


def _no_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)


# A body field that may be left out but not sent null: `Annotated[T, NotNull] = Field(...,
# **NOT_SENT)`; the default `None` means "not sent" and the type is not widened to `T | None`.
NotNull = BeforeValidator(_refuse_null)
NOT_SENT: dict[str, Any] = {"default": None, "json_schema_extra": _no_default}


def omittable(type_: Any) -> tuple[Any, dict[str, Any]]:
    """`type_` as such a field: its type and its `Field` arguments."""
    not_null: Any = Annotated[type_, NotNull]
    return not_null, dict(NOT_SENT)
