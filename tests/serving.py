"""Test-owned HTTP servers (a fake model, a JWKS, an event sink, a static site) on a thread."""

from __future__ import annotations

import threading
from socketserver import BaseServer

# `serve_forever` looks for a shutdown once per poll: at its default (0.5 s) every test that
# stops a server waited up to half a second for it.
POLL_SECONDS = 0.02


def serve_in_thread(server: BaseServer) -> threading.Thread:
    """Serve `server` on a daemon thread until its `shutdown()`."""
    thread = threading.Thread(target=server.serve_forever, args=(POLL_SECONDS,), daemon=True)
    thread.start()
    return thread
