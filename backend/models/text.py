"""The text rule: one definition for every human-facing string (task titles, descriptions and
tags, list names, comments), used by the REST schemas and, through them, the MCP tools; the
rule itself is specs/api-contract.md, "Text rule" (NFC; no control, bidi override or isolate,
or noncharacter code points; a single-line value keeps a visible character; `max_length` as
sent and in NFC), checked after pydantic's own constraints (trimming, lower-casing, lengths).
NUL and lone surrogates keep their own messages (`storable_text`). The OpenAPI document gets
a `pattern` built from the same character classes, so a schema-valid value is never refused
(tests/test_openapi_rules.py compares the two).
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from pydantic import BaseModel, GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, PydanticCustomError, core_schema

from backend.models.common import WHITESPACE_CLASS, counted_as_sent, storable_text


def _ranges(*spans: tuple[int, int]) -> str:
    """A regex character-class body for code point ranges, valid for Python's `re`, the
    Rust `regex` crate (jsonschema-rs) and ECMA-262 with the `u` flag: BMP code points as
    `\\uXXXX`, astral ones as the characters themselves (no escape is common to all three)."""

    def one(code: int) -> str:
        return f"\\u{code:04x}" if code <= 0xFFFF else chr(code)

    return "".join(one(a) if a == b else f"{one(a)}-{one(b)}" for a, b in spans)


CONTROLS = _ranges((0x00, 0x1F), (0x7F, 0x9F))
# Controls less tab, LF and CR: what a multi-line field refuses.
CONTROLS_BUT_LINES = _ranges((0x00, 0x08), (0x0B, 0x0C), (0x0E, 0x1F), (0x7F, 0x9F))
LINE_SEPARATORS = _ranges((0x2028, 0x2029))
BIDI_CONTROLS = _ranges((0x202A, 0x202E), (0x2066, 0x2069))
NONCHARACTERS = _ranges(
    (0xFDD0, 0xFDEF), *((plane + 0xFFFE, plane + 0xFFFF) for plane in range(0, 0x110000, 0x10000))
)
# Unicode's Default_Ignorable_Code_Point (DerivedCoreProperties.txt): rendered as nothing.
# Whole blocks are listed, reserved code points included, as Unicode does, so the set holds
# for characters assigned later. (The unicodedata module does not expose the property.)
DEFAULT_IGNORABLE = _ranges(
    (0x00AD, 0x00AD),
    (0x034F, 0x034F),
    (0x061C, 0x061C),
    (0x115F, 0x1160),
    (0x17B4, 0x17B5),
    (0x180B, 0x180F),
    (0x200B, 0x200F),
    (0x202A, 0x202E),
    (0x2060, 0x206F),
    (0x3164, 0x3164),
    (0xFE00, 0xFE0F),
    (0xFEFF, 0xFEFF),
    (0xFFA0, 0xFFA0),
    (0xFFF0, 0xFFF8),
    (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A),
    (0xE0000, 0xE0FFF),
)

# What each kind of field refuses anywhere in its (trimmed) text, and why, in message order.
_REFUSED = (
    (CONTROLS, "control characters"),
    (LINE_SEPARATORS, "line or paragraph separators"),
    (BIDI_CONTROLS, "bidirectional embedding, override or isolate characters"),
    (NONCHARACTERS, "Unicode noncharacters"),
)
_SINGLE_LINE_REFUSED = CONTROLS + LINE_SEPARATORS + BIDI_CONTROLS + NONCHARACTERS
_MULTI_LINE_REFUSED = CONTROLS_BUT_LINES + BIDI_CONTROLS + NONCHARACTERS
_VISIBLE = f"[^{WHITESPACE_CLASS}{DEFAULT_IGNORABLE}{_SINGLE_LINE_REFUSED}]"

# The OpenAPI statement of each kind. Single-line: the text between the White_Space that
# pydantic trims has none of the refused characters and at least one visible one.
SINGLE_LINE_PATTERN = (
    f"^[{WHITESPACE_CLASS}]*[^{_SINGLE_LINE_REFUSED}]*{_VISIBLE}"
    f"[^{_SINGLE_LINE_REFUSED}]*[{WHITESPACE_CLASS}]*$"
)
MULTI_LINE_PATTERN = f"^[^{_MULTI_LINE_REFUSED}]*$"
# Multi-line text that must say something (a comment): trimmed as single-line text is, then a
# visible character among its lines.
MULTI_LINE_VISIBLE_PATTERN = (
    f"^[{WHITESPACE_CLASS}]*[^{_MULTI_LINE_REFUSED}]*{_VISIBLE}"
    f"[^{_MULTI_LINE_REFUSED}]*[{WHITESPACE_CLASS}]*$"
)

_SINGLE_LINE_BAD = re.compile(f"[{_SINGLE_LINE_REFUSED}]")
_MULTI_LINE_BAD = re.compile(f"[{_MULTI_LINE_REFUSED}]")
_HAS_VISIBLE = re.compile(_VISIBLE)
_WHY = [(re.compile(f"[{chars}]"), reason) for chars, reason in _REFUSED]


def nfc(value: str) -> str:
    """The stored form of text: NFC. (Also applied to search terms, which are not refused.)"""
    return unicodedata.normalize("NFC", value)


def _refuse(found: str) -> PydanticCustomError:
    reason = next(reason for chars, reason in _WHY if chars.match(found))
    return PydanticCustomError(
        "text_character",
        "must not contain {reason} (found U+{code})",
        {"reason": reason, "code": f"{ord(found):04X}"},
    )


def check_text(
    value: str, *, multi_line: bool, max_length: int, visible: bool | None = None
) -> str:
    """The rule (see the module docstring) on one already trimmed/lower-cased value;
    `visible`: it must keep a visible character (single-line text always must)."""
    value = unicodedata.normalize("NFC", storable_text(value))  # as `nfc`
    bad = (_MULTI_LINE_BAD if multi_line else _SINGLE_LINE_BAD).search(value)
    if bad is not None:
        raise _refuse(bad.group())
    if (not multi_line or visible) and _HAS_VISIBLE.search(value) is None:
        raise PydanticCustomError(
            "text_invisible",
            "must contain a visible character, not only spaces or invisible characters",
        )
    if len(value) > max_length:
        raise PydanticCustomError(
            "string_too_long",
            "String should have at most {max_length} characters once normalized to NFC",
            {"max_length": max_length},
        )
    return value


class _HumanText:
    """`check_text` as an after-validator on the constrained string it follows (its
    `max_length` is read from there, so the limit is written once), and its `pattern`."""

    def __init__(self, *, multi_line: bool, visible: bool = False) -> None:
        self.multi_line = multi_line
        self.visible = visible or not multi_line

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        schema = handler(source)
        max_length = schema.get("max_length")
        # The pattern describes trimmed single-line text; a field without a limit is a
        # mistake: both would silently make schema and API disagree.
        if not isinstance(max_length, int) or (
            not self.multi_line and not schema.get("strip_whitespace")
        ):
            raise TypeError(
                "put the text rule after StringConstraints(max_length=...); single-line "
                "text also needs strip_whitespace=True"
            )
        multi_line, visible = self.multi_line, self.visible

        def text_rule(value: str) -> str:  # its name shows in a union branch's error location
            return check_text(value, multi_line=multi_line, max_length=max_length, visible=visible)

        checked = core_schema.no_info_after_validator_function(text_rule, schema)
        return counted_as_sent(schema, checked)

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        json_schema = handler(schema)
        if not self.multi_line:
            json_schema["pattern"] = SINGLE_LINE_PATTERN
        else:
            visible = self.visible
            json_schema["pattern"] = MULTI_LINE_VISIBLE_PATTERN if visible else MULTI_LINE_PATTERN
        return json_schema


# `Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=N),
# SingleLineText]`: a title, a tag, a list name.
SingleLineText = _HumanText(multi_line=False)
# `Annotated[str, StringConstraints(max_length=N), MultiLineText]`: a description (may be
# empty or blank, as an optional free text may; tab and line breaks allowed).
MultiLineText = _HumanText(multi_line=True)
# `Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=N),
# MultiLineVisibleText]`: multi-line text that must keep a visible character (a comment).
MultiLineVisibleText = _HumanText(multi_line=True, visible=True)

# The rule in a field's description (OpenAPI, MCP tool schemas).
SINGLE_LINE_RULE = (
    "one line with a visible character, stored in NFC (length counted as sent and in NFC); "
    "no control, bidi override/isolate or noncharacter code points"
)
MULTI_LINE_RULE = (
    "stored in NFC (length counted as sent and in NFC); tab, LF and CR allowed, no other "
    "control, bidi override/isolate or noncharacter code points"
)

# Every pattern the text rule gives a field's JSON Schema: how it is recognised in a schema.
TEXT_RULE_PATTERNS = frozenset(
    {SINGLE_LINE_PATTERN, MULTI_LINE_PATTERN, MULTI_LINE_VISIBLE_PATTERN}
)


def carries_text(model: type[BaseModel]) -> bool:
    """Whether `model` (a request body, a tool's arguments) takes human text: a field under
    the text rule, at any depth (a list's items, a nested object, a union's branch), read from
    its JSON Schema (the rule's `pattern`). A body without one carries no client text as
    data: ids, enums, flags, instants, addresses, tokens (what the protocol-text guard,
    tests/security/test_protocol_text.py, needs no door for)."""

    def found(node: Any) -> bool:
        if isinstance(node, dict):
            pattern = node.get("pattern")  # a property named "pattern" is a dict
            if isinstance(pattern, str) and pattern in TEXT_RULE_PATTERNS:
                return True
            return any(map(found, node.values()))
        return isinstance(node, list) and any(map(found, node))

    return found(model.model_json_schema())
