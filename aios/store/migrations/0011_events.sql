-- Events (aios/events/): what the outside world or an agent announced, kept before any run
-- starts from it (the outbox), and what each subscriber made of it.
--
-- An event is stored once under its id, whatever the number of deliveries. Each subscriber of
-- its topic gets one delivery row with the run id derived from (event id, agent): the run is
-- started with that id, which Temporal refuses a second time, so a redelivery, a racing
-- sender or a second process starts nothing more. A delivery still `pending` (its sender
-- crashed before dispatching it) is dispatched by the next delivery of the event or by a
-- worker's sweep.
CREATE TABLE IF NOT EXISTS aios_events (
    event_id     TEXT PRIMARY KEY,
    topic        TEXT NOT NULL,
    data         JSONB NOT NULL,
    source       TEXT NOT NULL,
    received_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS aios_events_topic_idx ON aios_events (topic, received_at);

CREATE TABLE IF NOT EXISTS aios_event_deliveries (
    event_id    TEXT NOT NULL REFERENCES aios_events (event_id) ON DELETE CASCADE,
    agent       TEXT NOT NULL,
    run_id      TEXT NOT NULL,
    outcome     TEXT NOT NULL DEFAULT 'pending',
    detail      TEXT NOT NULL DEFAULT '',
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (event_id, agent)
);
CREATE INDEX IF NOT EXISTS aios_event_deliveries_pending_idx
    ON aios_event_deliveries (created_at) WHERE outcome = 'pending';

-- Which agent listens to which topic, as `aios agents apply` last set it (with the manifest
-- as applied, so any process can dispatch an event without the agents directory). The manifest
-- is JSON text, not JSONB: JSONB reorders keys, and the order of a manifest's actions is part of
-- its version and of what the model is offered.
CREATE TABLE IF NOT EXISTS aios_subscriptions (
    agent       TEXT NOT NULL,
    topic       TEXT NOT NULL,
    trigger     JSONB NOT NULL,
    manifest    TEXT NOT NULL,
    applied_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (agent, topic)
);
CREATE INDEX IF NOT EXISTS aios_subscriptions_topic_idx ON aios_subscriptions (topic);
