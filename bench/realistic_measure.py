"""One side's measuring process for the realistic workload (and, for bench/profile_run.py, the no-op one).

`python -m bench.realistic_measure SIDE OUT.json --levels 10,50,100 [...]`, SIDE `aios` or
`langgraph` (durability "sync", the Idempotency-Key on its POST). After one warm-up run, for each
level N a batch of N runs starts at once; around each batch the CPU of this process, the
Temporal server and the Postgres cluster, and the database's transactions, are read. Every run
includes its approval, given `--approval-delay` seconds after the run waits for it.

Workload `realistic`: the model is the loopback OpenAI-compatible server (`--model-url`), each
action an `http` POST to the loopback effect server (`--effects-url`). Workload `noop`: aios's
offline model and `noop` actions, as bench/langgraph_side_by_side.py.
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
from typing import Any

import psycopg
from temporalio.service import RPCError, RPCStatusCode

from aios.models.manifest import AgentManifest, ModelSpec
from aios.settings import load_settings
from bench.langgraph_common import CpuReading, Servers, loop_manifest, peak_rss_mb, rss_mb
from bench.realistic_figures import DEFAULT_BUDGET, LevelFigures, SideResult

SIDES = ("aios", "langgraph")
WORKLOADS = ("realistic", "noop")
RUN_TIMEOUT = 600.0  # seconds: at 100 concurrent runs on 2 shared cores a run can take minutes
WARMED_UP = "warmed up: measuring"  # the line a profiler waits for before it attaches
Runner = Callable[[str], Awaitable[str]]  # label -> one whole run (approval included); its id
Abandon = Callable[[], Awaitable[None]]  # stops the runs still in flight


async def transactions(database_url: str) -> int | None:
    """The database's committed + rolled back transactions so far (each autocommit statement is one)."""
    try:
        async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
            cursor = await conn.execute(
                "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = current_database()"
            )
            row = await cursor.fetchone()
    except psycopg.Error:
        return None
    return int(row[0]) if row else None


async def measure_levels(
    side: str, workload: str, run: Runner, args: argparse.Namespace, servers: Servers, *, abandon: Abandon
) -> SideResult:
    measured = SideResult(side, workload)
    database_url = load_settings().resolved_database_url
    await run("warm-up")
    measured.base_rss_mb = rss_mb() or 0.0
    print(WARMED_UP, flush=True)
    await asyncio.sleep(args.pause_after_warm_up)  # time for a profiler to attach (bench/profile_run.py)
    for count in args.levels:
        before, xacts = CpuReading.now(servers), await transactions(database_url)
        started = time.perf_counter()
        outcomes = await _batch(run, count, args.budget)
        seconds = time.perf_counter() - started
        await abandon()  # the runs still in flight: so that none burns CPU in the next batch
        cpu = asdict(CpuReading.now(servers).since(before))
        after = await transactions(database_url)
        # The two readings' own connections are 2 transactions or so: noise beside a batch's thousands.
        done = None if xacts is None or after is None else after - xacts
        finished = [seconds_ for seconds_, _ in outcomes]
        level = LevelFigures(count, len(finished) * args.steps, seconds, finished, cpu, done)
        measured.levels.append(level)
        measured.run_ids += [run_id for _, run_id in outcomes]
    measured.peak_rss_mb = peak_rss_mb()
    return measured


async def _batch(run: Runner, count: int, budget: float) -> list[tuple[float, str]]:
    """N runs at once; those still going after `budget` seconds are abandoned, not waited for."""
    tasks = [asyncio.create_task(_timed(run, f"n{count}-{i}")) for i in range(count)]
    finished, pending = await asyncio.wait(tasks, timeout=budget)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    # A run whose client call failed (an approval the overloaded worker did not take in time)
    # counts as unfinished, as an abandoned one does, instead of ending the whole measurement.
    failed = [task.exception() for task in finished if task.exception() is not None]
    if failed:
        print(f"  {len(failed)} of {count} runs failed in the client: {failed[0]!r}", file=sys.stderr)
    return [task.result() for task in finished if task.exception() is None]


async def _timed(run: Runner, label: str) -> tuple[float, str]:
    started = time.perf_counter()
    run_id = await run(label)
    return time.perf_counter() - started, run_id


def manifest_for(args: argparse.Namespace, name: str) -> AgentManifest:
    effects = args.effects_url if args.workload == "realistic" else None
    manifest = loop_manifest(
        args.steps,
        args.approval_at,
        name=name,
        effects_url=effects,
        concurrent_runs=max(args.levels),
        inline=args.inline_effects,
    )
    if args.workload == "realistic":
        manifest = manifest.model_copy(update={"model": ModelSpec(provider="openai", name="bench-model")})
    return manifest


