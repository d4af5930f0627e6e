"""The chat model: any provider of the OpenAI Chat Completions protocol, from CHAT_* settings.
Nothing leaves the process but the model calls (no tracing), and no retries: a turn's wait is
bounded by CHAT_TIMEOUT_SECONDS; a retry is the client's."""

from __future__ import annotations

from agents import OpenAIChatCompletionsModel, set_tracing_disabled
from openai import AsyncOpenAI

from backend.config import Settings
from backend.errors import ChatNotConfigured

# Some local servers (Ollama) take no key; the client library insists on one.
_NO_KEY = "unused"


def build_model(settings: Settings) -> OpenAIChatCompletionsModel:
    """The configured model, on a client of its own (one per app: its connection pool)."""
    if settings.chat_base_url is None or settings.chat_model is None:
        raise ChatNotConfigured()
    set_tracing_disabled(True)
    key = settings.chat_api_key.get_secret_value() if settings.chat_api_key else _NO_KEY
    client = AsyncOpenAI(
        base_url=settings.chat_base_url,
        api_key=key,
        timeout=settings.chat_timeout_seconds,
        max_retries=0,
    )
    return OpenAIChatCompletionsModel(model=settings.chat_model, openai_client=client)
