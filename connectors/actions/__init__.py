"""Connectors that perform an agent's actions: one interface, several systems."""
