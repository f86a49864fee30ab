"""The realistic benchmark's floor rows: what the Temporal server and the aios process each cost a
step, as ceilings on this machine's throughput.

Kept apart from the benchmark's runner so the unit tests import it with the dev extras alone (the
runner needs psutil and LangGraph, which only `.[bench]` installs)."""

from __future__ import annotations

import os

from bench.history_counts import HistoryCounts
from bench.realistic_figures import STEPS, SideResult
from bench.report import Section

PARTS = ("temporal", "process", "postgres")  # the CPU readings the floor divides


def floor(section: Section, aios: SideResult, counts: HistoryCounts, peer: SideResult | None = None) -> None:
    """What the Temporal server alone costs a step (its CPU per workflow task times the tasks a
    run needs), and the worker's share, as ceilings on this machine's cores; then the machine's
    ceiling for aios as measured, and for aios were its process and Postgres as cheap as `peer`'s:
    the server's share alone decides whether a target is out of reach on these cores."""
    runs = sum(len(level.run_seconds) for level in aios.levels)
    if not runs or not counts.workflow_tasks:
        return
    server_ms, worker_ms, postgres_ms = (_cpu_ms(aios, part) for part in PARTS)
    per_task = server_ms / (runs * counts.workflow_tasks)
    server_step, worker_step, postgres_step = (
        ms / (runs * STEPS) for ms in (server_ms, worker_ms, postgres_ms)
    )
    cores = os.cpu_count() or 1
    section.add(
        "aios per run (its Notify child included)",
        f"{counts.workflow_tasks:.1f} workflow tasks, {counts.activities:.1f} activities, "
        f"{counts.local_activities:.1f} local activities, {counts.events:.0f} history events",
    )
    section.add(
        "floor: the Temporal server",
        f"{per_task:.1f} ms CPU per workflow task x {counts.workflow_tasks:.1f} per run / {STEPS} steps = "
        f"{server_step:.1f} ms per step: at most {cores * 1000 / server_step:.0f} steps/s on {cores} cores "
        "were it alone",
    )
    section.add(
        "floor: the aios process (worker and client, one Python interpreter: one core at most)",
        f"{worker_step:.1f} ms CPU per step: at most {1000 / worker_step:.0f} steps/s",
    )
    machine_step = server_step + worker_step + postgres_step
    section.add(
        "floor: the machine, aios as measured",
        f"{server_step:.1f} + {worker_step:.1f} + {postgres_step:.1f} ms CPU per step (server, process, "
        f"Postgres) = {machine_step:.1f} ms: at most {cores * 1000 / machine_step:.0f} steps/s "
        f"on {cores} cores",
    )
    if peer is not None:
        _peer_floor(section, peer, server_step, cores)


def _peer_floor(section: Section, peer: SideResult, server_step: float, cores: int) -> None:
    """aios's ceiling were everything but its Temporal server as cheap as the peer's."""
    steps = sum(level.steps for level in peer.levels)
    if not steps:
        return
    peer_step = (_cpu_ms(peer, "process") + _cpu_ms(peer, "postgres")) / steps
    ceiling = cores * 1000 / (server_step + peer_step)
    best = max(level.steps_per_second for level in peer.levels)
    section.add(
        "floor: the Temporal server beside a process and Postgres as cheap as LangGraph's",
        f"{server_step:.1f} + {peer_step:.1f} ms CPU per step: at most {ceiling:.0f} steps/s on {cores} "
        f"cores, {ceiling / best:.2f}x LangGraph's best level ({best:.1f} steps/s)",
    )


def _cpu_ms(side: SideResult, part: str) -> float:
    return sum(level.cpu.get(part) or 0.0 for level in side.levels) * 1000
