"""Event delivery: `python -m backend worker` runs the delivery engine for every sink.

engine.py      the one engine: a lane per queue (lease, send with nothing held, record), and
               the one rule for attempts, backoff and dead letters
outbox.py      the outbox queue: every statement on `task_events` delivery runs
deliveries.py  the reminder deliveries queue: every statement on `reminder_deliveries`
sinks.py       Dapr pub/sub and Standard Webhooks, and `Fanout`, their adapter
notify.py      Web Push and email (reminders, address confirmations), and `Channels`
bounds.py      every send's deadline and the cap on an answer read
worker.py      the loop: fire due reminders, pump the lanes, prune
health.py      the worker's /metrics and /health/ready

Its commands, `worker` and `events status|dead|requeue`, are in backend/cli/events.py.
"""
