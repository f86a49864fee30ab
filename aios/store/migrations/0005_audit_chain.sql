-- The audit trail becomes append-only and tamper-evident (see aios/audit.py for the chain).
--
-- One global hash chain: row n stores prev_hash = row_hash of row n-1 and
-- row_hash = sha256(prev_hash || canonical JSON of its content), computed by aios.audit.append
-- under a transaction advisory lock. The database enforces what it can without knowing the
-- canonical form: rows are never updated, deleted or truncated, and each new row must extend
-- the chain's head exactly (the next position, the head's hash).

ALTER TABLE aios_audit
    ADD COLUMN IF NOT EXISTS input_digest      TEXT,              -- sha256 of the canonical detail
    ADD COLUMN IF NOT EXISTS confidence        DOUBLE PRECISION,  -- the model's, on proposals
    ADD COLUMN IF NOT EXISTS approver          TEXT,              -- who decided a gated step
    ADD COLUMN IF NOT EXISTS manifest_version  TEXT,
    ADD COLUMN IF NOT EXISTS chain_seq         BIGINT,            -- 1, 2, 3, ... without gaps
    ADD COLUMN IF NOT EXISTS prev_hash         TEXT,
    ADD COLUMN IF NOT EXISTS row_hash          TEXT;

CREATE UNIQUE INDEX IF NOT EXISTS aios_audit_chain_idx ON aios_audit (chain_seq);

-- NOT VALID: rows written before this migration stay as they were (verify counts them as
-- predating the chain); every row written from now on must carry its chain fields.
ALTER TABLE aios_audit DROP CONSTRAINT IF EXISTS aios_audit_chained;
ALTER TABLE aios_audit ADD CONSTRAINT aios_audit_chained CHECK (
    chain_seq IS NOT NULL AND prev_hash IS NOT NULL AND row_hash IS NOT NULL AND input_digest IS NOT NULL
) NOT VALID;

CREATE OR REPLACE FUNCTION aios_audit_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'aios_audit is append-only: % is refused', TG_OP
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'audit rows are evidence; record a new event instead of changing an old one';
END;
$$;

-- A new row must extend the head: a writer that skipped the lock, or computed its position
-- from a stale head, fails loudly here (or on the unique index) instead of forking the chain.
CREATE OR REPLACE FUNCTION aios_audit_check_link() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    head_seq   BIGINT;
    head_hash  TEXT;
BEGIN
    SELECT chain_seq, row_hash INTO head_seq, head_hash
    FROM aios_audit WHERE chain_seq IS NOT NULL ORDER BY chain_seq DESC LIMIT 1;
    IF NEW.chain_seq IS DISTINCT FROM coalesce(head_seq, 0) + 1
       OR NEW.prev_hash IS DISTINCT FROM coalesce(head_hash, repeat('0', 64)) THEN
        RAISE EXCEPTION 'aios_audit row % does not extend the chain (head is #%)',
            NEW.event_key, coalesce(head_seq, 0)
            USING ERRCODE = 'integrity_constraint_violation',
                  HINT = 'write audit rows through aios.audit.append, which takes the chain lock';
    END IF;
    RETURN NEW;
END;
$$;

DROP TRIGGER IF EXISTS aios_audit_append_only ON aios_audit;
CREATE TRIGGER aios_audit_append_only BEFORE UPDATE OR DELETE ON aios_audit
    FOR EACH ROW EXECUTE FUNCTION aios_audit_refuse_change();

DROP TRIGGER IF EXISTS aios_audit_no_truncate ON aios_audit;
CREATE TRIGGER aios_audit_no_truncate BEFORE TRUNCATE ON aios_audit
    FOR EACH STATEMENT EXECUTE FUNCTION aios_audit_refuse_change();

DROP TRIGGER IF EXISTS aios_audit_extends_chain ON aios_audit;
CREATE TRIGGER aios_audit_extends_chain BEFORE INSERT ON aios_audit
    FOR EACH ROW EXECUTE FUNCTION aios_audit_check_link();
