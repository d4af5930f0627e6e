"""The chat model: any provider that speaks the OpenAI Chat Completions protocol (OpenAI,
Gemini's OpenAI-compatible URL, OpenRouter, DeepSeek, a local Ollama), from the CHAT_*
settings.

Nothing leaves the process but the model calls (the SDK's tracing is off), and the client makes
no retries of its own: a turn's wait is bounded by CHAT_TIMEOUT_SECONDS; a retry is the client's.
"""

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
