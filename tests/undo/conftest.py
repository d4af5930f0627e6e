"""Fixtures of the undo tests: the sharing tests' list and grant, and a third account."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.conftest import Account
from tests.sharing.conftest import grant, shared_list

__all__ = ["carol", "grant", "shared_list"]


@pytest.fixture
def carol(register: Callable[..., Account]) -> Account:
    return register("carol@example.com")
