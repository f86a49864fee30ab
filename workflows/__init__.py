"""Deterministic conductor code only. `WORKFLOWS` is the one registry of workflows."""

from __future__ import annotations

from workflows.ping import PingWorkflow

WORKFLOWS: list[type] = [PingWorkflow]
