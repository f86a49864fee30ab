-- An effect whose outcome reconciliation could not learn is settled by a person (`aios effects
-- resolve`): the ledger says who, when and why, next to the outcome. NULL for every effect
-- settled by its call, a lookup or a webhook.
ALTER TABLE aios_effects ADD COLUMN IF NOT EXISTS resolved_by TEXT;
ALTER TABLE aios_effects ADD COLUMN IF NOT EXISTS resolved_at TIMESTAMPTZ;
ALTER TABLE aios_effects ADD COLUMN IF NOT EXISTS resolution_note TEXT;
