-- The model-response cache (activities/model_cache.py): one answer per question, served again
-- until it expires. `subject` is the run's data subject, so forgetting a subject deletes the
-- answers given about it whatever the cache's scope.
CREATE TABLE IF NOT EXISTS aios_model_cache (
    cache_key    TEXT PRIMARY KEY,
    agent        TEXT NOT NULL,
    subject      TEXT,
    answer       JSONB NOT NULL,
    tokens       INTEGER NOT NULL CHECK (tokens >= 0),
    hits         INTEGER NOT NULL DEFAULT 0,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at   TIMESTAMPTZ NOT NULL
);
CREATE INDEX IF NOT EXISTS aios_model_cache_subject_idx ON aios_model_cache (subject) WHERE subject IS NOT NULL;
CREATE INDEX IF NOT EXISTS aios_model_cache_expiry_idx ON aios_model_cache (expires_at);

-- A turn answered from the cache is still a row of the budget ledger: it spent nothing, and
-- records what the call it replaced would have cost.
ALTER TABLE aios_budget_reservations
    ADD COLUMN IF NOT EXISTS cached       BOOLEAN NOT NULL DEFAULT false,
    ADD COLUMN IF NOT EXISTS saved_tokens INTEGER NOT NULL DEFAULT 0 CHECK (saved_tokens >= 0),
    ADD COLUMN IF NOT EXISTS saved_cost   NUMERIC(14, 6) NOT NULL DEFAULT 0 CHECK (saved_cost >= 0);
