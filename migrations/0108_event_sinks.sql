-- depends: 0107_entry_in_fewer_statements
-- Issue 90: workers with different sinks lost events. An outbox event was marked delivered
-- once the leasing worker's own sinks had it, and a worker with no sink marked every due event
-- delivered unsent. Each worker now registers the sinks it sends to (a row per worker and
-- sink, its `seen_at` renewed while it runs); an event is delivered only when every sink a
-- live registration names has it (`task_events.delivered_to`), a rolling update's new sink
-- included (specs/events.md, "Workers and their sinks"). Not a user's: no `user_id`.
CREATE TABLE event_sinks (
    worker_id UUID NOT NULL,
    sink TEXT NOT NULL,
    seen_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
    CONSTRAINT pk_event_sinks PRIMARY KEY (worker_id, sink)
);
