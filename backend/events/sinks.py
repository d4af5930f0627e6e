"""Where outbox events go: Dapr's pub/sub API and Standard Webhooks, and `Fanout`, the engine's
adapter that sends one leased event to each; a task is rendered by the API's own `TaskPublic`,
so a consumer sees what `GET /api/tasks/{id}` shows.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import CancelledError, Executor, Future
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import cache
from typing import Any, Protocol

from standardwebhooks.webhooks import Webhook

from backend.config import Settings
from backend.events.bounds import ANSWER_MAX_BYTES, SEND_ERRORS, Answer, HttpClient
from backend.events.engine import DEFERRED, DELIVERED, RETRY, Outcome, Receivers, receiver_share
from backend.events.health import WorkerMetrics
from backend.models import TaskPublic, task_children
from backend.models.task_event import REMINDER
from backend.models.task_list import ListData

logger = logging.getLogger(__name__)


class EventRow(Protocol):
    id: int
    event_id: Any  # uuid.UUID
    user_id: str
    task_id: int | None
    list_id: int | None
    type: str
    task: dict[str, Any] | None
    list: dict[str, Any] | None
    object: dict[str, Any] | None
    actor_id: str | None
    changes: dict[str, Any] | None
    occurred_at: datetime


class DeliveryFailed(Exception):
    """The sink did not accept the event (transport error, timeout or a non-2xx answer)."""


def _instant(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def is_list_event(row: EventRow) -> bool:
    """An event of a list, its members, invitations or its tasks' children: to the list topic,
    its webhook `type` its own (`member.added`, ...)."""
    return row.task_id is None or row.type.split(".", 1)[0] in _child_fields()


# The stored row's fields each kind of event publishes (never an invitation's token hash,
# which the database does not record).
_OBJECT_FIELDS = {
    "member": ("user_id", "role", "joined_at"),
    "invitation": ("id", "list_id", "role", "email", "invited_by", "created_at", "expires_at"),
}


@cache
def _child_fields() -> dict[str, tuple[str, ...] | None]:
    """Each declared child's event noun and the fields its events publish: its public schema's,
    else None (the stored row but its space and list)."""
    return {
        child.snake: None if child.public is None else tuple(child.public.model_fields)
        for child in task_children.CHILDREN
        if child.events
    }


def _optional(row: EventRow, name: str) -> Any:
    """A column added by migration 0030 (`object`, `actor_id`, `changes`): None where a
    record was read without it (a tool's own SELECT of the columns it knew)."""
    return getattr(row, name, None)


def _stored_instant(value: Any) -> Any:
    """A timestamp as the database's JSON has it (`...+00:00`), as the API writes them."""
    if isinstance(value, str) and value.endswith("+00:00"):
        return _instant(datetime.fromisoformat(value))
    return value


def _object_body(row: EventRow, body: dict[str, Any]) -> None:
    """A membership's, invitation's or task's child's event: the row's public fields (a
    membership's member as `user_id`), under its kind's name (a child's noun)."""
    kind = row.type.split(".", 1)[0]
    stored = dict(row.object or {})
    if kind == "member":
        stored["user_id"] = stored.get("member_id")
    children = _child_fields()
    if kind in children:
        # The feed's `child` (backend/models/change.py), from the same row.
        body["task_id"] = row.task_id
        body["child"] = {"kind": kind, "id": stored.get("id")}
    body["list_id"] = row.list_id
    fields = _OBJECT_FIELDS.get(kind) or children.get(kind)
    if fields is None:
        fields = tuple(name for name in stored if name not in ("user_id", "list_id"))
    body[kind] = {name: _stored_instant(stored.get(name)) for name in fields}


def event_body(row: EventRow) -> dict[str, Any]:
    """The published event: a Task Event, a List Event, or a Reminder Event (whose body the
    database built when it fired), each with its `event_id`."""
    if row.type == REMINDER:
        return {**(row.task or {}), "event_id": str(row.event_id)}
    body: dict[str, Any] = {"event_id": str(row.event_id), "event_type": row.type}
    if _optional(row, "object") is not None:
        _object_body(row, body)
    elif is_list_event(row):
        stored = None if row.list is None else ListData.model_validate(row.list)
        body["list_id"] = row.list_id
        body["list_data"] = None if stored is None else stored.model_dump(mode="json")
    else:
        task = None if row.task is None else TaskPublic.from_stored(row.task)
        body["task_id"] = row.task_id
        body["task_data"] = None if task is None else task.model_dump(mode="json")
    return {
        **body,
        "changes": _optional(row, "changes"),
        "actor_id": _optional(row, "actor_id"),
        "user_id": row.user_id,
        "timestamp": _instant(row.occurred_at),
    }


def _deliver(send: Callable[[], Answer]) -> None:
    """Send; a transport error or a non-2xx answer is `DeliveryFailed`."""
    try:
        answer = send()
    except SEND_ERRORS as exc:
        raise DeliveryFailed(f"{type(exc).__name__}: {exc}") from exc
    if not 200 <= answer.status_code < 300:
        more = f" (answer cut at {ANSWER_MAX_BYTES} bytes)" if answer.cut else ""
        said = answer.head.decode(errors="replace")[:200]
        raise DeliveryFailed(f"HTTP {answer.status_code}: {said}{more}")


class Sink(Protocol):
    @property
    def name(self) -> str: ...

    def send(self, client: HttpClient, row: EventRow, body: dict[str, Any]) -> None: ...


@dataclass(frozen=True)
class DaprSink:
    """`POST {endpoint}/v1.0/publish/{pubsub}/{topic}`; an event whose topic is None is not
    this sink's to publish: accepted without a call."""

    endpoint: str
    pubsub: str
    task_topic: str
    reminder_topic: str | None
    token: str | None
    name: str = "dapr"
    list_topic: str | None = "list-events"

    def topic(self, row: EventRow) -> str | None:
        if row.type == REMINDER:
            return self.reminder_topic
        if is_list_event(row):
            return self.list_topic
        return self.task_topic

    def send(self, client: HttpClient, row: EventRow, body: dict[str, Any]) -> None:
        topic = self.topic(row)
        if topic is None:
            return
        url = f"{self.endpoint}/v1.0/publish/{self.pubsub}/{topic}"
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["dapr-api-token"] = self.token
        content = json.dumps(body, separators=(",", ":")).encode()
        _deliver(lambda: client.post(url, headers, content))


@cache
def _signer(secret: str) -> Webhook:
    return Webhook(secret)


@dataclass(frozen=True)
class WebhookSink:
    """A Standard Webhooks POST: `{"type", "timestamp", "data"}`, signed with the target's
    secret (`webhook-id` is the event id, for receivers to de-duplicate)."""

    url: str
    secret: str
    name: str

    def send(self, client: HttpClient, row: EventRow, body: dict[str, Any]) -> None:
        now = datetime.now(UTC)
        # A reminder's and a list's own types as they are; a task change's as `task.<type>`.
        own = row.type == REMINDER or is_list_event(row)
        kind = row.type if own else f"task.{row.type}"
        payload = json.dumps(
            {"type": kind, "timestamp": _instant(row.occurred_at), "data": body},
            separators=(",", ":"),
        )
        event_id = str(row.event_id)
        headers = {
            "content-type": "application/json",
            "webhook-id": event_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": _signer(self.secret).sign(event_id, now, payload),
        }
        _deliver(lambda: client.post(self.url, headers, payload.encode()))


class Fanout:
    """The outbox's sink adapter: one leased event to every sink it may go to (`sendable`)
    that has not accepted it, each call at once (the first in the row's thread, the others
    in `calls`) within its own deadline, so a failing sink keeps no other waiting; each
    sink a receiver with a fair share of `parallel` (`engine.receiver_share`). Deferred when
    a sink was not called."""

    def __init__(
        self,
        sinks: Sequence[Sink],
        client: HttpClient,
        settings: Settings,
        metrics: WorkerMetrics,
        parallel: int,
        calls: Executor,
    ) -> None:
        self.sinks = tuple(sinks)
        self._client = client
        self._metrics = metrics
        self._calls = calls
        window = settings.event_batch_size
        self.receivers = Receivers(receiver_share(parallel, window, len(self.sinks)))

    def ready(self) -> list[str] | None:
        """The sinks with room for a call, or None when there is no sink at all."""
        if not self.sinks:
            return None
        busy = set(self.receivers.busy())
        return [sink.name for sink in self.sinks if sink.name not in busy]

    def send(self, row: Any) -> Outcome:
        accepted = list(row.delivered_to)
        missing = [sink for sink in self.sinks if sink.name not in accepted]
        if not missing:
            return Outcome(DELIVERED, accepted=accepted)  # a worker with no sink: all done
        sendable = getattr(row, "sendable", None)
        allowed = {sink.name for sink in missing} if sendable is None else set(sendable)
        try:
            body = event_body(row)
        except Exception as exc:  # a record no longer renderable must fail alone
            logger.exception("event %s cannot be rendered", row.event_id)
            return Outcome(RETRY, f"cannot render: {type(exc).__name__}", sink="render")
        entered = [(s, self.receivers.enter(s.name)) for s in missing if s.name in allowed]
        called = [(sink, began) for sink, began in entered if began is not None]
        later: list[tuple[Sink, float, Future[str | None]]] = []
        for sink, began in called[1:]:
            try:
                later.append((sink, began, self._calls.submit(self._call, sink, began, row, body)))
            except RuntimeError:  # the pool is shut down: the worker stops
                self.receivers.leave(sink.name, began, ok=False)
        results = [(sink, self._call(sink, began, row, body)) for sink, began in called[:1]]
        for sink, began, future in later:
            try:
                results.append((sink, future.result()))
            except CancelledError:  # abandoned with the worker: not called
                self.receivers.leave(sink.name, began, ok=False)
        errors = [(sink.name, error) for sink, error in results if error is not None]
        accepted += [sink.name for sink, error in results if error is None]
        if errors:
            text = "; ".join(error for _, error in errors)
            return Outcome(RETRY, text, sink=errors[-1][0], accepted=accepted)
        if len(results) < len(missing):
            return Outcome(DEFERRED, accepted=accepted)
        return Outcome(DELIVERED, accepted=accepted)

    def _call(self, sink: Sink, began: float, row: Any, body: dict[str, Any]) -> str | None:
        """One sink's call within its deadline, its receiver's place given back: None, or why
        it failed."""
        ok = False
        try:
            sink.send(self._client, row, body)
            ok = True
        except Exception as exc:
            if not isinstance(exc, DeliveryFailed):  # a bug, not the receiver: say where
                logger.exception("event %s: sending to %s failed", row.event_id, sink.name)
            self._metrics.failures.labels(sink.name).inc()
            return f"{sink.name}: {exc}"
        finally:
            self.receivers.leave(sink.name, began, ok)
        self._metrics.delivered.labels(sink.name).inc()
        age = (datetime.now(UTC) - row.occurred_at).total_seconds()
        self._metrics.latency.labels(sink.name).observe(max(age, 0.0))
        return None


def configured_sinks(settings: Settings) -> list[Sink]:
    sinks: list[Sink] = []
    if settings.dapr_http_endpoint is not None:
        api_token = settings.dapr_api_token
        dapr = DaprSink(
            endpoint=str(settings.dapr_http_endpoint).rstrip("/"),
            pubsub=settings.dapr_pubsub_name,
            task_topic=settings.dapr_task_events_topic,
            reminder_topic=settings.dapr_reminders_topic,
            list_topic=settings.dapr_list_events_topic,
            token=None if api_token is None else api_token.get_secret_value(),
        )
        sinks.append(dapr)
        updates = settings.dapr_task_updates_topic
        if updates is not None:
            # Real-time sync: every change, not reminders, on one topic; a sink of its own, so
            # a failure on one topic never re-publishes the event on the other.
            one = replace(dapr, task_topic=updates, list_topic=updates, reminder_topic=None)
            sinks.append(replace(one, name=f"dapr:{updates}"))
    for target in settings.event_webhooks:
        url, secret = str(target.url), target.secret.get_secret_value()
        sinks.append(WebhookSink(url=url, secret=secret, name=target.name))
    return sinks
