-- The effect ledger: intent before the call, outcome after (DESIGN.md decision 4).
CREATE TABLE IF NOT EXISTS aios_effects (
    effect_key    TEXT PRIMARY KEY,
    run_id        TEXT NOT NULL,
    action        TEXT NOT NULL,
    connector     TEXT NOT NULL,
    request_hash  TEXT NOT NULL,
    state         TEXT NOT NULL CHECK (state IN ('pending', 'succeeded', 'failed', 'unknown')),
    response      JSONB,
    error         TEXT NOT NULL DEFAULT '',
    attempts      INTEGER NOT NULL DEFAULT 1,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS aios_effects_run_idx ON aios_effects (run_id, created_at);

-- Token and cost reservations, one per run and turn (DESIGN.md decision 8).
CREATE TABLE IF NOT EXISTS aios_budget_reservations (
    reservation_key  TEXT PRIMARY KEY,
    agent            TEXT NOT NULL,
    run_id           TEXT NOT NULL,
    day              DATE NOT NULL,
    tokens           INTEGER NOT NULL CHECK (tokens >= 0),
    cost             NUMERIC(14, 6) NOT NULL CHECK (cost >= 0),
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS aios_budget_agent_day_idx ON aios_budget_reservations (agent, day);
CREATE INDEX IF NOT EXISTS aios_budget_run_idx ON aios_budget_reservations (run_id);

-- Concurrency slots: at most max_concurrent_runs rows per agent.
CREATE TABLE IF NOT EXISTS aios_run_slots (
    agent        TEXT NOT NULL,
    run_id       TEXT NOT NULL,
    acquired_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (agent, run_id)
);

-- The kill switch per agent; runs started while paused start paused.
CREATE TABLE IF NOT EXISTS aios_agent_controls (
    agent       TEXT PRIMARY KEY,
    paused      BOOLEAN NOT NULL,
    changed_by  TEXT NOT NULL,
    changed_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Canary rollouts: a candidate manifest takes a share of runs, or shadows them.
CREATE TABLE IF NOT EXISTS aios_rollouts (
    agent              TEXT PRIMARY KEY,
    candidate          JSONB NOT NULL,
    candidate_version  TEXT NOT NULL,
    share              DOUBLE PRECISION NOT NULL CHECK (share >= 0 AND share <= 1),
    mode               TEXT NOT NULL CHECK (mode IN ('live', 'shadow')),
    created_at         TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Working memory: each run's structured state, mirrored after every step.
CREATE TABLE IF NOT EXISTS aios_runs (
    run_id            TEXT PRIMARY KEY,
    agent             TEXT NOT NULL,
    manifest_version  TEXT NOT NULL,
    mode              TEXT NOT NULL,
    status            TEXT NOT NULL,
    paired_with       TEXT,
    task              JSONB NOT NULL,
    state             JSONB NOT NULL,
    started_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at        TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS aios_runs_agent_idx ON aios_runs (agent, started_at);
CREATE INDEX IF NOT EXISTS aios_runs_paired_idx ON aios_runs (paired_with);
