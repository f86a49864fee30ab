-- Circuit breaker state as each worker last saw it, for `aios status`.
CREATE TABLE IF NOT EXISTS aios_connector_health (
    worker_id             TEXT NOT NULL,
    connector             TEXT NOT NULL,
    state                 TEXT NOT NULL,
    consecutive_failures  INTEGER NOT NULL,
    window_calls          INTEGER NOT NULL,
    window_failures       INTEGER NOT NULL,
    times_opened          INTEGER NOT NULL,
    reported_at           TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (worker_id, connector)
);
