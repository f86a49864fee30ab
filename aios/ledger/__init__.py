"""Postgres ledgers: effects, budgets, concurrency slots, agent controls, run mirrors."""
