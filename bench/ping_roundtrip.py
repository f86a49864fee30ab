"""The walking skeleton's cost: a Ping run (one workflow, one activity, one Postgres write).

Measures the end-to-end latency of sequential runs seen by the client, and the throughput
of concurrent runs, against the real local dev server and Postgres.
"""

from __future__ import annotations

import asyncio
import time
import uuid

from aios.client import AiosClient
from aios.settings import load_settings
from bench.report import Section, summarize_ms
from workers.main import run_worker

SEQUENTIAL_RUNS = 50
CONCURRENT_RUNS = 200


async def measure() -> Section:
    settings = load_settings()
    section = Section(
        "Walking skeleton: Ping round trip",
        "make bench  (python -m bench ping_roundtrip)",
        notes="One Ping = start workflow, one activity writing an audit row to Postgres, result "
        "back to the client; the worker runs in the benchmark's process.",
    )
    task_queue = f"bench-{uuid.uuid4().hex[:8]}"
    stop = asyncio.Event()
    worker = asyncio.create_task(run_worker(settings, stop=stop, task_queue=task_queue))
    try:
        client = await AiosClient.connect(settings)
        await (await client.start_ping("warm-up", task_queue=task_queue)).result()
        latencies = []
        for index in range(SEQUENTIAL_RUNS):
            started = time.perf_counter()
            await (await client.start_ping(f"seq {index}", task_queue=task_queue)).result()
            latencies.append(time.perf_counter() - started)
        section.add("sequential run latency", summarize_ms(latencies))
        started = time.perf_counter()
        handles = await asyncio.gather(
            *(client.start_ping(f"conc {i}", task_queue=task_queue) for i in range(CONCURRENT_RUNS))
        )
        await asyncio.gather(*(handle.result() for handle in handles))
        elapsed = time.perf_counter() - started
        section.add(
            "concurrent throughput",
            f"{CONCURRENT_RUNS / elapsed:.1f} runs/s ({CONCURRENT_RUNS} runs)",
        )
    finally:
        stop.set()
        await worker
    return section
