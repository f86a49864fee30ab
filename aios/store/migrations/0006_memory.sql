-- Long-term memory (DESIGN.md decision 7): documents in Postgres are the source of truth;
-- Qdrant holds a copy of their vectors for search. See aios/memory/ and docs/MEMORY.md.
--
-- The vector is kept here too (float32, little-endian), so that `aios memory reindex` rebuilds
-- Qdrant by copying, without running the embedding model again, and so that a CLI can search
-- exhaustively while a worker holds the embedded store. `indexed` is false from the moment the
-- document is written until its vector is in Qdrant: a crash between the two leaves a row that
-- the store's owner finishes on its next read or write.
CREATE TABLE IF NOT EXISTS aios_memories (
    memory_id     UUID PRIMARY KEY,
    agent         TEXT NOT NULL,
    subject       TEXT NOT NULL DEFAULT '',           -- '' = about no subject in particular
    kind          TEXT NOT NULL,
    text          TEXT NOT NULL,
    tags          TEXT[] NOT NULL DEFAULT '{}',
    importance    REAL NOT NULL CHECK (importance >= 0 AND importance <= 1),
    source_run    TEXT,
    tokens        INTEGER NOT NULL CHECK (tokens > 0),
    content_hash  TEXT NOT NULL,                      -- of text/kind/subject/tags/importance
    embedder      TEXT NOT NULL,                      -- which model made `embedding`
    embedding     BYTEA NOT NULL,
    indexed       BOOLEAN NOT NULL DEFAULT false,     -- the vector is in Qdrant
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS aios_memories_agent_subject_idx ON aios_memories (agent, subject, created_at);
CREATE INDEX IF NOT EXISTS aios_memories_subject_idx ON aios_memories (subject);
CREATE INDEX IF NOT EXISTS aios_memories_run_idx ON aios_memories (source_run);
CREATE INDEX IF NOT EXISTS aios_memories_pending_idx ON aios_memories (updated_at) WHERE NOT indexed;

-- Vectors to delete from Qdrant whose documents are already gone (a forget made while another
-- process held the embedded store); that process deletes them on its next read or write.
CREATE TABLE IF NOT EXISTS aios_memory_tombstones (
    memory_id   UUID PRIMARY KEY,
    deleted_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
