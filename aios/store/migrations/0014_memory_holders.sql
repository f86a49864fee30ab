-- Where the embedded memory store was last held (aios/memory/holder.py): a worker that takes
-- the store over from another machine or data directory rebuilds its index from Postgres.
CREATE TABLE IF NOT EXISTS aios_memory_holders (
    store text PRIMARY KEY,
    place text NOT NULL,
    taken_at timestamptz NOT NULL DEFAULT now()
);
