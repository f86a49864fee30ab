-- Per-subject keys (aios/subjects.py): what an agent run records about its subject (audit
-- detail and rationale, effect responses and errors, webhook events) is sealed with the key
-- of its (agent, subject). `aios memory forget` deletes the key, and with it every sealed
-- value becomes unreadable, while the rows (and the audit chain over their ciphertext) stay.
--
-- `wrapped` is the key sealed with the project's payload key named by `wrapped_by` (AES-GCM,
-- nonce first), so a copy of the database alone opens nothing; '' means payload encryption is
-- off and the key is stored as is (forgetting still works: the only copy goes).
CREATE TABLE IF NOT EXISTS aios_subject_keys (
    key_id      TEXT PRIMARY KEY,
    agent       TEXT NOT NULL,
    subject     TEXT NOT NULL,
    wrapped     BYTEA NOT NULL,
    wrapped_by  TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (agent, subject)
);
CREATE INDEX IF NOT EXISTS aios_subject_keys_subject_idx ON aios_subject_keys (subject);
