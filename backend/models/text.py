"""The text rule (specs/api-contract.md, "Text rule") for every human-facing string, checked
after pydantic's own constraints, with a `pattern` built from the same character classes, so a
schema-valid value is never refused (tests/test_openapi_rules.py compares the two).
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
    """A character-class body valid for Python, Rust's `regex` and ECMA-262 `u`: BMP code points
    as `\\uXXXX`, astral ones as themselves (no escape is common to all three)."""

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
# Unicode's Default_Ignorable_Code_Point (rendered as nothing; not in `unicodedata`), whole
# blocks as Unicode lists them, so it holds for characters assigned later.
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

# The OpenAPI statement of each kind (single-line: trimmed, then a visible character).
SINGLE_LINE_PATTERN = (
    f"^[{WHITESPACE_CLASS}]*[^{_SINGLE_LINE_REFUSED}]*{_VISIBLE}"
    f"[^{_SINGLE_LINE_REFUSED}]*[{WHITESPACE_CLASS}]*$"
)
MULTI_LINE_PATTERN = f"^[^{_MULTI_LINE_REFUSED}]*$"
MULTI_LINE_VISIBLE_PATTERN = (
    f"^[{WHITESPACE_CLASS}]*[^{_MULTI_LINE_REFUSED}]*{_VISIBLE}"
    f"[^{_MULTI_LINE_REFUSED}]*[{WHITESPACE_CLASS}]*$"
)

_SINGLE_LINE_BAD = re.compile(f"[{_SINGLE_LINE_REFUSED}]")
_MULTI_LINE_BAD = re.compile(f"[{_MULTI_LINE_REFUSED}]")
_HAS_VISIBLE = re.compile(_VISIBLE)
_WHY = [(re.compile(f"[{chars}]"), reason) for chars, reason in _REFUSED]


def nfc(value: str) -> str:
    """The stored form of text: NFC (search terms too)."""
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
    """The rule on one trimmed value; `visible`: it must keep a visible character."""
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
    """`check_text` after the constrained string it follows (its `max_length`), and its pattern."""

    def __init__(self, *, multi_line: bool, visible: bool = False) -> None:
        self.multi_line = multi_line
        self.visible = visible or not multi_line
        multi = MULTI_LINE_VISIBLE_PATTERN if visible else MULTI_LINE_PATTERN
        self.pattern = multi if multi_line else SINGLE_LINE_PATTERN

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        schema = handler(source)
        max_length = schema.get("max_length")
        # Either mistake would silently make schema and API disagree.
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
        json_schema["pattern"] = self.pattern
        return json_schema


# After `StringConstraints(strip_whitespace=True, min_length=1, max_length=N)`: a title, a tag.
SingleLineText = _HumanText(multi_line=False)
# After `StringConstraints(max_length=N)`: a description (may be blank; tab and line breaks).
MultiLineText = _HumanText(multi_line=True)
# Multi-line text that must keep a visible character (a comment), trimmed.
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
    """Whether `model` (a body, a tool's arguments) has a field under the text rule at any
    depth, read from its JSON Schema (the protocol-text guard needs no door for one without)."""

    def found(node: Any) -> bool:
        if isinstance(node, dict):
            pattern = node.get("pattern")  # a property named "pattern" is a dict
            if isinstance(pattern, str) and pattern in TEXT_RULE_PATTERNS:
                return True
            return any(map(found, node.values()))
        return isinstance(node, list) and any(map(found, node))

    return found(model.model_json_schema())
