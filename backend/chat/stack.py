"""The chat stack (the Agents SDK, ChatKit, `openai`: seconds to import) loads on first use,
never at import (`tests/test_imports.py`); a server with chat configured preloads it as it starts
(`Preload`), /health/ready answering 503 until then."""

from __future__ import annotations

import importlib
import logging
import threading

log = logging.getLogger(__name__)

# What a turn and ChatKit import on first use (each brings the SDKs it needs).
MODULES = ("backend.chat.provider", "backend.chat.agent", "backend.chat.chatkit_server")


def load() -> None:
    """Import the chat stack (a concurrent first use waits for the first: the import lock)."""
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
