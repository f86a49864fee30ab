"""A thousand runs waiting for approval at once: memory, listing them, approving them all.

Against the real local dev server and Postgres, with the worker in a process of its own (its
RSS is its own): RUNS runs of a one-action agent whose action needs approval are started and
left waiting at the gate. As they pile up, the worker's and the Temporal server's RSS are read;
then `AiosClient.approvals()` (what `aios approvals` calls) lists them, SAMPLE runs are
approved one by one through the `decide` update to time the way from a decision to the run's
end (the step, then the last turn), and the rest with one approve-all (`aios approve --all`).
It is played for each worker cache size in CACHE_SIZES (`AIOS_WORKER_CACHED_RUNS`): a run
evicted from the cache costs no memory while it waits and a replay when it wakes.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid

from aios.approvals.bulk import SENT_AT_ONCE
from aios.client import AiosClient
from aios.models.manifest import AgentManifest
from aios.models.run import RunStatus
from aios.settings import Settings, load_settings
from aios.stack import temporal
from bench.langgraph_common import rss_mb
from bench.report import Section, percentile, summarize_ms
from workflows.notifications import NOTIFY_WORKFLOW

RUNS = int(os.environ.get("AIOS_BENCH_WAITING_RUNS", "1000"))
CACHE_SIZES = tuple(int(size) for size in os.environ.get("AIOS_BENCH_WAITING_CACHES", "1000,100").split(","))
SAMPLE = 20
START_CONCURRENCY = 16
MILESTONES = (0.25, 0.5, 1.0)
FILL_POLLS = 1200  # every 0.5 s
SETTLE_POLLS = 600  # every 0.5 s


def _manifest() -> AgentManifest:
    return AgentManifest.model_validate(
        {
            "name": f"bench-waiting-{uuid.uuid4().hex[:6]}",
            "actions": {"refund": {"connector": "noop", "risk": "high"}},
            "policy": {"approvers": ["operator"]},
            "budget": {"tokens_per_day": 100_000_000, "cost_per_day": 1000, "max_concurrent_runs": 10 * RUNS},
        }
    )


def _worker(settings: Settings, cached: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "AIOS_TASK_QUEUE": settings.task_queue, "AIOS_WORKER_CACHED_RUNS": str(cached)}
    log = settings.data_dir / "logs" / f"{settings.task_queue}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as output:  # the child keeps its own descriptor
        return subprocess.Popen(
            [sys.executable, "-m", "aios.cli", "worker"], env=env, stdout=output, stderr=output
        )


async def _waiting(client: AiosClient, agent: str) -> int:
    async with client.connection() as conn:
        cursor = await conn.execute(
            "SELECT count(*) FROM aios_runs WHERE agent = %s AND status = 'waiting_approval'", (agent,)
        )
        row = await cursor.fetchone()
        return int(row[0]) if row else 0


async def _fill(client: AiosClient, manifest: AgentManifest, upto: int, started: list[str]) -> None:
    """Start runs until `upto` have been started, then wait until they all wait at the gate."""
    gate = asyncio.Semaphore(START_CONCURRENCY)

    async def start(index: int) -> None:
        async with gate:
            outcome = await client.start_run(manifest.name, {"note": f"wait {index}"}, manifest=manifest)
            started.append(outcome.run_id)

    await asyncio.gather(*(start(index) for index in range(len(started), upto)))
    for _ in range(FILL_POLLS):
        if await _waiting(client, manifest.name) >= upto:
            return
        await asyncio.sleep(0.5)
    raise RuntimeError(f"{upto} runs started, fewer waiting after {FILL_POLLS / 2:.0f} s")


async def _pass(section: Section, settings: Settings, cached: int) -> None:
    label = f"cache {cached}"
    client = await AiosClient.connect(settings)
    server_pid = temporal.files(settings).read_pid() if settings.temporal_is_local else None
    worker = _worker(settings, cached)
    manifest = _manifest()
    started: list[str] = []
    try:
        await _fill(client, manifest, 1, started)  # the worker is up and warm
        rss = [f"{1}: {rss_mb(worker.pid) or 0:.0f} MB"]
        server_before = rss_mb(server_pid)
        for share in MILESTONES:
            await _fill(client, manifest, int(RUNS * share), started)
            rss.append(f"{int(RUNS * share)}: {rss_mb(worker.pid) or 0:.0f} MB")
        section.add(f"{label}: worker RSS by runs waiting", ", ".join(rss))
        section.add(
            f"{label}: Temporal server RSS",
            f"{server_before or 0:.0f} MB with 1 waiting, {rss_mb(server_pid) or 0:.0f} MB with {RUNS}",
        )
        await _settled(client, settings.task_queue)
        await _list(section, label, client)
        await _approve_all(section, label, client, manifest)
    finally:
        worker.terminate()
        worker.wait(timeout=60)


async def _settled(client: AiosClient, queue: str) -> None:
    """Wait for the approval notices the runs started (a Notify workflow each) to be delivered,
    so that listing and deciding are timed against a quiet worker, not its backlog."""
    query = f"TaskQueue = '{queue}' AND WorkflowType = '{NOTIFY_WORKFLOW}' AND ExecutionStatus = 'Running'"
    for _ in range(SETTLE_POLLS):
        if not (await client.temporal.count_workflows(query)).count:
            return
        await asyncio.sleep(0.5)
    raise RuntimeError(f"notices still being delivered after {SETTLE_POLLS / 2:.0f} s")


async def _list(section: Section, label: str, client: AiosClient) -> None:
    samples, listed = [], 0
    for _ in range(3):
        began = time.perf_counter()
        listed = len(await client.approvals())
        samples.append(time.perf_counter() - began)
    section.add(f"{label}: listing the waiting runs ({listed})", summarize_ms(samples))


async def _approve_all(section: Section, label: str, client: AiosClient, manifest: AgentManifest) -> None:
    """The SAMPLE first, one by one (the others still waiting), then the rest with one approve-all."""
    waiting = [state.run_id for state in await client.approvals() if state.agent == manifest.name]
    to_end = []
    for run_id in waiting[:SAMPLE]:
        began = time.perf_counter()
        await client.decide(run_id, "approve", approver="operator", note="bench", step=1)
        final = await client.result(run_id, within=60)
        if final.status is not RunStatus.COMPLETED:
            raise RuntimeError(f"{run_id} ended {final.status}: {final.outcome}")
        to_end.append(time.perf_counter() - began)
    section.add(
        f"{label}: decision to run end (one at a time, the others waiting)",
        f"{summarize_ms(to_end)}; p95 {percentile(to_end, 0.95) * 1000:.0f} ms",
    )
    began = time.perf_counter()
    bulk = await client.decide_waiting("approve", approver="operator", note="bench", agent=manifest.name)
    elapsed = time.perf_counter() - began
    section.add(
        f"{label}: approving the other {len(bulk.sent)} (`aios approve --all`, its listing included)",
        f"{len(bulk.sent) / elapsed:.0f} decisions/s ({elapsed:.1f} s)",
    )
    await asyncio.gather(*(client.result(run_id, within=900) for run_id in bulk.sent))
    section.add(
        f"{label}: approved runs all ended",
        f"{time.perf_counter() - began:.1f} s after the approve-all began",
    )


async def measure() -> Section:
    section = Section(
        f"{RUNS} runs waiting for approval at once",
        "python -m bench waiting_runs",
        notes=f"{RUNS} runs of a one-action agent (risk high: needs approval) started "
        f"{START_CONCURRENCY} at a time and left at the gate; the worker is a process of its own. "
        "Once every run's approval notice is delivered (a `Notify` workflow each), listing is "
        "`AiosClient.approvals()` (`aios approvals`), from the run mirrors and one "
        f"visibility listing. {SAMPLE} runs are approved one by one with the `decide` update "
        "(`aios approve RUN`), the others still waiting, to time a decision to the run's end; then "
        "the rest with one `aios approve --all` (`AiosClient.decide_waiting`: a signal per run, "
        f"{SENT_AT_ONCE} in flight, durable once the server has it; each run judges it as it wakes).",
    )
    base = load_settings()
    for cached in CACHE_SIZES:
        queue = f"bench-waiting-{uuid.uuid4().hex[:6]}"
        await _pass(section, base.model_copy(update={"task_queue": queue}), cached)
    return section
