"""One side's measuring process: latency, throughput, CPU and memory of the loop, as JSON.

`python -m bench.langgraph_measure SIDE OUT.json [--temporal-pid P] [--postgres-pid P]`, SIDE one
of `aios`, `langgraph` (durability "sync": each step checkpointed before the next starts, what
aios guarantees) or `langgraph-async` (LangGraph's default durability, for reference). Each side
runs in a process of its own so its peak RSS and CPU are its own; the runs are the same:

- warm-up: one run at each K;
- sequential: SEQUENTIAL_RUNS runs at K1 and at K2, alternating, one after another;
- concurrent: CONCURRENT_ROUNDS batches of CONCURRENT_RUNS runs at K2 at once; the CPU of this
  process, the Temporal server and the Postgres cluster is read around the batches.

Every run includes its approval, answered by the driver as soon as the run waits.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from pathlib import Path

from aios.settings import load_settings
from bench.langgraph_common import (
    APPROVAL_AT,
    CONCURRENT_ROUNDS,
    CONCURRENT_RUNS,
    SEQUENTIAL_RUNS,
    STEPS_LONG,
    STEPS_SHORT,
    CpuReading,
    Servers,
    SideFigures,
    loop_manifest,
    peak_rss_mb,
    rss_mb,
)

SIDES = ("aios", "langgraph", "langgraph-async")
Runner = Callable[[int, str], Awaitable[None]]  # (K, label) -> one whole run, approval included


async def measure_side(side: str, run: Runner, servers: Servers) -> SideFigures:
    figures = SideFigures(side)
    for steps in (STEPS_SHORT, STEPS_LONG):
        await run(steps, f"warm-up-{steps}")
    figures.base_rss_mb = rss_mb() or 0.0  # everything loaded and connected, before the measured runs
    for index in range(SEQUENTIAL_RUNS):
        # Alternating K1 and K2 (and which goes first) spreads the machine's drift over both.
        order = (STEPS_SHORT, STEPS_LONG) if index % 2 == 0 else (STEPS_LONG, STEPS_SHORT)
        for steps in order:
            started = time.perf_counter()
            await run(steps, f"s{index}-k{steps}")
            figures.run_seconds.setdefault(str(steps), []).append(time.perf_counter() - started)
    before = CpuReading.now(servers)
    for round_ in range(CONCURRENT_ROUNDS):
        started = time.perf_counter()
        await asyncio.gather(*(run(STEPS_LONG, f"c{round_}-{i}") for i in range(CONCURRENT_RUNS)))
        figures.rounds.append(CONCURRENT_RUNS * STEPS_LONG / (time.perf_counter() - started))
    figures.cpu = asdict(CpuReading.now(servers).since(before))
    figures.concurrent_steps = CONCURRENT_ROUNDS * CONCURRENT_RUNS * STEPS_LONG
    figures.peak_rss_mb = peak_rss_mb()
    if side == "aios":  # the Temporal server is part of what aios runs on; LangGraph needs none
        figures.temporal_rss_mb = rss_mb(servers.temporal_pid)
    return figures


async def measure_aios(servers: Servers) -> SideFigures:
    """The production worker in this process on a fresh task queue, as bench/conductor_overhead.py."""
    from aios.client import AiosClient
    from bench.langgraph_aios import AiosLoop
    from workers.main import run_worker

    settings = load_settings()
    queue = f"bench-langgraph-aios-{uuid.uuid4().hex[:8]}"
    prefix = f"bench-lg-{uuid.uuid4().hex[:8]}"
    manifests = {
        steps: loop_manifest(steps, APPROVAL_AT, name=f"{prefix}-k{steps}", concurrent_runs=CONCURRENT_RUNS)
        for steps in (STEPS_SHORT, STEPS_LONG)
    }
    stop = asyncio.Event()
    worker = asyncio.create_task(run_worker(settings, stop=stop, task_queue=queue))
    try:
        loop = AiosLoop(await AiosClient.connect(settings), queue)

        async def run(steps: int, label: str) -> None:
            await loop.run(manifests[steps], steps, label)

        return await measure_side("aios", run, servers)
    finally:
        stop.set()
        await worker


async def measure_langgraph(side: str, servers: Servers) -> SideFigures:
    from bench.langgraph_loop import build_graph, noop_effect, postgres_saver, run_thread

    durability = "async" if side == "langgraph-async" else "sync"
    async with postgres_saver(load_settings().resolved_database_url) as saver:
        graphs = {
            steps: build_graph(loop_manifest(steps, APPROVAL_AT, name="bench-langgraph"), noop_effect, saver)
            for steps in (STEPS_SHORT, STEPS_LONG)
        }

        async def run(steps: int, label: str) -> None:
            final = await run_thread(graphs[steps], uuid.uuid4().hex, {"bench": label}, durability)
            if len(final.get("done", [])) != steps:
                raise RuntimeError(f"LangGraph thread {label} did {final.get('done')} of {steps} steps")

        return await measure_side(side, run, servers)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.langgraph_measure")
    parser.add_argument("side", choices=SIDES)
    parser.add_argument("out", type=Path)
    parser.add_argument("--temporal-pid", type=int)
    parser.add_argument("--postgres-pid", type=int)
    args = parser.parse_args(argv)
    servers = Servers(args.temporal_pid, args.postgres_pid)
    if args.side == "aios":
        figures = asyncio.run(measure_aios(servers))
    else:
        figures = asyncio.run(measure_langgraph(args.side, servers))
    args.out.write_text(json.dumps(asdict(figures)))


if __name__ == "__main__":
    main(sys.argv[1:])
    # As bench/__main__.py: Temporal's native threads can crash the interpreter while it
    # finalizes; the figures are written, so leave without finalizing.
    sys.stdout.flush()
    os._exit(0)
