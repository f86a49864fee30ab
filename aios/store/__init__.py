"""Postgres: the structured truth of aios (audit trail, effects, budgets, documents)."""
