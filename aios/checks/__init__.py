"""Behaviour checks of agents: `agents/<name>.checks.yaml`, run as shadow runs (aios agents test)."""
