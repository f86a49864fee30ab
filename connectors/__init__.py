"""Adapters to external systems. They import nothing from the rest of aios."""
