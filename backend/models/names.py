"""Names a user gives rows (lists, and any resource of named rows: statements/named_rows.py):
one line of text, trimmed, unique among the user's rows ignoring case."""

from __future__ import annotations

import unicodedata
from typing import Annotated

from pydantic import StringConstraints

from backend.models.text import SINGLE_LINE_RULE, SingleLineText


def name_key(name: str) -> str:
    """What makes two names one (`Straße` and `STRASSE`): the case fold in NFC, `name_key`."""
    return unicodedata.normalize("NFC", name.casefold())


# A name: 1-100 characters, trimmed, one line (the text rule); every named row's.
NAME_MAX_LENGTH = 100
Name = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=NAME_MAX_LENGTH),
    SingleLineText,
]


def name_doc(plural: str) -> str:
    """A name field's description."""
    return (
        f"1-{NAME_MAX_LENGTH} characters, trimmed; {SINGLE_LINE_RULE}. Unique among your {plural}, "
        f"ignoring case (`Groceries` and `groceries` are the same name)."
    )