async def measure_aios(args: argparse.Namespace, servers: Servers) -> SideResult:
    """The production worker in this process on a fresh task queue (AIOS_MODEL_BASE_URL: the model)."""
    from aios.client import AiosClient
    from bench.langgraph_aios import AiosLoop
    from workers.main import run_worker

    settings = load_settings()
    queue = f"bench-realistic-{uuid.uuid4().hex[:8]}"
    manifest = manifest_for(args, f"bench-real-{uuid.uuid4().hex[:8]}")
    stop = asyncio.Event()
    worker = asyncio.create_task(run_worker(settings, stop=stop, task_queue=queue))
    try:
        client = await AiosClient.connect(settings)
        loop = AiosLoop(client, queue, approval_delay=args.approval_delay, run_timeout=RUN_TIMEOUT)

        in_flight: set[str] = set()

        async def run(label: str) -> str:
            run_id = await loop.start(manifest, {"bench": label})
            in_flight.add(run_id)
            await loop.finish(run_id, args.steps)
            in_flight.discard(run_id)
            return run_id

        async def abandon() -> None:
            for run_id in sorted(in_flight):
                try:
                    await client.handle(run_id).terminate(reason="past the benchmark's batch budget")
                except RPCError as error:
                    # NOT_FOUND: the run finished after its client gave up on it
                    if error.status != RPCStatusCode.NOT_FOUND:
                        raise
            in_flight.clear()

        measured = await measure_levels("aios", args.workload, run, args, servers, abandon=abandon)
        measured.temporal_rss_mb = rss_mb(servers.temporal_pid)
        return measured
    finally:
        stop.set()
        await worker


async def measure_langgraph(args: argparse.Namespace, servers: Servers) -> SideResult:
    import httpx

    from bench.langgraph_loop import HttpEffect, build_graph, noop_effect, postgres_saver, run_thread
    from connectors.model import ModelProvider, OfflineModel, OpenAICompatibleModel

    manifest = manifest_for(args, "bench-langgraph")
    async with (
        postgres_saver(load_settings().resolved_database_url) as saver,
        httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=None)) as client,
    ):
        model: ModelProvider = OfflineModel()
        effect: Any = noop_effect
        if args.workload == "realistic":
            model = OpenAICompatibleModel(base_url=args.model_url)
            effect = HttpEffect(args.effects_url, client, keyed=True)
        graph = build_graph(manifest, effect, saver, model)

        async def run(label: str) -> str:
            thread = f"{label}-{uuid.uuid4().hex[:8]}"
            final = await run_thread(graph, thread, {"bench": label}, "sync", args.approval_delay)
            if len(final.get("done", [])) != args.steps:
                raise RuntimeError(f"LangGraph thread {label} did {final.get('done')} of {args.steps} steps")
            return thread

        async def abandon() -> None:
            return  # a cancelled ainvoke stops its thread: nothing runs on

        return await measure_levels("langgraph", args.workload, run, args, servers, abandon=abandon)


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.realistic_measure")
    parser.add_argument("side", choices=SIDES)
    parser.add_argument("out", type=Path)
    parser.add_argument("--workload", choices=WORKLOADS, default="realistic")
    parser.add_argument("--levels", type=_levels, required=True, help="concurrent runs per batch: 10,50,100")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--approval-at", type=int, default=3)
    parser.add_argument("--approval-delay", type=float, default=0.0)
    parser.add_argument("--model-url")
    parser.add_argument("--effects-url")
    parser.add_argument("--inline-effects", action="store_true", help="aios: the http actions are `inline`")
    parser.add_argument("--budget", type=float, default=DEFAULT_BUDGET, help="seconds a batch may take")
    parser.add_argument("--pause-after-warm-up", type=float, default=0.0, help="seconds")
    parser.add_argument("--temporal-pid", type=int)
    parser.add_argument("--postgres-pid", type=int)
    args = parser.parse_args(argv)
    if args.workload == "realistic" and not (args.model_url and args.effects_url):
        parser.error("the realistic workload needs --model-url and --effects-url")
    return args


def _levels(text: str) -> list[int]:
    try:
        levels = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected counts like 10,50,100, got {text!r}") from None
    if not levels or min(levels) < 1:
        raise argparse.ArgumentTypeError(f"expected positive counts like 10,50,100, got {text!r}")
    return levels


def main(argv: list[str]) -> None:
    args = parse(argv)
    servers = Servers(args.temporal_pid, args.postgres_pid)
    measure = measure_aios if args.side == "aios" else measure_langgraph
    measured = asyncio.run(measure(args, servers))
    args.out.write_text(json.dumps(asdict(measured)))


if __name__ == "__main__":
    main(sys.argv[1:])
    # As bench/__main__.py: Temporal's native threads can crash the interpreter while it
    # finalizes; the figures are written, so leave without finalizing.
    sys.stdout.flush()
    os._exit(0)
