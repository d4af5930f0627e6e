"""The chat stack loads on first use, not at import (issue 50).

The OpenAI Agents SDK, ChatKit and the `openai` client take seconds to import, and most
processes never chat: `migrate`, `token`, the worker, a server without CHAT_* settings. So
nothing imports them at import time (`tests/test_imports.py` says so): a chat turn imports the
agent when it first runs (`turn.run`), the model client when it is first built
(`routes/chat.py`, `chat_model`) and ChatKit on the first `POST /api/chatkit`.

A server with chat configured loads them as it starts, in a thread of its own (`Preload`, from
the app's lifespan), so that the first turn does not pay for it; `/health/ready` answers 503
until that has finished, and a replica takes no traffic before its chat can answer. `/health`
(liveness) answers meanwhile.
"""

from __future__ import annotations

import importlib
import logging
import threading

log = logging.getLogger(__name__)

# What a turn and ChatKit import on first use (each brings the SDKs it needs).
MODULES = ("backend.chat.provider", "backend.chat.agent", "backend.chat.chatkit_server")


def load() -> None:
    """Import the chat stack (the import system makes a second call, or a concurrent
    first use, wait for the first)."""
    for name in MODULES:
        importlib.import_module(name)


class Preload:
    """The chat stack loading in a daemon thread, started by the app's lifespan."""

    def __init__(self) -> None:
        self._done = threading.Event()
        self.failed: BaseException | None = None
        threading.Thread(target=self._run, name="chat-stack-preload", daemon=True).start()

    def _run(self) -> None:
        try:
            load()
        except BaseException as exc:  # an install without the chat SDKs: never ready
            log.exception("the chat stack failed to load")
            self.failed = exc
        finally:
            self._done.set()

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        return self._done.wait(timeout)
