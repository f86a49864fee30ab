-- Approvers as records (aios/approvals/approvers.py): who may be notified and decide through a
-- signed link. `secret` signs that approver's links (HMAC-SHA256); it is stored sealed with the
-- project's payload keyring (`sealed_by` names the key; '' means payload encryption is off).
CREATE TABLE IF NOT EXISTS aios_approvers (
    name         TEXT PRIMARY KEY,
    email        TEXT,
    webhook      TEXT,
    quiet_hours  TEXT,        -- "22:00-07:00" in UTC, or NULL: notify at any hour
    secret       BYTEA NOT NULL,
    sealed_by    TEXT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Every signed link that was used, once: a second use finds its row and is refused.
CREATE TABLE IF NOT EXISTS aios_used_links (
    token_id   TEXT PRIMARY KEY,
    run_id     TEXT NOT NULL,
    step       INTEGER NOT NULL,
    verdict    TEXT NOT NULL,
    approver   TEXT NOT NULL,
    used_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- The inbox reads runs by what they wait for, and the ledger's unknown effects.
CREATE INDEX IF NOT EXISTS aios_runs_status_idx ON aios_runs (status, updated_at);
CREATE INDEX IF NOT EXISTS aios_effects_unknown_idx ON aios_effects (updated_at) WHERE state = 'unknown';

-- The inbox reads a schedule's refused fires (aios/inbox/fires.py): few rows, so a partial index.
CREATE INDEX IF NOT EXISTS aios_audit_skipped_idx ON aios_audit (actor, id) WHERE outcome = 'skipped';
