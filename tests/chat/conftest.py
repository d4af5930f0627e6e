"""Chat fixtures: a fake model server (tests/chat/fake_model.py) and apps that use it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from backend.config import Settings
from backend.main import create_app
from tests.chat import fake_model
from tests.chat.fake_model import FakeModel


@pytest.fixture
def model() -> Iterator[FakeModel]:
    yield from fake_model.serve()


def chat_settings(settings: Settings, fake: FakeModel, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "chat_base_url": fake.url,
        "chat_api_key": "test-key",
        "chat_model": "fake-model",
        **overrides,
    }
    return Settings(**{**settings.model_dump(), **values})


@pytest.fixture
def chat_app(settings: Settings, model: FakeModel) -> Callable[..., TestClient]:
    """A TestClient over a new app on the test database whose chat model is `model`
    (each call a new app instance: a restart, as far as the app can tell)."""
    opened: list[TestClient] = []

    def build(**overrides: Any) -> TestClient:
        client = TestClient(
            create_app(chat_settings(settings, model, **overrides)),
            raise_server_exceptions=False,
        )
        client.__enter__()
        opened.append(client)
        return client

    yield build  # type: ignore[misc]
    for client in opened:
        client.__exit__(None, None, None)


@pytest.fixture
def chat(chat_app: Callable[..., TestClient]) -> TestClient:
    return chat_app()
