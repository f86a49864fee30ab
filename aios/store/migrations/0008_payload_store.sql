-- Large Temporal payloads (DESIGN.md decision 9): the data converter's ExternalStorage hands any
-- payload over AIOS_PAYLOAD_OFFLOAD_THRESHOLD bytes to aios/payload_store.py, which keeps it here
-- and leaves only a reference to its hash in the workflow's history. See aios/payload_store.py.
--
-- `data` is the serialized Payload exactly as the codec produced it: ciphertext when payload
-- encryption is on. A blob is named by the SHA-256 of those bytes, so writing it again changes
-- nothing (ON CONFLICT DO NOTHING) and a reader can check what it got.
CREATE TABLE IF NOT EXISTS aios_payloads (
    sha256      BYTEA PRIMARY KEY CHECK (octet_length(sha256) = 32),
    data        BYTEA NOT NULL,
    size_bytes  INTEGER NOT NULL CHECK (size_bytes = octet_length(data)),
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS aios_payloads_created_idx ON aios_payloads (created_at);

-- Who stored each blob. One blob may serve several workflows (same bytes, same hash), so
-- retention and forgetting delete a workflow's rows here and then only the blobs nobody else
-- holds. No ON DELETE CASCADE on purpose: a blob deleted while another writer is claiming it
-- fails that writer's foreign key check (and its workflow task retries) instead of losing it.
-- owner_kind is 'workflow' (id = workflow id), 'activity' (a standalone activity's id) or
-- 'unknown' (the SDK named no target; namespace and id are then '').
CREATE TABLE IF NOT EXISTS aios_payload_owners (
    namespace       TEXT NOT NULL,
    owner_kind      TEXT NOT NULL CHECK (owner_kind IN ('workflow', 'activity', 'unknown')),
    owner_id        TEXT NOT NULL,
    sha256          BYTEA NOT NULL REFERENCES aios_payloads (sha256),
    first_stored_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (namespace, owner_kind, owner_id, sha256)
);
CREATE INDEX IF NOT EXISTS aios_payload_owners_sha256_idx ON aios_payload_owners (sha256);
