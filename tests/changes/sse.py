"""A Server-Sent Events reader for the live stream's tests: a thread reads one real stream
(httpx, against a real server) and queues each event, so a test waits for the next one with
a deadline, or sees that the server ended the stream."""

from __future__ import annotations

import json
import queue
import threading
from dataclasses import dataclass
from typing import Any

import httpx

END = object()


@dataclass
class Event:
    id: str | None
    data: dict[str, Any]


class Stream:
    def __init__(self, base_url: str, headers: dict[str, str], **params: str) -> None:
        self._events: queue.Queue[Any] = queue.Queue()
        self._client = httpx.Client(base_url=base_url, timeout=httpx.Timeout(5, read=60))
        request = self._client.build_request(
            "GET", "/api/changes/stream", headers=headers, params=params
        )
        self.response = self._client.send(request, stream=True)
        self.comments: list[str] = []
        self.retry: str | None = None
        self.clean = False  # the server ended the response properly (not a broken connection)
        if self.response.status_code == 200:
            threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        fields: dict[str, str] = {}
        try:
            for line in self.response.iter_lines():
                if line.startswith(":"):
                    self.comments.append(line)
                elif line == "":
                    if "data" in fields:
                        self._events.put(Event(fields.get("id"), json.loads(fields["data"])))
                    elif "retry" in fields:
                        self.retry = fields["retry"]
                    fields = {}
                else:
                    name, _, value = line.partition(": ")
                    fields[name] = value
            self.clean = True
        except httpx.HTTPError:
            pass
        finally:
            self._events.put(END)

    def next(self, timeout: float = 5) -> Event:
        """The next event; fails if none came within `timeout` s or the stream ended."""
        item = self._events.get(timeout=timeout)
        assert item is not END, "the stream ended"
        assert isinstance(item, Event)
        return item

    def take(self, count: int, timeout: float = 5) -> list[Event]:
        return [self.next(timeout) for _ in range(count)]

    def ended(self, timeout: float) -> bool:
        """Whether the server ended the stream within `timeout` s (events before it dropped)."""
        try:
            while self._events.get(timeout=timeout) is not END:
                pass
        except queue.Empty:
            return False
        return True

    def until_end(self, timeout: float) -> list[Event]:
        """Every event left until the stream ends (fails if it has not within `timeout` s)."""
        left: list[Event] = []
        while (item := self._events.get(timeout=timeout)) is not END:
            left.append(item)
        return left

    def quiet(self, seconds: float) -> bool:
        """No event within `seconds`."""
        try:
            item = self._events.get(timeout=seconds)
        except queue.Empty:
            return True
        self._events.put(item)
        return False

    def close(self) -> None:
        self.response.close()
        self._client.close()
