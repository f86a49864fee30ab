-- Memory compaction (aios/memory/compaction.py, workflows/compaction.py): a summary replaces a
-- subject's old memories only when every source is still retrievable from it.
--
-- Archived originals stay in aios_memories (undo restores them); their vectors leave the store,
-- so recall no longer finds them. `archived_at` is NULL for a live memory.
ALTER TABLE aios_memories ADD COLUMN IF NOT EXISTS archived_at TIMESTAMPTZ;
ALTER TABLE aios_memories ADD COLUMN IF NOT EXISTS compaction_id UUID;
CREATE INDEX IF NOT EXISTS aios_memories_compaction_idx ON aios_memories (compaction_id)
    WHERE compaction_id IS NOT NULL;

-- One row per compaction attempt, passed or not: what was read, what was written, the scores.
CREATE TABLE IF NOT EXISTS aios_memory_compactions (
    compaction_id  UUID PRIMARY KEY,
    agent          TEXT NOT NULL,
    subject        TEXT NOT NULL,
    status         TEXT NOT NULL CHECK (status IN ('archived', 'failed_check', 'undone')),
    source_ids     UUID[] NOT NULL,
    summary_id     UUID,                     -- NULL when the check failed (nothing was written)
    summary_text   TEXT NOT NULL,
    summariser     TEXT NOT NULL,            -- the model, or 'offline-extractive'
    threshold      REAL NOT NULL,
    scores         JSONB NOT NULL,           -- [{memory_id, similarity, passed}]
    workflow_id    TEXT,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    undone_at      TIMESTAMPTZ
);
CREATE INDEX IF NOT EXISTS aios_memory_compactions_subject_idx
    ON aios_memory_compactions (agent, subject, created_at);
