"""Event delivery: `python -m backend worker` relays the outbox (`task_events`) to the sinks.

outbox.py   every statement on `task_events` the worker and the `events` commands run
sinks.py    Dapr pub/sub and Standard Webhooks: the event bodies and the HTTP calls
worker.py   the loop: fire due reminders, claim a batch, deliver, record, prune
health.py   the worker's /metrics and /health/ready

Its commands, `worker` and `events status|dead|requeue`, are in backend/cli/events.py.
"""
