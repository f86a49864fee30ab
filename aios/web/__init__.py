"""aios's small HTTP endpoints (webhooks, events): one loopback-first server, routes per room."""
