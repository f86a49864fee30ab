-- The audit trail: one row per step and per decision, append-only.
CREATE TABLE IF NOT EXISTS aios_audit (
    id           BIGSERIAL PRIMARY KEY,
    event_key    TEXT NOT NULL UNIQUE,  -- idempotency: a retried activity writes the row once
    run_id       TEXT NOT NULL,
    step         TEXT NOT NULL,
    actor        TEXT NOT NULL,
    action       TEXT NOT NULL,
    outcome      TEXT NOT NULL,
    rationale    TEXT NOT NULL DEFAULT '',
    detail       JSONB NOT NULL DEFAULT '{}'::jsonb,
    trace_id     TEXT,
    recorded_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS aios_audit_run_idx ON aios_audit (run_id, id);
