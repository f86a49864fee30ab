"""The effect ledger's cost: effects through the ledger vs direct calls to the same server.

Both sides use the same `http` connector against the same loopback effect server. The
ledger side runs the real `action.execute` activity (intent row, connector call, outcome
row) in Temporal's activity test environment, so what is measured is the ledger and not
the scheduling. Sequential calls give the latency per effect; concurrent calls give
effects per second. Each effect's two ledger statements are its two Postgres round trips.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable

import httpx
from temporalio.testing import ActivityEnvironment

from activities.actions import ActionActivities
from activities.deps import close_deps, open_deps
from aios.models.run import ActionCall
from aios.settings import load_settings
from bench.report import Section, percentile, summarize_ms
from connectors.actions.base import EffectRequest
from connectors.actions.http import HttpActionConnector
from tests.support.effect_server import EffectServer

SEQUENTIAL = 300
CONCURRENT = 600
IN_FLIGHT = 20


async def _timed(calls: int, one: Callable[[int], Awaitable[object]]) -> list[float]:
    samples = []
    for index in range(calls):
        started = time.perf_counter()
        await one(index)
        samples.append(time.perf_counter() - started)
    return samples


async def _throughput(calls: int, one: Callable[[int], Awaitable[object]]) -> float:
    gate = asyncio.Semaphore(IN_FLIGHT)

    async def bounded(index: int) -> None:
        async with gate:
            await one(index)

    started = time.perf_counter()
    await asyncio.gather(*(bounded(index) for index in range(calls)))
    return calls / (time.perf_counter() - started)


async def measure() -> Section:
    section = Section(
        "Effect ledger overhead",
        "make bench  (python -m bench ledger_overhead)",
        notes=f"{SEQUENTIAL} sequential and {CONCURRENT} concurrent ({IN_FLIGHT} in flight) effects "
        "per side, each a POST with a fresh idempotency key to a loopback HTTP server. Ledger side: "
        "`action.execute` = INSERT intent (1 round trip) + call + UPDATE outcome (1 round trip).",
    )
    server = EffectServer().start()
    settings = load_settings()
    deps = await open_deps(settings)
    run = uuid.uuid4().hex[:8]
    direct = HttpActionConnector(httpx.AsyncClient(timeout=10))
    ledgered = ActionActivities(deps, {"http": HttpActionConnector(httpx.AsyncClient(timeout=10))})
    environment = ActivityEnvironment()
    target = f"{server.url}/effects/bench"

    async def call_direct(index: int, phase: str = "seq") -> object:
        request = EffectRequest(
            idempotency_key=f"direct-{run}-{phase}-{index}", action="bench", target=target
        )
        return await direct.perform(request)

    async def call_ledger(index: int, phase: str = "seq") -> object:
        call = ActionCall(
            run_id=f"bench-{run}",
            step=index,
            effect_key=f"ledger-{run}-{phase}-{index}",
            action="bench",
            connector="http",
            target=target,
        )
        return await environment.run(ledgered.execute, call)

    try:
        await _timed(20, lambda i: call_direct(i, "warm"))
        await _timed(20, lambda i: call_ledger(i, "warm"))
        direct_lat = await _timed(SEQUENTIAL, call_direct)
        ledger_lat = await _timed(SEQUENTIAL, call_ledger)
        direct_rate = await _throughput(CONCURRENT, lambda i: call_direct(i, "conc"))
        ledger_rate = await _throughput(CONCURRENT, lambda i: call_ledger(i, "conc"))
    finally:
        await close_deps(deps)
        server.stop()
    added = [(percentile(ledger_lat, q) - percentile(direct_lat, q)) * 1000 for q in (0.5, 0.95)]
    section.add("direct call latency", summarize_ms(direct_lat))
    section.add("through the ledger latency", summarize_ms(ledger_lat))
    section.add("ledger's added latency per effect", f"p50 {added[0]:.2f} ms, p95 {added[1]:.2f} ms")
    section.add("Postgres round trips per effect", "2 (intent INSERT, outcome UPDATE)")
    section.add("direct throughput", f"{direct_rate:.0f} effects/s")
    section.add("through the ledger throughput", f"{ledger_rate:.0f} effects/s")
    section.add("ratio ledger/direct", f"{ledger_rate / direct_rate:.2f}")
    return section
