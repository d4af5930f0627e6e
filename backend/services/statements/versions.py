"""If-Match on a write: the versions it accepts (`Expected`), checked in the write's own WHERE,
so a stale write matches no row instead of reading first. Every service's version check."""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, any_, bindparam, literal
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.sql.elements import ColumnElement

# The versions an If-Match accepts; None: no condition.
Expected = frozenset[int] | None

# The versions of a statement built once (cached): bound as `versions=sorted(expected)`.
VERSIONS = bindparam("versions", type_=ARRAY(BigInteger))


def version_in(version: ColumnElement[Any], expected: Expected) -> tuple[ColumnElement[bool], ...]:
    """`version` is one of `expected` (none without If-Match), as `= ANY(array)`: one parameter."""
    if expected is None:
        return ()
    return (version == any_(literal(sorted(expected), ARRAY(BigInteger))),)
