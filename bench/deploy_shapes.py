"""Deployment shapes on one machine: the dev server vs the cluster profile, 1-3 workers, shards.

Each shape gets a stack of its own (fresh data directory, free ports, `aios dev up`), K `aios
worker` processes on one task queue, and the same work: RUNS runs of a STEPS-step agent on the
offline model, started together, after a warm-up. Reported: runs/s from the first start to the
last end, and each run's duration per step (p50, p95). The no-op steps leave the Temporal
server and Postgres as the cost, which is what differs between the shapes.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

from aios.client import AiosClient
from aios.models.manifest import AgentManifest
from aios.models.run import RunStatus
from aios.settings import Settings, load_settings
from bench.conductor_overhead import bench_manifest
from bench.report import Section, percentile
from tests.support.stacks import data_dir, own_stack_env

RUNS = int(os.environ.get("AIOS_BENCH_SHAPES_RUNS", "60"))
STEPS = 5
WARM_UP = 4
AIOS = [sys.executable, "-m", "aios.cli"]


@dataclass(frozen=True)
class Shape:
    profile: str
    workers: int
    shards: int = 4

    @property
    def label(self) -> str:
        server = (
            "dev server (SQLite, 1 shard)" if self.profile == "dev" else f"cluster ({self.shards} shards)"
        )
        return f"{server}, {self.workers} worker process(es)"


SHAPES = (
    Shape("dev", 1),
    Shape("cluster", 1),
    Shape("cluster", 2),
    Shape("cluster", 3),
    Shape("cluster", 1, 1),
)


@contextlib.contextmanager
def _environment(env: dict[str, str]) -> Iterator[Settings]:
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        yield load_settings()
    finally:
        os.environ.clear()
        os.environ.update(saved)


async def _timed_run(client: AiosClient, manifest: AgentManifest, customer: str) -> float:
    began = time.perf_counter()
    started = await client.start_run(manifest.name, {"customer": customer}, manifest=manifest)
    final = await asyncio.wait_for(client.result(started.run_id), timeout=600)
    if final.status is not RunStatus.COMPLETED:
        raise RuntimeError(f"run {started.run_id} ended {final.status}: {final.outcome}")
    return time.perf_counter() - began


async def _work(settings: Settings) -> tuple[float, list[float]]:
    client = await AiosClient.connect(settings)
    manifest = bench_manifest(STEPS, concurrent_runs=RUNS + WARM_UP)
    await asyncio.gather(*(_timed_run(client, manifest, f"warm-{i}") for i in range(WARM_UP)))
    began = time.perf_counter()
    durations = await asyncio.gather(*(_timed_run(client, manifest, f"c-{i}") for i in range(RUNS)))
    return RUNS / (time.perf_counter() - began), [d / STEPS for d in durations]


async def measure_shape(shape: Shape) -> tuple[float, list[float]]:
    env = _env(shape)
    workers: list[subprocess.Popen[bytes]] = []
    try:
        await asyncio.to_thread(_aios, env, "dev", "up")
        workers = [_worker(env) for _ in range(shape.workers)]
        with _environment(env) as settings:
            return await _work(settings)
    finally:
        await asyncio.to_thread(_stop, workers, env)


def _aios(env: dict[str, str], *args: str) -> None:
    subprocess.run([*AIOS, *args], env=env, check=True, capture_output=True, timeout=900)


def _worker(env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([*AIOS, "worker"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _stop(workers: list[subprocess.Popen[bytes]], env: dict[str, str]) -> None:
    for worker in workers:
        worker.terminate()
        worker.wait(timeout=60)
    subprocess.run([*AIOS, "dev", "down"], env=env, capture_output=True, check=False, timeout=300)
    shutil.rmtree(data_dir(env), ignore_errors=True)


def _env(shape: Shape) -> dict[str, str]:
    return own_stack_env(
        load_settings(),
        f"shape-{shape.profile}",
        shape.profile,
        AIOS_TEMPORAL_HISTORY_SHARDS=str(shape.shards),
        AIOS_TASK_QUEUE=f"shape-{uuid.uuid4().hex[:6]}",
    )


async def measure() -> Section:
    section = Section(
        title="Deployment shapes: dev server vs cluster profile, 1-3 workers, 1 vs 4 shards",
        command="python -m bench deploy_shapes",
        notes=NOTES,
    )
    for shape in SHAPES:
        throughput, per_step = await measure_shape(shape)
        ms = [sample * 1000 for sample in per_step]
        section.add(
            shape.label,
            f"{throughput:.2f} runs/s; per step p50 {percentile(ms, 0.5):.0f} ms, "
            f"p95 {percentile(ms, 0.95):.0f} ms ({RUNS} runs of {STEPS} steps)",
        )
    return section


NOTES = """\
Every shape shares this machine's 2 cores with its own Temporal server and Postgres, so extra
worker processes add CPU demand here, not CPU. What a larger deployment changes, from
Temporal's own material: a history shard is the unit of concurrent persistence writes, fixed
when the cluster's database is created (one shard is for tests; production clusters run
hundreds to thousands; docs.temporal.io, "What is a History Shard?"); the four services are
deployed and scaled apart (the self-hosted production guide cites one cluster with 5 frontend,
15 history, 17 matching and 3 worker service instances); and load tests scale by raising
shards, history and matching instances and worker pollers until the database is the limit
(temporal.io/blog/scaling-temporal-the-basics). Read the table for the relative cost of the real
server on Postgres against the dev server on SQLite on one machine.
"""
