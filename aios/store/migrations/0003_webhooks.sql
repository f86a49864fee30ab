-- Webhook events, de-duplicated by the sender's event id (DESIGN.md decision 4): a redelivered
-- event is dropped at the INSERT (ON CONFLICT DO NOTHING). An event kept here is also how a
-- reconciler that starts (or polls) after the event arrived still finds it.
CREATE TABLE IF NOT EXISTS aios_webhook_events (
    event_id     TEXT PRIMARY KEY,
    source       TEXT NOT NULL,
    effect_key   TEXT NOT NULL,
    received_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    payload      JSONB NOT NULL
);
CREATE INDEX IF NOT EXISTS aios_webhook_events_effect_idx ON aios_webhook_events (effect_key, received_at);
